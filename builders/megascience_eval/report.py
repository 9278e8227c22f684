"""The evaluation report: markdown tables in the shape of the paper's Tables 6 and 7, sub-part details,
and a bar chart comparing runs (and published scores, where a run's model is one the paper reports).

A run here is {"label": str, "scores": compute_scores(...), "info": run_info(...)}; `published` names
entries of published.yaml to show as extra columns.
"""
from __future__ import annotations

import io
from typing import Any, Sequence

from .published import lookup
from .scores import ALL14, APART, AGGREGATES

DASH = "–"


def _fmt(value: float | None) -> str:
    return DASH if value is None else f"{value:.2f}"


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])


def _agg_cell(agg: dict[str, Any]) -> str:
    if agg["value"] is None:
        return DASH
    return _fmt(agg["value"]) if agg["complete"] else f"{_fmt(agg['value'])} (partial: {agg['covered']}/{agg['of']})"


def _model_line(run: dict[str, Any]) -> str:
    info = run.get("info") or {}
    ident = info.get("identity") or {}
    sampling = info.get("sampling") or {}
    usage = info.get("usage") or {}
    return (f"- **{run['label']}**: model `{ident.get('model')}` (backend {ident.get('backend')}, revision "
            f"`{str(ident.get('revision'))[:16]}`, identity {ident.get('digest')}); sampling temperature "
            f"{sampling.get('temperature')}, top_p {sampling.get('top_p')}, max_tokens {sampling.get('max_tokens')}; "
            f"{run['scores']['questions']} questions (sample {info.get('sample') or 'all'}, seed {info.get('seed')}); "
            f"requests {usage.get('requests', 0)}, cache hits {usage.get('cache_hits', 0)}, generated tokens "
            f"{usage.get('tokens_out', 0)}; no answer extracted: {run['scores']['no_answer']}")


def _sameness(runs: Sequence[dict[str, Any]]) -> list[str]:
    """For several runs: the benchmark entries whose question sets differ between them (not comparable)."""
    if len(runs) < 2:
        return []
    entries = sorted({e for r in runs for e in r["scores"]["subparts"]})
    differ = [e for e in entries
              if len({(r["scores"]["subparts"].get(e) or {}).get("questions_sha256") for r in runs}) > 1]
    if not differ:
        return ["All runs scored the same questions (by question id) in every benchmark entry.", ""]
    return ["**Not the same questions**: the runs scored different questions (another sample, seed or data "
            "revision, or an entry only some runs have) in " + ", ".join(f"`{e}`" for e in differ) +
            "; their scores there are not directly comparable.", ""]


def _data_lines(runs: Sequence[dict[str, Any]]) -> list[str]:
    """Where each benchmark entry's questions came from (Hub commit, or file sha256 and PyPI release)."""
    seen: dict[str, str] = {}
    for r in runs:
        for entry, d in ((r.get("info") or {}).get("data") or {}).items():
            if "hub" in d:
                where = f"Hub `{d['hub']}`" + (f" config {d['config']}" if d.get("config") else "") + f" split {d.get('split')}"
            else:
                files = d.get("files") or []
                where = ", ".join(f"`{f['file']}` sha256 {f['sha256'][:12]}" for f in files[:3])
                where += f" (+{len(files) - 3} files)" if len(files) > 3 else ""
                where += f", {d['distribution']}" if d.get("distribution") else ""
            seen.setdefault(entry, where)
    if not seen:
        return []
    return ["Data read: " + "; ".join(f"`{e}` {w}" for e, w in seen.items()) + ".", ""]


def render_markdown(runs: Sequence[dict[str, Any]], published: Sequence[str] = ()) -> str:
    pubs = [(name, lookup(name)) for name in published]
    header = ["Benchmark"] + [r["label"] for r in runs] + [f"{n} (paper)" for n, _ in pubs]
    rows = []
    for bench in ALL14:
        rows.append([bench] + [_fmt((r["scores"]["benchmarks"].get(bench) or {}).get("accuracy")) for r in runs]
                    + [_fmt(p["benchmarks"].get(bench)) for _, p in pubs])
    rows.append(["**Average** (14)"] + [_agg_cell(r["scores"]["aggregates"]["All"]) for r in runs]
                + [_fmt(p.get("average")) for _, p in pubs])
    for bench in APART:
        rows.append([f"{bench} (apart, not averaged)"]
                    + [_fmt((r["scores"]["benchmarks"].get(bench) or {}).get("accuracy")) for r in runs]
                    + [DASH for _ in pubs])
    extra = sorted({b for r in runs for b in r["scores"]["benchmarks"] if b not in (*ALL14, *APART)})
    for bench in extra:
        rows.append([f"{bench} (not one of the paper's)"]
                    + [_fmt((r["scores"]["benchmarks"].get(bench) or {}).get("accuracy")) for r in runs]
                    + [DASH for _ in pubs])
    agg_rows = [[r["label"]] + [_agg_cell(r["scores"]["aggregates"][a]) for a in AGGREGATES] for r in runs]
    agg_rows += [[f"{n} (paper)"] + [_fmt((p.get("aggregates") or {}).get(a)) for a in AGGREGATES] for n, p in pubs]
    detail = []
    for r in runs:
        for entry, s in r["scores"]["subparts"].items():
            methods = ", ".join(f"{k} {v}" for k, v in sorted(s["methods"].items(), key=lambda kv: -kv[1]))
            detail.append([r["label"], s["paper"], s["subpart"], f"`{entry}`", s["n"], s["correct"],
                           _fmt(s["accuracy"]), s["no_answer"], s["truncated"], s["errors"], methods])
    combined = []
    for r in runs:
        for bench, s in r["scores"]["benchmarks"].items():
            if len(s["subparts"]) > 1:
                combined.append([r["label"], bench, ", ".join(s["subparts"]), s["n"], _fmt(s["accuracy"]),
                                 _fmt(s["macro_accuracy"])])
    parts = ["# Evaluation report", "", *[_model_line(r) for r in runs], "", *_data_lines(runs), *_sameness(runs),
             "## Scores by benchmark (the shape of the paper's Table 6)", "",
             "Accuracy in percent; " + DASH + " where a run has no questions of that benchmark. "
             "Published columns are the paper's numbers for that model, not measured here.", "",
             _table(header, rows), "",
             "## Aggregates (the shape of the paper's Table 7)", "",
             "General = MMLU-Pro, GPQA-D, SuperGPQA, SciBench, OlympicArena; Specific = ChemBench, CS-Bench, MedQA, "
             "MedMCQA, PubMedQA, PIQA; Math = GSM8K, MATH, MATH500; All = unweighted mean of the 14 "
             "(MMLU apart). A partial aggregate averages only the benchmarks the run has.", "",
             _table(["Run", *[f"{a} Avg." for a in AGGREGATES]], agg_rows), "",
             "## Sub-parts", "",
             "How answers were found: `indicator:*` an answer phrase, `boxed` a \\boxed{}, `last_line`/`statement`/"
             "`option_text`/`last_number` the stated fallbacks, `none` no answer (scored wrong, counted in "
             "'no answer').", "",
             _table(["Run", "Benchmark", "Sub-part", "Entry", "n", "correct", "accuracy", "no answer", "truncated",
                     "errors", "answers found by"], detail), ""]
    if combined:
        parts += ["Benchmarks with several sub-parts: " + runs[0]["scores"]["combination"] + ".", "",
                  _table(["Run", "Benchmark", "Sub-parts", "n", "pooled", "macro"], combined), ""]
    return "\n".join(parts)


def render_png(runs: Sequence[dict[str, Any]], published: Sequence[str] = ()) -> bytes:
    """Grouped bars: one group per benchmark any run has, one bar per run; published scores as markers."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    known = (*ALL14, *APART)
    benches = [b for b in known if any(b in r["scores"]["benchmarks"] for r in runs)]
    benches += sorted({b for r in runs for b in r["scores"]["benchmarks"] if b not in known})
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(benches) + 2), 4.2), dpi=110)
    width = 0.8 / max(1, len(runs))
    for k, r in enumerate(runs):
        values = [(r["scores"]["benchmarks"].get(b) or {}).get("accuracy") for b in benches]
        xs = [i - 0.4 + width * (k + 0.5) for i in range(len(benches))]
        bars = ax.bar(xs, [v or 0.0 for v in values], width, label=r["label"])
        for x, v, bar in zip(xs, values, bars):       # the value on each bar; a run without the benchmark: "–"
            ax.text(x, (v or 0.0) + 1.0, DASH if v is None else f"{v:.0f}", ha="center", va="bottom",
                    fontsize=7, color=bar.get_facecolor())
    markers = "D^sv*"
    for k, name in enumerate(published):
        scores = lookup(name)["benchmarks"]
        pts = [(i, scores[b]) for i, b in enumerate(benches) if b in scores]
        if pts:
            ax.scatter([p[0] for p in pts], [p[1] for p in pts], marker=markers[k % len(markers)], color="black",
                       zorder=3, label=f"{name} (paper)")
    ax.set_xticks(range(len(benches)))
    ax.set_xticklabels([f"{b} (apart)" if b in APART else b for b in benches], rotation=30, ha="right")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 110)
    ax.set_yticks(range(0, 101, 20))
    ax.legend(fontsize=8)
    ax.set_title("megascience-eval: accuracy by benchmark")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()
