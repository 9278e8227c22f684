"""dedup_questions inside a pipeline run by the local executor: sharded input, manifest counts, stage record."""
import pyarrow.parquet as pq
import yaml

from dedup_lib import question_table
from megascience_build.engine.executor_local import run_local
from megascience_build.engine.orchestration import RunOptions
from megascience_build.engine.pipeline_config import load_pipeline

BASE = [f"Explain experiment number {i} on the {w} of a pendulum of length {i + 2} metres in detail."
        for i, w in enumerate(["period", "energy", "amplitude", "damping", "phase", "frequency"])]


def test_runs_as_a_global_stage_over_all_shards(tmp_path):
    questions = BASE + [q.upper() for q in BASE[:3]] + ["?!"]      # copies land in another shard than originals
    data = tmp_path / "data"
    data.mkdir()
    pq.write_table(question_table(questions), data / "rows.parquet")
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text(yaml.safe_dump({
        "name": "dedup-test", "seed": 0,
        "input": {"parquet": ["data/*.parquet"], "rows_per_shard": 4},
        "models": {},
        "stages": [{"stage": "dedup_questions", "label": "dedup", "params": {"threads": 1}}],
    }))
    manifest = run_local(load_pipeline(pipeline), tmp_path / "work", RunOptions(progress=False))
    stage = manifest["stages"][0]
    assert (stage["kind"], stage["rows_in"], stage["rows_out"]) == ("global", 10, 6)
    assert stage["dropped"] == {"duplicate": 3, "no_words": 1}
    assert stage["counters"]["clusters_with_duplicates"] == 3
    rows = [r for p in sorted((tmp_path / "work" / "stages").glob("*dedup/*.parquet")) for r in pq.read_table(p).to_pylist()]
    assert sorted(r["question"].lower() for r in rows) == sorted(q.lower() for q in BASE)
    assert sorted(r["dedup_cluster_size"] for r in rows) == [1, 1, 1, 2, 2, 2]
