"""The decontaminate stage run by the engine's local executor from a pipeline file: the scripted backend as
judge, a registry of local files, drops and counters in the manifest, and the report helper on them."""
from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from megascience_build.engine import records
from megascience_build.engine.executor_local import run_local
from megascience_build.engine.orchestration import RunOptions
from megascience_build.engine.pipeline_config import load_pipeline
from megascience_build.stages.decontaminate import contamination_report

BENCH = ["A ball of mass 2 kg moves at 3 m/s. What is its kinetic energy in joules?",
         "Which organelle carries out photosynthesis in plant cells?"]
TRAIN = ["Which organelle carries out photosynthesis in plant cells?",             # exact
         "Find the kinetic energy, in joules, of a 2 kg ball that moves at 3 m/s.",  # judge YES
         "Why is the sky blue during the day?",                                     # judge NO
         "Explain how a lever multiplies force."]                                   # judge NO


def write_inputs(root):
    """bench.jsonl (BENCH), registry.yaml (set "mine"), data/rows.parquet (TRAIN); returns the benchmark file."""
    bench = root / "bench.jsonl"
    bench.write_text("".join(json.dumps({"question": q}) + "\n" for q in BENCH))
    (root / "registry.yaml").write_text(yaml.safe_dump({"sets": {"mine": ["toy"]}, "benchmarks": {
        "toy": {"file": {"path": "bench.jsonl"}, "question": "question"}}}))
    (root / "data").mkdir()
    pq.write_table(pa.table({
        "id": [records.content_id("row", i) for i in range(len(TRAIN))],
        "provenance": [records.new_provenance({"kind": "test", "row": i}) for i in range(len(TRAIN))],
        "question": TRAIN}), root / "data" / "rows.parquet")
    return bench


def test_pipeline_run(tmp_path):
    write_inputs(tmp_path)
    pipeline = {
        "name": "decontam-engine-test", "seed": 0,
        "input": {"parquet": ["data/*.parquet"], "rows_per_shard": 2},
        "models": {
            "judge": {"backend": "scripted", "model": "scripted/judge", "revision": "1", "options": {
                "rules": [{"pattern": r"2 kg ball(?s:.*)kinetic energy in joules", "response": "Decision: YES"}],
                "default": "Analysis: no.\nDecision: NO"}},
            "embedder": {"backend": "decontam_fakes:make_bow_embedder", "model": "test/bow"}},
        "stages": [{"stage": "decontaminate", "llm": "judge", "embedder": "embedder",
                    "sampling": {"max_tokens": 64}, "prompts": {"judge": "decontam_judge.txt"},
                    "params": {"registry": str(tmp_path / "registry.yaml"), "benchmarks": "mine", "top_k": 2}}],
    }
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(pipeline, sort_keys=False))
    manifest = run_local(load_pipeline(path), tmp_path / "work", RunOptions(progress=False))
    stage = manifest["stages"][0]
    assert (stage["rows_in"], stage["rows_out"]) == (4, 2)
    assert stage["dropped"] == {"contaminated_exact": 1, "contaminated_judge": 1}
    assert stage["counters"]["judge_calls"] == 6 and stage["counters"]["judge_yes"] == 1
    rep = contamination_report(stage["counters"])
    assert rep["benchmarks"] == {"toy": {"exact": 1, "ngram": 0, "judge": 1, "total": 2}}
    out = pa.concat_tables([pq.read_table(p) for p in sorted((tmp_path / "work" / "output").glob("*.parquet"))])
    assert sorted(out.column("question").to_pylist()) == sorted(TRAIN[2:])
    prov = json.loads(out.column("provenance")[0].as_py())
    assert prov["steps"][-1]["model"] == "scripted/judge" and prov["signals"]["decontamination"]["judged"] == 2


def test_an_edited_benchmark_file_recomputes_the_decontaminate_shards_and_only_those(tmp_path, monkeypatch):
    monkeypatch.setenv("MEGASCIENCE_ARTIFACT_CACHE", str(tmp_path / "artifacts"))
    bench = write_inputs(tmp_path)
    pipeline = {
        "name": "decontam-resume-test", "seed": 0,
        "input": {"parquet": ["data/*.parquet"], "rows_per_shard": 2},
        "models": {
            "judge": {"backend": "scripted", "model": "scripted/judge", "options": {"default": "Decision: NO"}},
            "embedder": {"backend": "decontam_fakes:make_bow_embedder", "model": "test/bow"}},
        "stages": [{"stage": "random_signal"},
                   {"stage": "decontaminate", "llm": "judge", "embedder": "embedder",
                    "sampling": {"max_tokens": 64}, "prompts": {"judge": "decontam_judge.txt"},
                    "params": {"registry": "registry.yaml", "benchmarks": "mine", "top_k": 1}}],
    }
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(pipeline, sort_keys=False))
    monkeypatch.chdir(tmp_path)                      # the registry path is relative to the working directory

    def run():
        m = run_local(load_pipeline(path), tmp_path / "work", RunOptions(progress=False))
        return {s["label"]: s for s in m["stages"]}

    first = run()
    assert first["decontaminate"]["dropped"] == {"contaminated_exact": 1}
    assert [s["shards_resumed"] for s in run().values()] == [2, 2]          # nothing changed: all resumed
    with bench.open("a") as fh:                                            # the benchmark gains a question
        fh.write(json.dumps({"question": TRAIN[2]}) + "\n")
    edited = run()
    assert edited["random_signal"]["shards_resumed"] == 2                   # upstream: resumed
    assert edited["decontaminate"]["shards_resumed"] == 0                   # recomputed against the new file
    assert edited["decontaminate"]["dropped"] == {"contaminated_exact": 2}
    assert len(list((tmp_path / "artifacts").glob("benchmark-embeddings-*"))) == 2   # one per question set
