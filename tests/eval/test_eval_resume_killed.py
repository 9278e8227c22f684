"""A run killed mid-way (SIGKILL, no clean-up; or Ctrl-C, exit 130) resumes from the request cache: the
rerun asks the model only for what was not committed, and its scores equal those of an uninterrupted run."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from eval_testlib import N, write_synthetic
from megascience_eval import cli

HERE = Path(__file__).resolve().parent
BATCH = 4


def _args(registry: Path, work: Path, log: Path, delay: float) -> list[str]:
    return ["run", "--registry", str(registry), "--benchmarks", "synthetic", "--work", str(work),
            "--backend", "scripted", "--model", "scripted-eval", "--option", "responder=eval_responder:answer",
            "--option", f"log_path={log}", "--option", f"delay={delay}", "--batch-size", str(BATCH),
            "--max-tokens", "64"]


def _calls(log: Path) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_killed_run_resumes_from_the_cache(tmp_path, sig):
    registry = write_synthetic(tmp_path / "bench")
    work, log = tmp_path / "work", tmp_path / "calls.jsonl"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    # a shell's background job starts with SIGINT ignored, and Python then installs no Ctrl-C handler: give the
    # child the default disposition so that this test sees the CLI's own handling wherever it runs
    proc = subprocess.Popen([sys.executable, "-m", "megascience_eval.cli", *_args(registry, work, log, 0.05)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while _calls(log) < 3 * BATCH + 1 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(sig)
    proc.wait(timeout=60)
    before = _calls(log)
    err = proc.stderr.read().decode()
    assert BATCH < before < 2 * N, err[-2000:]
    if sig == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL
    else:
        assert proc.returncode == 130 and "interrupted; answers so far are cached" in err, err[-2000:]
    assert not (work / "scores.json").exists()

    assert cli.main(_args(registry, work, log, 0.0)) == 0
    asked_again = _calls(log) - before
    # only answers not yet committed are regenerated: at most one commit group was lost with the process
    assert asked_again <= 2 * N - before + BATCH
    assert _calls(log) < 2 * N + BATCH
    scores = json.loads((work / "scores.json").read_text())
    assert scores["questions"] == 2 * N
    assert [scores["subparts"][e]["correct"] for e in ("sums", "mc")] == [28, 28]
