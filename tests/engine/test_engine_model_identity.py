"""Cache keys, fingerprints, the manifest and provenance take the model's resolved identity: swapped
weights, another dtype or chat template never reuse an answer; an unchanged replay is byte-identical."""
from __future__ import annotations

import json
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from engine_testlib import make_rows, write_pipeline
from megascience_build.backends import local_models
from megascience_build.engine.cache import CacheMissError
from megascience_build.engine.executor_local import run_local
from megascience_build.engine.orchestration import RunOptions
from megascience_build.engine.manifest import output_paths
from megascience_build.engine.pipeline_config import load_pipeline

ANSWER_ONLY = [{"stage": "test_answer", "label": "answer", "llm": "gen", "prompts": {"ask": "ask.txt"},
                "sampling": {"max_tokens": 12, "stop": [" "]}}]   # SmolLM2's first word: short, and kept


def run(pipeline, work, cache, **options):
    return run_local(load_pipeline(pipeline), work, RunOptions(progress=False, cache_path=str(cache), **options))


def edit_model(pipeline, **options):
    doc = yaml.safe_load(pipeline.read_text())
    doc["models"]["gen"].setdefault("options", {}).update(options)
    pipeline.write_text(yaml.safe_dump(doc, sort_keys=False))


def output_bytes(manifest, work):
    return [open(p, "rb").read() for p in output_paths(manifest, work)]


def steps(manifest, work):
    table = pa.concat_tables([pq.read_table(p) for p in output_paths(manifest, work)])
    return [json.loads(p)["steps"][-1] for p in table.column("provenance").to_pylist()]


@pytest.mark.slow
@pytest.mark.model
def test_smollm2_identity_keys_the_cache_manifest_and_provenance(tmp_path):
    weights = tmp_path / "weights" / "smollm2.gguf"
    weights.parent.mkdir()
    shutil.copyfile(local_models.smollm2_gguf_path(), weights)
    sha = local_models.file_sha256(weights)
    models = {"gen": {"backend": "transformers", "model": str(weights), "batch_size": 4,
                      "options": {"device": "cpu", "max_batch_size": 4}}}
    pipeline = write_pipeline(tmp_path / "p", rows=make_rows(8), models=models, stages=ANSWER_ONLY)
    cache = tmp_path / "cache.sqlite"
    first = run(pipeline, tmp_path / "w1", cache)
    gen = first["models"]["gen"]
    assert (gen["model"], gen["revision"], gen["dtype"], gen["quantization"]) == (
        "smollm2", sha, "float32", "gguf-dequantized")
    assert first["stages"][0]["models"] == [gen] and first["stages"][0]["usage"]["cache_misses"] == 8
    assert {(s["model"], s["revision"]) for s in steps(first, tmp_path / "w1")} == {("smollm2", sha)}
    assert str(tmp_path) not in json.dumps(first)

    replay = run(pipeline, tmp_path / "w2", cache, cache_only=True)           # unchanged: byte-identical
    assert output_bytes(replay, tmp_path / "w2") == output_bytes(first, tmp_path / "w1")

    edit_model(pipeline, dtype="bfloat16")                                      # another dtype misses
    with pytest.raises(CacheMissError, match="smollm2@"):
        run(pipeline, tmp_path / "w3", cache, cache_only=True)
    edit_model(pipeline, dtype="float32", chat_template="{% for m in messages %}{{ m.content }}{% endfor %}")
    with pytest.raises(CacheMissError):                                         # another template misses
        run(pipeline, tmp_path / "w4", cache, cache_only=True)
    edit_model(pipeline, chat_template=None)
    assert output_bytes(run(pipeline, tmp_path / "w5", cache, cache_only=True), tmp_path / "w5") == \
        output_bytes(first, tmp_path / "w1")
    with open(weights, "ab") as fh:                                             # weights swapped, same name
        fh.write(b"\0" * 64)
    with pytest.raises(CacheMissError):
        run(pipeline, tmp_path / "w6", cache, cache_only=True)


def test_changed_model_recomputes_its_stage_and_an_unchanged_one_resumes(tmp_path):
    """The scripted backend's script is its weights: new rules, new identity, recomputed shards."""
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps([{"pattern": "biology", "response": "cells"}]))
    calls = tmp_path / "calls.jsonl"
    models = {"gen": {"backend": "scripted", "model": "scripted/gen", "revision": "1", "batch_size": 4,
                      "options": {"rules_file": str(rules), "default": "atoms", "log_path": str(calls)}}}
    pipeline = write_pipeline(tmp_path / "p", rows=make_rows(8), models=models,
                              stages=[{"stage": "test_tag_length", "label": "tag"}, *ANSWER_ONLY])
    work, cache = tmp_path / "work", tmp_path / "cache.sqlite"
    first = run(pipeline, work, cache)
    sent = len(calls.read_text().splitlines())
    again = run(pipeline, work, cache)
    assert [s["shards_resumed"] for s in again["stages"]] == [s["shards"] for s in again["stages"]]
    assert len(calls.read_text().splitlines()) == sent and output_bytes(again, work) == output_bytes(first, work)
    rules.write_text(json.dumps([{"pattern": "biology", "response": "tissues"}]))     # same name and revision
    changed = run(pipeline, work, cache)
    by = {s["label"]: s for s in changed["stages"]}
    assert by["tag"]["shards_resumed"] == by["tag"]["shards"]           # upstream of the model: resumed
    assert by["answer"]["shards_resumed"] == 0 and by["answer"]["usage"]["cache_hits"] == 0
    assert len(calls.read_text().splitlines()) == 2 * sent
    assert changed["models"]["gen"]["digest"] != first["models"]["gen"]["digest"]
