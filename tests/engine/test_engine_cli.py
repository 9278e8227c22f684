"""megascience-build: exit codes, status and report."""
from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from engine_testlib import subprocess_env
from megascience_build.cli import main
from megascience_build.engine.workdir import WorkDir


def test_run_status_report(pipeline, tmp_path, capsys):
    work = tmp_path / "work"
    assert main(["run", str(pipeline), "--work", str(work), "--workers", "1", "--no-progress"]) == 0
    assert "done: 19 rows in 4 shard(s)" in capsys.readouterr().out
    assert main(["status", "--work", str(work)]) == 0
    out = capsys.readouterr().out
    assert "answer" in out and "done" in out and "pending" not in out
    (work / "report.md").unlink()
    assert main(["report", "--work", str(work)]) == 0
    assert "| **total** | 24 | 23 | 22 | 19 | 19 |" in capsys.readouterr().out and (work / "report.md").exists()


def test_exit_codes(pipeline, tmp_path, capsys):
    doc = yaml.safe_load(pipeline.read_text())
    doc["stages"][0]["stage"] = "nope"
    bad = pipeline.with_name("bad.yaml")
    bad.write_text(yaml.safe_dump(doc))
    assert main(["run", str(bad), "--work", str(tmp_path / "w")]) == 2
    assert "unknown stage 'nope'" in capsys.readouterr().err
    assert main(["run", str(pipeline), "--work", str(tmp_path / "w"), "--model", "judge=x"]) == 2
    holder = WorkDir(tmp_path / "locked")
    holder.lock()
    try:
        assert main(["run", str(pipeline), "--work", str(tmp_path / "locked"), "--no-progress"]) == 1
        assert "in use by another run" in capsys.readouterr().err
    finally:
        holder.unlock()
    assert main(["run", str(pipeline), "--work", str(tmp_path / "w2"), "--cache-only", "--no-progress"]) == 1
    assert "--cache-only" in capsys.readouterr().err
    assert main(["status", "--work", str(tmp_path / "never")]) == 1
    with pytest.raises(SystemExit) as exc:
        main(["run", str(pipeline), "--work", str(tmp_path / "w"), "--model", "no-equals-sign"])
    assert exc.value.code == 2


def test_help_everywhere():
    for args in ([], ["run"], ["status"], ["report"]):
        res = subprocess.run([sys.executable, "-m", "megascience_build.cli", *args, "--help"], capture_output=True,
                             text=True, env=subprocess_env(), timeout=60)
        assert res.returncode == 0 and "usage: megascience-build" in res.stdout


def test_a_failing_shard_fails_the_run_and_the_rerun_resumes(pipeline, tmp_path, monkeypatch, capsys):
    work = tmp_path / "work"
    monkeypatch.setenv("ENGINE_TEST_FAIL_ON", "number 17 ")    # row 17: input shard 3 (rows 15-19)
    assert main(["run", str(pipeline), "--work", str(work), "--workers", "2", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "run failed: RuntimeError: test failure" in err and "run the same command again to resume" in err
    done = sorted(p.name for p in (work / "stages" / "00_tag").glob("part-*.json"))
    assert "part-00003.json" not in done and not (work / "output").exists()
    monkeypatch.delenv("ENGINE_TEST_FAIL_ON")
    assert main(["run", str(pipeline), "--work", str(work), "--workers", "2", "--no-progress"]) == 0
    manifest = __import__("json").loads((work / "manifest.json").read_text())
    assert manifest["stages"][0]["shards_resumed"] == len(done) and manifest["output_rows"] == 19


def test_limit_runs_on_the_first_rows(pipeline, tmp_path, capsys):
    work = tmp_path / "work"
    assert main(["run", str(pipeline), "--work", str(work), "--limit", "7", "--workers", "1", "--no-progress"]) == 0
    manifest = __import__("json").loads((work / "manifest.json").read_text())
    assert manifest["input"]["rows"] == 7 and manifest["input"]["shards"] == 2 and manifest["input"]["limit"] == 7
    assert manifest["stages"][0]["rows_in"] == 7 and manifest["pipeline"]["overrides"]["limit"] == 7


def test_plan_scales_a_trial_run_to_full_size_and_prices_it_in_gpu_hours(pipeline, tmp_path, capsys):
    import json as _json
    from megascience_build.cli import main as cli
    work = tmp_path / "trial"
    assert cli(["run", str(pipeline), "--work", str(work), "--no-progress"]) == 0
    trial = _json.loads((work / "manifest.json").read_text())
    answer = next(s for s in trial["stages"] if s["label"] == "answer")
    capsys.readouterr()
    assert cli(["plan", "--work", str(work), "--rows", "2400", "--rate", "gen=50", "--json"]) == 0
    p = _json.loads(capsys.readouterr().out)
    planned = next(s for s in p["stages"] if s["label"] == "answer")
    assert p["scale"] == 100 and planned["requests"] == answer["usage"]["requests"] * 100
    assert planned["gpu_hours"] == pytest.approx(answer["usage"]["tokens_out"] * 100 / 50 / 3600)
    assert p["total"]["gpu_hours"] == pytest.approx(planned["gpu_hours"]) and p["roles_without_rate"] == []
    assert cli(["plan", "--work", str(work), "--rows", "2400"]) == 0
    text = capsys.readouterr().out
    assert "| answer | gen |" in text and "No rate for role(s) gen" in text
    with pytest.raises(SystemExit):
        cli(["plan", "--work", str(work), "--rows", "10", "--rate", "gen=fast"])
