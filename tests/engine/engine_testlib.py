"""Helpers for the engine tests: a small parquet input with subjects, a prompt, and a pipeline file writer.
(A module with a unique name: every test folder has its own conftest.py, so `from conftest import` is ambiguous.)"""
from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

HERE = Path(__file__).resolve().parent   # on PYTHONPATH of subprocesses: pipelines name `engine_plugins`

SUBJECTS = ["biology", "chemistry", "physics"]


def make_rows(n: int = 24) -> pa.Table:
    from megascience_build.engine import records
    texts = [f"question number {i % (n - 3)} about {SUBJECTS[i % 3]}" for i in range(n)]   # 3 duplicates
    texts[5] = ""                       # dropped by test_tag_length (too_short)
    texts[7] = "a LONG question"        # the fake backend answers "length"
    ids = [records.content_id("test", i) for i in range(n)]
    provs = [records.new_provenance({"kind": "dataset", "repo": "test", "row": i}) for i in range(n)]
    return pa.table({"id": ids, "provenance": provs, "text": texts, "subject": [SUBJECTS[i % 3] for i in range(n)]})


def write_pipeline(root: Path, *, stages=None, models=None, input_=None, rows=None, extra=None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    data = root / "data"
    data.mkdir(exist_ok=True)
    table = rows if rows is not None else make_rows()
    half = table.num_rows // 2
    pq.write_table(table.slice(0, half), data / "a.parquet")
    pq.write_table(table.slice(half), data / "b.parquet")
    (root / "ask.txt").write_text("--- system\nYou answer.\n--- user\nQ: {{text}}\n")
    doc = {
        "name": "engine-test",
        "seed": 0,
        "plugins": ["engine_plugins"],
        "input": input_ or {"parquet": ["data/*.parquet"], "rows_per_shard": 5},
        "models": models or {"gen": {"backend": "engine_plugins:FakeBackend", "model": "fake/model",
                                     "revision": "r1", "batch_size": 2,
                                     "options": {"calls_file": str(root / "calls.jsonl")}}},
        "stages": stages or [
            {"stage": "test_tag_length", "label": "tag"},
            {"stage": "test_answer", "label": "answer", "llm": "gen", "prompts": {"ask": "ask.txt"},
             "sampling": {"max_tokens": 32}},
            {"stage": "test_dedup", "label": "dedup"},
            {"stage": "test_upper", "label": "upper"},
        ],
        **(extra or {}),
    }
    path = root / "pipeline.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def subprocess_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env
