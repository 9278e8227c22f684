"""The whole TextbookReasoning pipeline (the packaged textbook.yaml, models replaced by scripted ones, the real
MiniLM embedder) through the engine's local executor over the embedded corpus plus planted books, then its four
ablation variants (the packaged variant files) sharing one request cache."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from textbook_e2e_lib import VARIANTS, calls, make_corpus, output_table, stage_table, write_pipeline
from textbook_e2e_script import EXTRACTOR_MARK, GENERATED, REFINER_MARK, kind_of
from megascience_build.engine import records
from megascience_build.engine.executor_local import run_local
from megascience_build.engine.orchestration import RunOptions
from megascience_build.engine.pipeline_config import load_pipeline

ONE_TO_ONE = ("ingest_books", "book_dedup", "book_metadata", "dedup", "refine", "cot", "filter", "decontaminate",
              "reference_answer", "finalize")


def released_columns() -> list[str]:
    """The released TextbookReasoning columns, as the loader's catalogue declares them."""
    import megascience_datasets
    doc = yaml.safe_load((Path(megascience_datasets.__file__).parent / "catalogue.yaml").read_text())
    return list(doc["features"]["textbook_released"])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("textbook_e2e")
    corpus = make_corpus(root)
    cache = root / "requests.sqlite"
    out = {"root": root, "corpus": corpus}
    for name in ("textbook", *(f"textbook_{v}" for v in VARIANTS)):
        log = root / f"calls_{name}.jsonl"
        path = write_pipeline(root / name, name, corpus["books"], log)
        work = root / f"work_{name}"
        manifest = run_local(load_pipeline(path), work, RunOptions(progress=False, cache_path=str(cache)))
        out[name] = {"work": work, "manifest": manifest, "calls": calls(log), "rows": output_table(work / "output")}
    return out


def by_label(manifest: dict) -> dict:
    return {st["label"]: st for st in manifest["stages"]}


def test_output_schema_and_provenance_trace_to_books(runs):
    run = runs["textbook"]
    table = run["rows"]
    assert released_columns() == ["question", "answer", "subject", "reference_answer"]
    assert table.column_names == ["id", *released_columns(), "provenance"]
    assert table.num_rows > 20
    chunks = {r["id"]: r for r in stage_table(run["work"], "chunk").to_pylist()}
    books = {r["id"]: r for r in stage_table(run["work"], "book_metadata").to_pylist()}
    book_files = {p.name for p in runs["corpus"]["books"].iterdir()}
    for row in table.to_pylist():
        prov = json.loads(row[records.PROVENANCE])
        origin = prov["origin"]
        chunk = chunks[origin["chunk_id"]]
        assert origin["book_id"] == chunk["book_id"] and chunk["book_id"] in books
        assert Path(books[chunk["book_id"]]["source_file"]).name in book_files
        assert origin["pages"] == [chunk["page_start"], chunk["page_end"]] and chunk["page_start"] >= 1
        labels = [s["stage"] for s in prov["steps"]]
        assert labels[labels.index("extract_qa"):] == ["extract_qa", "dedup", "refine", "cot", "filter",
                                                       "decontaminate", "reference_answer", "finalize"][:len(labels) - labels.index("extract_qa")]
        assert row["subject"] in {"math", "physics", "chemistry", "biology", "medicine", "cs", "economics"}
        assert row["reference_answer"]


def test_manifest_counts_add_up(runs):
    stages = by_label(runs["textbook"]["manifest"])
    order = list(stages)
    for a, b in zip(order, order[1:]):
        assert stages[a]["rows_out"] == stages[b]["rows_in"], (a, b)
    for label in ONE_TO_ONE:
        st = stages[label]
        assert st["rows_in"] == st["rows_out"] + sum(st["dropped"].values()), label
    ex = stages["extract_qa"]
    assert ex["rows_in"] == ex["counters"]["chunks_with_pairs"] + sum(ex["dropped"].values())
    assert ex["rows_out"] == ex["counters"]["pairs"]
    assert runs["textbook"]["manifest"]["output_rows"] == stages["finalize"]["rows_out"] == runs["textbook"]["rows"].num_rows
    # every planted failure is counted under its reason
    assert stages["book_dedup"]["dropped"] == {"duplicate_book": 1}
    assert stages["book_metadata"]["dropped"] == {"below_university_level": 1}
    assert ex["dropped"]["unparseable"] == 1 and ex["dropped"]["no_qa"] >= 1
    assert ex["counters"]["high_unparseable"] == ex["counters"]["low_unparseable"] == 1
    assert stages["dedup"]["dropped"]["duplicate"] >= ex["counters"]["chunks_with_pairs"]   # one shared pair a chunk
    assert stages["refine"]["dropped"].get("refine_rejected", 0) >= 1
    assert stages["cot"]["counters"]["cot_supplemented"] == stages["cot"]["counters"]["cot_no"] >= 1
    assert stages["filter"]["dropped"]["filter_rejected"] >= 1 and stages["filter"]["dropped"]["unparseable_filter_verdict"] >= 1
    assert stages["decontaminate"]["dropped"] == {"contaminated_exact": 1, "contaminated_judge": 1}


def test_planted_benchmark_questions_removed(runs):
    questions = runs["textbook"]["rows"].column("question").to_pylist()
    assert runs["corpus"]["verbatim"] not in questions and runs["corpus"]["edited"] not in questions
    assert any("cyclist" in q for q in questions)              # the unrelated planted exercise stays
    before = stage_table(runs["textbook"]["work"], "filter").column("question").to_pylist()
    assert runs["corpus"]["verbatim"] in before and runs["corpus"]["edited"] in before


def test_report_has_per_subject_stage_table(runs):
    work = runs["textbook"]["work"]
    report = (work / "report.md").read_text()
    assert "## Rows per subject after each stage" in report
    table = report.split("## Rows per subject after each stage", 1)[1]
    header = next(line for line in table.splitlines() if line.startswith("| subject"))
    for label in ("chunk", "extract_qa", "dedup", "refine", "cot", "filter", "decontaminate", "finalize"):
        assert f" {label} " in header
    finals = by_label(runs["textbook"]["manifest"])["finalize"]["subjects_out"]
    subject_lines = [line for line in table.split("\n## ")[0].splitlines() if line.startswith("| ") and not line.startswith("| subject")
                     and not line.startswith("| **total") and not line.startswith("| ---")]
    # one row per subject, in the released names, from the classifier's stage to the end
    assert sorted(line.split(" | ")[0][2:] for line in subject_lines) == sorted(
        ["math", "physics", "chemistry", "biology", "medicine", "cs", "economics"])
    for subject in ("math", "physics", "chemistry", "biology", "medicine", "cs", "economics"):
        line = next(line for line in subject_lines if line.startswith(f"| {subject} |"))
        assert line.rstrip(" |").endswith(str(finals.get(subject, 0)))
    stage_header = next(line for line in report.splitlines() if line.startswith("| stage | type |"))
    assert stage_header.rstrip().endswith("| resumed |")
    assert next(line for line in report.splitlines() if line.startswith("| finalize |")).rstrip().endswith("| no |")
    png = (work / "report.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_manifest_and_provenance_name_the_models_that_ran(runs):
    from megascience_build.backends import local_models
    manifest = runs["textbook"]["manifest"]
    minilm_sha = local_models.file_sha256(local_models.minilm_path() / "model.safetensors")
    embedder = manifest["models"]["embedder"]
    assert (embedder["model"], embedder["revision"]) == ("sentence-transformers/all-MiniLM-L6-v2", minilm_sha)
    assert embedder["pinned"] == {"model": "minilm", "revision": None}
    assert manifest["models"]["extractor"]["revision"] == "1" and manifest["models"]["extractor"]["settings"]["script"]
    steps = [next(s for s in json.loads(row["provenance"])["steps"] if s["stage"] == "decontaminate")
             for row in runs["textbook"]["rows"].to_pylist()]
    judged = [s for s in steps if "embedder" in s]        # rows that went to the embedding and judge path
    assert judged and {(s["embedder"], s["embedder_revision"]) for s in judged} == {(embedder["model"], minilm_sha)}
    assert str(runs["root"]) not in json.dumps(manifest)


def kinds(run) -> list[str]:
    return [kind_of(c["user"]) for c in run["calls"]]


def test_variants_share_the_request_cache(runs):
    base = kinds(runs["textbook"])
    for k in ("classify", "extract_high", "extract_low", "refine", "cot_judge", "supplement", "filter",
              "decontam_judge"):
        assert k in base, k
    assert "reference" not in base          # every refined answer ends in a box: taken without the model
    assert "reference" in kinds(runs["textbook_no_refine"])   # extracted answers without a box need the model
    # no variant asks again what the full run asked: classification and extraction are never re-sent
    for v in VARIANTS:
        assert not {"classify", "extract_high", "extract_low"} & set(kinds(runs[f"textbook_{v}"])), v
    keys = [c["key"] for name in ("textbook", *(f"textbook_{v}" for v in VARIANTS)) for c in runs[name]["calls"]]
    assert len(keys) == len(set(keys)), "a request was sent twice across runs sharing one cache"
    # without decontamination nothing is new: every other stage's requests are in the shared cache
    assert runs["textbook_no_decontam"]["calls"] == []
    # the refinement by the extraction model is new work; the refiner is never asked to refine
    assert "refine" in kinds(runs["textbook_refined_by_extractor"])


def test_variant_relationships(runs):
    full = runs["textbook"]["rows"]
    no_dc = runs["textbook_no_decontam"]["rows"]
    assert no_dc.num_rows == full.num_rows + 2
    assert set(full.column("id").to_pylist()) < set(no_dc.column("id").to_pylist())
    assert runs["corpus"]["verbatim"] in no_dc.column("question").to_pylist()

    extracted = {r["id"]: r["answer"] for r in stage_table(runs["textbook_no_refine"]["work"], "extract_qa").to_pylist()}
    for row in runs["textbook_no_refine"]["rows"].to_pylist():
        steps = [s["stage"] for s in json.loads(row["provenance"])["steps"]]
        assert "refine" not in steps and "cot" in steps
        if row["answer"] != extracted[row["id"]]:          # only CoT supplementation changes an extracted answer
            assert row["answer"].startswith("Step 1: Recall")
        assert REFINER_MARK not in row["answer"]

    for row in runs["textbook_no_cot"]["rows"].to_pylist():
        assert "cot" not in [s["stage"] for s in json.loads(row["provenance"])["steps"]]
        assert not row["answer"].startswith("Step 1: Recall")

    by_extractor = runs["textbook_refined_by_extractor"]["rows"].to_pylist()
    assert by_extractor and all(REFINER_MARK not in r["answer"] for r in by_extractor)
    assert sum(EXTRACTOR_MARK in r["answer"] for r in by_extractor) >= 1
    for row in by_extractor:
        step = next(s for s in json.loads(row["provenance"])["steps"] if s["stage"] == "refine")
        assert step["model"] == "scripted/extractor"
    assert sum(r["question"].startswith(GENERATED) for r in by_extractor) >= 10
