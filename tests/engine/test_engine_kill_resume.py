"""A run killed with SIGKILL in the middle of its model stage (its shards in flight, the CLI's default, with
requests at the backend), then restarted, gives exactly the rows of an uninterrupted run and does not send a
cached request again."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
import yaml

from engine_testlib import subprocess_env, write_pipeline

CLI = [sys.executable, "-m", "megascience_build.cli", "run"]


def start(pipeline, work):
    return subprocess.Popen([*CLI, str(pipeline), "--work", str(work), "--workers", "2", "--no-progress"],
                            env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


def streaming_models(root):
    """The same answers from the scripted backend, which the engine feeds as a continuous stream."""
    return {"gen": {"backend": "scripted", "model": "fake/model", "revision": "r1", "batch_size": 2,
                    "options": {"responder": "engine_plugins:reverse_responder", "log_path": str(root / "calls.jsonl")}}}


def committed(cache_file) -> int:
    """Rows committed to the request cache so far, read as a second process would (0 before it exists)."""
    if not cache_file.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{cache_file}?mode=ro", uri=True) as db:
            return db.execute("SELECT count(*) FROM responses").fetchone()[0]
    except sqlite3.OperationalError:        # the table is not created yet
        return 0


def sent_keys(calls_file):
    lines = calls_file.read_text().splitlines()
    return [json.loads(line)["key"] if line.startswith("{") else line for line in lines]


@pytest.mark.parametrize("flow", ["batch", "continuous"])
def test_sigkill_mid_model_stage_then_resume(tmp_path, flow):
    models = streaming_models(tmp_path / "slow") if flow == "continuous" else None
    slow = write_pipeline(tmp_path / "slow", models=models)
    doc = yaml.safe_load(slow.read_text())
    doc["models"]["gen"]["options"]["delay"] = 0.15          # ~20 requests: about 3 s inside the model stage
    slow.write_text(yaml.safe_dump(doc, sort_keys=False))
    calls_file, work = slow.parent / "calls.jsonl", tmp_path / "work"

    proc = start(slow, work)
    deadline = time.time() + 120
    # Kill once 7 answers were sent and 6 committed: the commit of the last pair lags its answers by a
    # few ms, so a trigger on sent answers alone races it on a loaded machine.
    while time.time() < deadline and proc.poll() is None:
        if (calls_file.exists() and len(calls_file.read_text().splitlines()) >= 7
                and committed(work / "cache.sqlite") >= 6):
            break
        time.sleep(0.02)
    assert proc.poll() is None, proc.communicate()[1].decode()
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    sent_before_kill = sent_keys(calls_file)
    with sqlite3.connect(work / "cache.sqlite") as db:
        cached_at_kill = {k for (k,) in db.execute("SELECT key FROM responses")}
    assert 7 <= len(sent_before_kill) < 20 and len(cached_at_kill) >= 6      # killed in the middle
    assert not (work / "output").exists()

    proc = start(slow, work)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()
    sent_after = sent_keys(calls_file)[len(sent_before_kill):]
    assert cached_at_kill <= set(sent_before_kill)
    assert not cached_at_kill & set(sent_after), "a cached request was sent again"
    lost = set(sent_before_kill) - cached_at_kill       # answered but killed before the batch was committed
    assert len(lost) <= 2                                # at most one batch (batch_size 2) uncommitted

    reference = write_pipeline(tmp_path / "reference", models=streaming_models(tmp_path / "reference")
                               if flow == "continuous" else None)
    ref = subprocess.run([*CLI, str(reference), "--work", str(tmp_path / "ref-work"), "--no-progress"],
                         env=subprocess_env(), capture_output=True, timeout=300)
    assert ref.returncode == 0, ref.stderr.decode()
    got = {p.name: p.read_bytes() for p in sorted((work / "output").glob("*.parquet"))}
    want = {p.name: p.read_bytes() for p in sorted((tmp_path / "ref-work" / "output").glob("*.parquet"))}
    assert got == want and len(got) == 4                 # same rows, same order, same bytes

    import pyarrow as pa
    import pyarrow.parquet as pq
    ids = pa.concat_tables([pq.read_table(work / "output" / n) for n in got]).column("id").to_pylist()
    assert len(ids) == len(set(ids)) == 19
