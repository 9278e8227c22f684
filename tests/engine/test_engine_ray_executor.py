"""The Ray Data executor on a local Ray instance gives the local executor's shards, byte for byte."""
from __future__ import annotations

import os

import pyarrow as pa
import pytest

from engine_testlib import HERE, make_rows, write_pipeline
from megascience_build.engine.executor_local import run_local
from megascience_build.engine.orchestration import RunOptions
from megascience_build.engine.pipeline_config import load_pipeline
from megascience_build.engine.status import work_status
from megascience_build.engine.workdir import WorkDir


@pytest.fixture(scope="module")
def ray_instance():
    import ray
    os.environ["PYTHONPATH"] = os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def outputs(work):
    return {p.name: p.read_bytes() for p in sorted((work / "output").glob("part-*.parquet"))}


def counts(manifest):
    keys = ("rows_in", "rows_out", "dropped", "subjects_in", "subjects_out", "dropped_by_subject", "counters")
    return [(s["label"], s["shards"], *[s[k] for k in keys], s["usage"]["requests"]) for s in manifest["stages"]]


def both(pipeline, tmp_path):
    from megascience_build.engine.executor_ray import run_ray
    local = run_local(load_pipeline(pipeline), tmp_path / "local", RunOptions(progress=False, workers=2))
    ray_m = run_ray(load_pipeline(pipeline), tmp_path / "ray", RunOptions(progress=False, executor="ray"))
    return local, ray_m


def test_ray_matches_local(ray_instance, tmp_path):
    pipeline = write_pipeline(tmp_path / "p")
    local, ray_m = both(pipeline, tmp_path)
    assert outputs(tmp_path / "ray") == outputs(tmp_path / "local") and len(outputs(tmp_path / "local")) == 4
    assert counts(ray_m) == counts(local)
    assert ray_m["executor"]["name"] == "ray" and ray_m["outputs"][0]["sha256"] == local["outputs"][0]["sha256"]
    assert (tmp_path / "ray" / "report.md").exists()
    # one plan.json shape for both executors; Ray keeps no stage folders, so `status` says done once the run is
    local_plan, ray_plan = (WorkDir(tmp_path / w).read_plan() for w in ("local", "ray"))
    assert (local_plan.pop("executor"), ray_plan.pop("executor")) == ("local", "ray")
    assert [s.pop("dir") for s in local_plan["stages"]] == [f"stages/{i:02d}_{s['label']}"
                                                            for i, s in enumerate(ray_plan["stages"])]
    assert [s.pop("dir") for s in ray_plan["stages"]] == [None] * 4
    assert ray_plan == local_plan and ray_plan["input_shards"] == 5 and ray_plan["stages"][1]["models"] == ["gen"]
    assert not (tmp_path / "ray" / "stages").exists()
    assert {(s["state"], s["shards_done"]) for s in work_status(tmp_path / "ray")["stages"]} == {("done", 0)}


def test_ray_matches_local_with_an_emptied_shard(ray_instance, tmp_path):
    rows = make_rows()
    texts = rows.column("text").to_pylist()
    texts[5:10] = [""] * 5                      # the whole second shard is dropped by the first stage
    rows = rows.set_column(rows.schema.get_field_index("text"), "text", pa.array(texts))
    stages = [{"stage": "test_tag_length", "label": "tag"},      # no barrier: the empty shard reaches the output
              {"stage": "test_answer", "label": "answer", "llm": "gen", "prompts": {"ask": "ask.txt"}},
              {"stage": "test_upper", "label": "upper"}]
    pipeline = write_pipeline(tmp_path / "p", rows=rows, stages=stages)
    local, ray_m = both(pipeline, tmp_path)
    assert local["stages"][0]["dropped"] == {"too_short": 5} and [o["rows"] for o in local["outputs"]] == [5, 0, 5, 5, 4]
    assert outputs(tmp_path / "ray") == outputs(tmp_path / "local")
    assert counts(ray_m) == counts(local)


def test_ray_replays_the_local_runs_cache_without_a_model(ray_instance, tmp_path):
    from megascience_build.engine.executor_ray import run_ray
    pipeline = write_pipeline(tmp_path / "p")
    cache = str(tmp_path / "cache.sqlite")
    local = run_local(load_pipeline(pipeline), tmp_path / "local", RunOptions(progress=False, cache_path=cache))
    sent = (pipeline.parent / "calls.jsonl").read_text()
    replay = run_ray(load_pipeline(pipeline), tmp_path / "ray",
                     RunOptions(progress=False, executor="ray", cache_path=cache, cache_only=True))
    assert (pipeline.parent / "calls.jsonl").read_text() == sent          # no request reached the backend
    assert outputs(tmp_path / "ray") == outputs(tmp_path / "local")
    usage = replay["stages"][1]["usage"]
    assert usage["cache_misses"] == 0 and usage["cache_hits"] == 23 and usage["failures"] == {"length": 1}
    assert counts(replay) == counts(local)


def test_a_ray_replica_runs_shards_in_flight_on_one_window(ray_instance, tmp_path):
    """One replica of the model stage, shards of 5 rows against the loopback openai server: with 4 shards in
    flight the replica keeps more than one shard's requests at the server (its threads share one request
    window), with one at a time never more than a shard's; the bytes are the local executor's."""
    from megascience_build.engine.executor_ray import run_ray
    from support.faulty_server import FaultyServer

    server = FaultyServer(hold_seconds=0.3)
    try:
        models = {"gen": {"backend": "openai", "model": "m", "revision": "r1", "batch_size": 2, "options": {
            "base_url": server.base_url, "concurrency": 8, "timeout": 10, "max_retries": 0}}}
        path = write_pipeline(tmp_path / "p", models=models)
        (tmp_path / "p" / "ask.txt").write_text("--- user\nhold {{text}}\n")
        seen = {}
        for in_flight in (1, 4):
            server.max_in_flight = 0
            run_ray(load_pipeline(path), tmp_path / f"ray{in_flight}",
                    RunOptions(progress=False, executor="ray", shards_in_flight=in_flight,
                               cache_path=str(tmp_path / f"cache{in_flight}.sqlite")))
            seen[in_flight] = server.max_in_flight
        local = run_local(load_pipeline(path), tmp_path / "local", RunOptions(progress=False))
    finally:
        server.close()
    assert seen[1] <= 5 < seen[4] <= 8
    assert outputs(tmp_path / "ray4") == outputs(tmp_path / "ray1") == outputs(tmp_path / "local")
    assert local["stages"][1]["rows_out"] == 23
