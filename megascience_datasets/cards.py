"""Dataset cards and citations, rendered from the catalogue.

The prose per configuration family lives here so that an installed package can print it
(`megascience card`); dataset_cards/<family>.md are these cards rendered, kept in the repository and
checked against the catalogue by tests/loader/test_cards_and_training.py.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import yaml

from .catalogue import Entry, load_catalogue

FAMILIES = {
    "released": ("TextbookReasoning and MegaScience",
                 "The two datasets released with the paper, read from the authors' Hub repositories at pinned "
                 "commits. TextbookReasoning holds question and answer pairs extracted from university "
                 "textbooks, refined with the source text, given a chain of thought where the answer lacked "
                 "one, filtered and decontaminated; MegaScience mixes it with selected, re-annotated subsets of "
                 "NaturalReasoning and Nemotron-Science and adds a `source` column."),
    "selection": ("MegaScience data-selection ablations (paper Table 3)",
                  "Each public source after deduplication and decontamination, and its three subsets chosen by "
                  "response length, by difficulty and at random. The difficulty subset fixes the size n; the "
                  "length and random subsets take the same n, as in the paper's protocol. Selection signals are "
                  "computed once and stored, so every subset is exactly reproducible from the rule, its "
                  "parameters and its seed."),
    "pipeline": ("TextbookReasoning pipeline ablations (paper Tables 8, 9 and 11)",
                 "TextbookReasoning rebuilt with one stage of the pipeline removed or changed: without "
                 "decontamination, without the supplementary chain of thought, without refinement, refined by "
                 "the extraction model, and with the hardest questions' answers distilled from the annotation "
                 "model."),
    "decontamination": ("Decontamination ablations (paper Table 10)",
                        "SCP-116K, NaturalReasoning and Nemotron-Science before and after LLM-based "
                        "decontamination against the evaluation benchmarks (the after-versions of the last two are "
                        "the `_dc` configurations of the selection family)."),
}

SIZE_CATEGORIES = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
                   (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M")]


def size_category(n: int | None) -> str:
    if n is None:
        return "unknown"
    for bound, label in SIZE_CATEGORIES:
        if n < bound:
            return label
    return "n>1B"


def dataset_bibtex(config: str, sha: str | None, url: str, tag: str | None = None, year: str = "2025") -> str:
    rev = sha or tag or "unpinned"
    key = f"megascience_{config}_{(sha or tag or 'unpinned')[:8]}".replace("-", "_").replace(".", "_")
    note = f"configuration `{config}`, revision {rev}" + (f" (tag {tag})" if tag and sha else "")
    return (f"@misc{{{key},\n  title        = {{MegaScience datasets: configuration {config}}},\n"
            f"  author       = {{Fan, Run-Ze and Wang, Zengzhi and Liu, Pengfei}},\n"
            f"  howpublished = {{\\url{{{url}}}}},\n  note         = {{{note}}},\n  year         = {{{year}}}\n}}")


def _features_yaml(features: Mapping[str, str]) -> list[dict]:
    return [{"name": c, "dtype": t} for c, t in features.items()]


def card_metadata(entries: Sequence[Entry], manifest: Mapping[str, Any] | None = None) -> dict:
    """YAML metadata for huggingface_hub.DatasetCardData: configs (first = default) and dataset_info."""
    rows = [(manifest or {}).get("configs", {}).get(e.name, {}).get("rows", e.rows) for e in entries]
    biggest = max((r or e.paper_rows or 0) for r, e in zip(rows, entries))
    licenses = sorted({e.license for e in entries})
    meta: dict[str, Any] = {
        "pretty_name": "MegaScience",
        "license": licenses[0] if len(licenses) == 1 else "other",
        "language": ["en"],
        "task_categories": ["question-answering", "text-generation"],
        "size_categories": [size_category(biggest)],
        "tags": ["science", "reasoning", "post-training", "arxiv:2507.16812"],
        "configs": [], "dataset_info": [],
    }
    for i, e in enumerate(entries):
        c = {"config_name": e.name}
        if i == 0:
            c["default"] = True
        c["data_files"] = [{"split": "train", "path": f"data/{e.name}/train-*.parquet"}]
        meta["configs"].append(c)
        info: dict[str, Any] = {"config_name": e.name, "features": _features_yaml(e.features)}
        m = (manifest or {}).get("configs", {}).get(e.name)
        if m:
            info["splits"] = [{"name": "train", "num_bytes": m["num_bytes"], "num_examples": m["rows"]}]
            info["download_size"] = m["bytes"]
            info["dataset_size"] = m["num_bytes"]
        meta["dataset_info"].append(info)
    return meta


def availability(e: Entry) -> str:
    """How a user gets the configuration: released by the authors, derived on the user's machine, or built."""
    from .derive import derivable
    d = e.derived
    if e.source.kind == "upstream":
        return f"released (Hub `{e.source.repo}`)"
    if derivable(e):
        how = (f"the {d.parameters['n']:,} rows with the smallest seeded random numbers (seed {d.seed})"
               if d.rule == "select_random" else f"the rows whose `source` names {d.parameters.get('part')}")
        return f"derived on your machine from `{d.parent}`: {how}, unless a release holds it"
    if d is not None and d.rule in ("select_length", "select_difficulty", "select_random", "difficulty_distill"):
        return (f"built: from a release, or derived from `{d.parent}` plus a release's selection signals "
                f"(`{d.parent}_signals`)")
    return "built: from a release of the project's build (regenerating it needs the models)"


def _table(entries: Sequence[Entry], manifest: Mapping[str, Any] | None) -> str:
    lines = ["| configuration | paper | rows | rule | parent | seed |", "| --- | --- | --- | --- | --- | --- |"]
    for e in entries:
        m = (manifest or {}).get("configs", {}).get(e.name, {})
        rows = m.get("rows", e.rows)
        rows_s = f"{rows:,}" if rows is not None else (f"~{e.paper_rows:,} (paper)" if e.paper_rows else "?")
        d = e.derived
        lines.append(f"| `{e.name}` | {e.table} | {rows_s} | {d.rule if d else 'released'} | "
                     f"{d.parent or '-' if d else '-'} | {d.seed if d and d.seed is not None else '-'} |")
    return "\n".join(lines)


def render_card_body(entries: Sequence[Entry], manifest: Mapping[str, Any] | None, paper_bibtex: str,
                     cards: Mapping[str, str] | None = None, sample_note: str | None = None,
                     title: str = "MegaScience") -> str:
    revision = (manifest or {}).get("revision") or {}
    sha, tag, url = revision.get("sha"), revision.get("tag"), revision.get("url") or "https://arxiv.org/abs/2507.16812"
    out = [f"# {title}", ""]
    if sample_note:
        out += [f"> **Sample.** {sample_note}", ""]
    out += ["Science-reasoning post-training data from *MegaScience: Pushing the Frontiers of Post-Training "
            "Datasets for Science Reasoning* (arXiv 2507.16812). Every configuration has the released columns "
            "`question`, `answer`, `subject` and `reference_answer` (MegaScience-side configurations add "
            "`source`; configurations the project builds add `id` and JSON `provenance`); all are strings, "
            "and `subject`/`source` are open value sets.", ""]
    for group in FAMILIES:
        members = [e for e in entries if e.group == group]
        if not members:
            continue
        heading, prose = FAMILIES[group]
        out += [f"## {heading}", "", (cards or {}).get(group, prose), "", _table(members, manifest), ""]
        for e in members:
            out += [f"- `{e.name}` ({availability(e)}): {e.description}"]
        out.append("")
    out += ["## Loading", "", "```python", "import datasets",
            f"ds = datasets.load_dataset(\"<org>/megascience\", \"{entries[0].name}\", revision=\"<sha>\")",
            "# or, pinned and verified by the megascience-datasets package:",
            "import megascience_datasets as msd",
            f"ds = msd.load_dataset(\"{entries[0].name}\", streaming=True)", "```", "",
            "## Citation", "", "Cite the paper and the exact data revision:", "", "```bibtex", paper_bibtex.strip(), ""]
    for e in entries:
        out += [dataset_bibtex(e.name, sha, url, tag), ""]
    out += ["```", ""]
    if revision:
        out += ["## Revision", "", "```json", _json(revision), "```", ""]
    return "\n".join(out)


def _json(obj) -> str:
    import json
    return json.dumps(obj, indent=2, sort_keys=True)


def render_readme(entries: Sequence[Entry], manifest: Mapping[str, Any] | None, paper_bibtex: str, *,
                  cards: Mapping[str, str] | None = None, sample_note: str | None = None) -> str:
    meta = card_metadata(entries, manifest)
    body = render_card_body(entries, manifest, paper_bibtex, cards, sample_note)
    return "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + "---\n\n" + body


def render_family_card(group: str) -> str:
    """dataset_cards/<group>.md: the card of one configuration family, from the catalogue."""
    cat = load_catalogue()
    entries = cat.group(group)
    if not entries:
        raise KeyError(f"no configurations in group {group!r}")
    meta = card_metadata(entries)
    body = render_card_body(entries, None, cat.citations.get("paper", ""), title=f"MegaScience: {FAMILIES[group][0]}")
    return "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + "---\n\n" + body


def render_config_card(name: str) -> str:
    cat = load_catalogue()
    e = cat[name]
    meta = card_metadata([e])
    body = render_card_body([e], None, cat.citations.get("paper", ""), title=f"MegaScience: {name}")
    return "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + "---\n\n" + body
