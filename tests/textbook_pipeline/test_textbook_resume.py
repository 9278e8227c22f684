"""The TextbookReasoning pipeline killed with SIGKILL while its refine stage runs, then run again in the same work
directory: the output is byte for byte the output of an uninterrupted run, and no request whose answer was
already cached is sent again."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from textbook_e2e_lib import HERE, calls, make_corpus, write_pipeline
from textbook_e2e_script import kind_of

CLI = [sys.executable, "-m", "megascience_build.cli", "run"]


def env() -> dict:
    e = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    e["PYTHONPATH"] = os.pathsep.join([str(HERE), e.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return e


def start(pipeline: Path, work: Path) -> subprocess.Popen:
    return subprocess.Popen([*CLI, str(pipeline), "--work", str(work), "--workers", "1", "--no-progress"], env=env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


def finish(proc: subprocess.Popen) -> None:
    _, err = proc.communicate(timeout=500)
    assert proc.returncode == 0, err.decode()[-3000:]


def refine_calls(log: Path) -> list[dict]:
    return [c for c in calls(log) if kind_of(c["user"]) == "refine"]


def test_sigkill_during_refine_then_resume(tmp_path):
    corpus = make_corpus(tmp_path)
    log = tmp_path / "calls.jsonl"
    pipeline = write_pipeline(tmp_path / "p", "textbook", corpus["books"], log, refiner_delay=0.05)
    work = tmp_path / "work"

    proc = start(pipeline, work)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if list((work / "stages").glob("*_refine/*.parquet")) and len(refine_calls(log)) >= 12:
            break
        time.sleep(0.02)
    assert proc.poll() is None, proc.communicate()[1].decode()[-3000:]
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    sent_before_kill = calls(log)
    (refine_dir,) = (work / "stages").glob("*_refine")
    assert not (refine_dir / "_SUCCESS.json").exists() and not (work / "output").exists()   # killed inside refine
    with sqlite3.connect(work / "cache.sqlite") as db:
        cached_at_kill = {k for (k,) in db.execute("SELECT key FROM responses")}
    assert {c["key"] for c in sent_before_kill if kind_of(c["user"]) == "refine"} & cached_at_kill

    proc = start(pipeline, work)
    finish(proc)
    sent_after = calls(log)[len(sent_before_kill):]
    assert {c["key"] for c in sent_before_kill} >= cached_at_kill
    assert not cached_at_kill & {c["key"] for c in sent_after}, "a cached request was sent again"
    assert not {"classify", "extract_high", "extract_low"} & {kind_of(c["user"]) for c in sent_after}

    reference_work = tmp_path / "reference"
    finish(start(pipeline, reference_work))
    got = {p.name: p.read_bytes() for p in sorted((work / "output").glob("*.parquet"))}
    want = {p.name: p.read_bytes() for p in sorted((reference_work / "output").glob("*.parquet"))}
    assert got and got == want
