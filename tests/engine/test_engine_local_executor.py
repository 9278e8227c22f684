"""The local executor: resume, determinism, bad input before work, lock, manifest and report."""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from engine_testlib import make_rows, write_pipeline
from megascience_build.engine.executor_local import run_local
from megascience_build.engine.orchestration import RunOptions
from megascience_build.engine.pipeline_config import load_pipeline
from megascience_build.engine.manifest import output_paths
from megascience_build.engine.stage import StageError
from megascience_build.engine.workdir import WorkDir, WorkDirLocked


def run(pipeline: Path, work: Path, **opts):
    return run_local(load_pipeline(pipeline), work, RunOptions(progress=False, **opts))


def outputs(work: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((work / "output").glob("part-*.parquet"))}


def calls(pipeline: Path) -> list[str]:
    f = pipeline.parent / "calls.jsonl"
    return f.read_text().splitlines() if f.exists() else []


def test_rows_counts_and_manifest(pipeline, tmp_path):
    work = tmp_path / "work"
    m = run(pipeline, work)
    by = {s["label"]: s for s in m["stages"]}
    assert (by["tag"]["rows_in"], by["tag"]["rows_out"], by["tag"]["dropped"]) == (24, 23, {"too_short": 1})
    assert by["answer"]["dropped"] == {"generation_length": 1}
    assert by["answer"]["dropped_by_subject"] == {"chemistry": {"generation_length": 1}}
    assert by["dedup"]["dropped"] == {"duplicate": 3} and by["upper"]["rows_out"] == 19
    assert by["answer"]["subjects_in"] == {"biology": 8, "chemistry": 8, "physics": 7}
    assert by["answer"]["counters"] == {"answered": 22}
    usage = by["answer"]["usage"]
    assert usage["requests"] == 23 and usage["cache_hits"] + usage["cache_misses"] == 23
    assert usage["failures"] == {"length": 1} and usage["tokens_in"] > 0
    model = by["answer"]["models"][0]     # a backend without `.identity`: its model_id and revision
    assert {k: model[k] for k in ("role", "backend", "model", "revision", "pinned")} == {
        "role": "gen", "backend": "engine_plugins:FakeBackend", "model": "fake/model", "revision": "r1",
        "pinned": {"model": "fake/model", "revision": "r1"}} and len(model["digest"]) == 16
    assert m["models"]["gen"] == model and str(tmp_path) not in json.dumps(m)   # no machine path
    import hashlib
    assert by["answer"]["prompts"][0]["sha256"] == hashlib.sha256((pipeline.parent / "ask.txt").read_bytes()).hexdigest()
    assert m["pipeline"]["sha256"] == hashlib.sha256(pipeline.read_bytes()).hexdigest()
    assert m["input"]["shards"] == 5 and m["package"]["version"]
    # output shards: rows, bytes and sha256 as recorded; ids unique; provenance records the model step
    table = pa.concat_tables([pq.read_table(work / "output" / n) for n in outputs(work)])
    assert table.num_rows == m["output_rows"] == 19 == len(set(table.column("id").to_pylist()))
    for o, path in zip(m["outputs"], output_paths(m, work)):
        data = Path(path).read_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (o["bytes"], o["sha256"])
    steps = json.loads(table.column("provenance")[0].as_py())["steps"]
    assert [s["stage"] for s in steps] == ["tag", "answer"] and steps[1]["model"] == "fake/model"
    assert table.column_names == ["id", "provenance", "text", "subject", "text_len", "answer", "answer_upper"]
    # report: the Table-2-shaped subject table and a PNG
    report = (work / "report.md").read_text()
    assert "| biology | 8 | 8 | 8 | 7 | 7 |" in report and "| **total** | 24 | 23 | 22 | 19 | 19 |" in report
    assert "generation_length: 1" in report
    assert (work / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((work / "manifest.json").read_text())["output_rows"] == 19


def test_rerun_resumes_every_shard_and_is_byte_identical(pipeline, tmp_path):
    work = tmp_path / "work"
    run(pipeline, work, workers=2)
    first, n_calls = outputs(work), len(calls(pipeline))
    m = run(pipeline, work, workers=1)
    assert outputs(work) == first
    assert all(s["shards_resumed"] == s["shards"] for s in m["stages"])
    assert len(calls(pipeline)) == n_calls           # nothing re-sent (the failed 'length' row sits in a done shard)
    # a fresh work directory (fresh cache) gives the same bytes
    other = tmp_path / "other"
    run(pipeline, other, workers=2)
    assert outputs(other) == first


def test_changed_parameter_recomputes_from_cache(pipeline, tmp_path):
    work = tmp_path / "work"
    run(pipeline, work)
    n_calls = len(calls(pipeline))
    doc = yaml.safe_load(pipeline.read_text())
    doc["stages"][0]["params"] = {"min_len": 30}
    pipeline.write_text(yaml.safe_dump(doc, sort_keys=False))
    m = run(pipeline, work)
    tag = m["stages"][0]
    assert tag["shards_resumed"] == 0 and tag["dropped"]["too_short"] > 1
    # answers for the surviving rows come from the cache; only the uncacheable 'length' failure may be re-sent
    new_calls = calls(pipeline)[n_calls:]
    assert len(new_calls) <= 1
    this_run = m["stages"][1]["usage_this_run"]
    assert m["stages"][1]["shards_resumed"] < 5 and this_run["requests"] > 0
    assert this_run["cache_misses"] == len(new_calls) and this_run["cache_hits"] == this_run["requests"] - len(new_calls)


def test_cache_only_replays_and_fails_clearly_on_a_miss(pipeline, tmp_path):
    from megascience_build.engine.cache import CacheMissError
    cache = tmp_path / "shared-cache.sqlite"
    with pytest.raises(CacheMissError) as err:
        run(pipeline, tmp_path / "w0", cache_path=str(cache), cache_only=True)
    msg = str(err.value)
    assert "stage 'answer'" in msg and "fake/model@r1" in msg and "cache key" in msg
    assert calls(pipeline) == [] and not (tmp_path / "w0" / "output").exists()
    first = run(pipeline, tmp_path / "w1", cache_path=str(cache))
    n_calls = len(calls(pipeline))
    # a replay into a new work directory sends nothing and reproduces the run, its 'length' failure included
    replay = run(pipeline, tmp_path / "w2", cache_path=str(cache), cache_only=True)
    assert len(calls(pipeline)) == n_calls
    assert outputs(tmp_path / "w2") == outputs(tmp_path / "w1")
    assert replay["stages"][1]["dropped"] == first["stages"][1]["dropped"] == {"generation_length": 1}
    assert replay["stages"][1]["usage"]["failures"] == {"length": 1}
    assert replay["stages"][1]["usage_this_run"]["cache_misses"] == 0
    # a normal run retries the failure (it is never served as an answer)
    run(pipeline, tmp_path / "w3", cache_path=str(cache))
    assert len(calls(pipeline)) == n_calls + 1


def test_second_run_on_a_locked_work_directory_is_refused(pipeline, tmp_path):
    work = tmp_path / "work"
    holder = WorkDir(work)
    holder.lock()
    try:
        with pytest.raises(WorkDirLocked, match="in use by another run"):
            run(pipeline, work)
    finally:
        holder.unlock()
    run(pipeline, work)


def test_missing_column_fails_before_any_work(tmp_path):
    rows = make_rows().drop_columns(["text"]).append_column("body", pa.array(["x"] * 24))
    pipeline = write_pipeline(tmp_path / "p", rows=rows)
    with pytest.raises(StageError) as err:
        run(pipeline, tmp_path / "work")
    assert "stage 'tag'" in str(err.value) and "['text']" in str(err.value)
    assert not (tmp_path / "work" / "stages").exists() and calls(pipeline) == []


def test_missing_column_of_a_later_stage_fails_before_any_work(tmp_path):
    stages = [{"stage": "test_tag_length", "label": "tag"}, {"stage": "test_upper", "label": "upper"}]
    pipeline = write_pipeline(tmp_path / "p", stages=stages)
    with pytest.raises(StageError, match=r"stage #1: stage 'upper' needs input column\(s\) \['answer'\]"):
        run(pipeline, tmp_path / "work")
    assert not (tmp_path / "work" / "stages").exists()


def test_empty_shard_and_unreadable_file_are_named(tmp_path):
    pipeline = write_pipeline(tmp_path / "p")
    data = pipeline.parent / "data"
    empty = data / "c.parquet"
    # a 0-row shard (what a filtering stage of an upstream pipeline writes) with the same columns is read as
    # nothing; with other columns it is named; all-empty input is an error
    pq.write_table(make_rows().select(["id", "provenance"]).slice(0, 0), empty)
    with pytest.raises(StageError, match=r"input file .*c\.parquet: columns .* differ"):
        run(pipeline, tmp_path / "work")
    empty.write_bytes(b"this is not parquet")
    with pytest.raises(StageError, match=r"input file .*c\.parquet: unreadable as parquet"):
        run(pipeline, tmp_path / "work")
    for shard in data.glob("*.parquet"):
        pq.write_table(make_rows().slice(0, 0), shard)
    with pytest.raises(StageError, match=r"every input shard is empty"):
        run(pipeline, tmp_path / "work")
    assert not (tmp_path / "work" / "stages").exists()


def test_files_input(tmp_path):
    corpus = tmp_path / "p" / "corpus"
    corpus.mkdir(parents=True)
    (corpus / "a.txt").write_text("alpha")
    (corpus / "b.md").write_text("beta text")
    pipeline = write_pipeline(tmp_path / "p", input_={"files": ["corpus/*"], "rows_per_shard": 1},
                              stages=[{"stage": "test_file_size"}])
    m = run(pipeline, tmp_path / "work", workers=2)
    table = pa.concat_tables([pq.read_table(p) for p in sorted((tmp_path / "work" / "output").glob("*.parquet"))])
    assert table.column("size").to_pylist() == [5, 9] and m["input"]["shards"] == 2
    origin = json.loads(table.column("provenance")[1].as_py())["origin"]
    assert origin["kind"] == "file" and origin["path"] == "corpus/b.md" and len(origin["sha256"]) == 64
    (corpus / "c.txt").write_text("")
    with pytest.raises(StageError, match=r"c\.txt: empty file"):
        run(pipeline, tmp_path / "work")


def test_status(pipeline, tmp_path):
    from megascience_build.engine.status import work_status
    work = tmp_path / "work"
    run(pipeline, work)
    st = work_status(work)
    assert [(s["label"], s["state"], s["rows_out"]) for s in st["stages"]] == \
        [("tag", "done", 23), ("answer", "done", 22), ("dedup", "done", 19), ("upper", "done", 19)]
    assert st["input_shards"] == 5 and st["locked_by"] is None


def test_named_backend_from_the_backends_package(tmp_path):
    """The engine builds `backend: scripted` through megascience_build.backends.make_backend."""
    log = tmp_path / "scripted.jsonl"
    models = {"gen": {"backend": "scripted", "model": "scripted-test", "revision": "1", "batch_size": 4,
                      "options": {"rules": [{"pattern": "LONG", "response": "", "finish_reason": "length"},
                                            {"pattern": r"number (\d+)", "response": "answer"}],
                                  "default": "other", "log_path": str(log)}}}
    pipeline = write_pipeline(tmp_path / "p", models=models)
    m = run(pipeline, tmp_path / "work")
    answer = m["stages"][1]
    assert answer["dropped"] == {"generation_length": 1} and answer["models"][0]["model"] == "scripted-test"
    assert m["stages"][2]["rows_out"] == 1            # every answer is "answer": dedup keeps one
    assert len(log.read_text().splitlines()) == answer["usage"]["cache_misses"] == 20


def test_an_emptied_shard_keeps_the_column_types_of_the_others(tmp_path):
    rows = make_rows()
    texts = rows.column("text").to_pylist()
    texts[5:10] = [""] * 5                      # shard 1 loses every row in the first stage
    rows = rows.set_column(rows.schema.get_field_index("text"), "text", pa.array(texts))
    stages = [{"stage": "test_tag_length", "label": "tag"},
              {"stage": "test_answer", "label": "answer", "llm": "gen", "prompts": {"ask": "ask.txt"}},
              {"stage": "test_upper", "label": "upper"}]
    pipeline = write_pipeline(tmp_path / "p", rows=rows, stages=stages)
    m = run(pipeline, tmp_path / "work")
    assert [o["rows"] for o in m["outputs"]] == [5, 0, 5, 5, 4]
    schemas = [pq.read_schema(p) for p in output_paths(m, tmp_path / "work")]
    assert all(s.equals(schemas[0]) for s in schemas) and schemas[0].field("answer").type == pa.string()


def test_embedder_stage_loads_its_model_once_in_the_main_process(tmp_path):
    import os
    built = tmp_path / "built.txt"
    models = {"emb": {"backend": "engine_plugins:FakeEmbedder", "model": "fake-emb",
                      "options": {"built_file": str(built)}}}
    stages = [{"stage": "test_tag_length", "label": "tag"}, {"stage": "test_embed", "label": "embed", "embedder": "emb"}]
    pipeline = write_pipeline(tmp_path / "p", models=models, stages=stages)
    m = run(pipeline, tmp_path / "work", workers=2)
    assert built.read_text().split() == [str(os.getpid())]       # one embedder, in this process, for 5 shards
    assert m["stages"][1]["rows_out"] == 23 and m["stages"][1]["models"][0]["model"] == "fake-emb"
    values = pa.concat_tables([pq.read_table(p) for p in output_paths(m, tmp_path / "work")]).column("emb0").to_pylist()
    assert all(0 < v <= 1 for v in values)


def test_duplicate_or_null_input_ids_are_refused(tmp_path):
    rows = make_rows()
    ids = rows.column("id").to_pylist()
    ids[3] = ids[2]
    pipeline = write_pipeline(tmp_path / "p", rows=rows.set_column(0, "id", pa.array(ids)))
    with pytest.raises(StageError, match="column 'id' has duplicate values"):
        run(pipeline, tmp_path / "work")
    ids[3] = None
    pipeline = write_pipeline(tmp_path / "q", rows=rows.set_column(0, "id", pa.array(ids)))
    with pytest.raises(StageError, match="column 'id' has 1 null value"):
        run(pipeline, tmp_path / "work")


def test_run_pipeline_picks_the_executor_and_refuses_an_unknown_one(pipeline, tmp_path):
    from megascience_build.engine.orchestration import run_pipeline
    with pytest.raises(ValueError, match="unknown executor 'dask'; expected one of local, ray"):
        run_pipeline(load_pipeline(pipeline), tmp_path / "w", RunOptions(progress=False, executor="dask"))
    assert not (tmp_path / "w").exists()
    m = run_pipeline(load_pipeline(pipeline), tmp_path / "w", RunOptions(progress=False))
    assert m["executor"]["name"] == "local" and WorkDir(tmp_path / "w").read_plan()["executor"] == "local"
