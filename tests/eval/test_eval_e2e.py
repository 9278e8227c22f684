"""End to end with a scripted model: exact scores, instance outputs, resume from the cache, report, compare."""
from __future__ import annotations

import hashlib
import json

import pyarrow.parquet as pq
import pytest

from eval_testlib import N, SCRIPTED, write_synthetic
from megascience_eval import cli
from megascience_eval.benchmarks import load_eval_registry
from megascience_eval.run import INSTANCE_COLUMNS, execute, prepare


def run_synthetic(tmp_path, work_name="work", model=None, **kw):
    registry = write_synthetic(tmp_path / "bench")
    specs = load_eval_registry(registry).select("synthetic")
    work = tmp_path / work_name
    prepare(work, specs, model or SCRIPTED, sampling={"max_tokens": 64})
    manifest = execute(work, **kw)
    return work, manifest


def test_scripted_model_scores_exactly_its_known_fraction(tmp_path):
    work, manifest = run_synthetic(tmp_path)
    assert cli.main(["report", "--work", str(work)]) == 0
    scores = json.loads((work / "scores.json").read_text())
    for entry in ("sums", "mc"):
        s = scores["subparts"][entry]
        assert (s["n"], s["correct"], s["no_answer"]) == (N, 28, 2)
        assert s["accuracy"] == 70.0
    assert scores["benchmarks"]["GSM8K"]["accuracy"] == 70.0
    assert scores["aggregates"]["Math"] == {"value": 70.0, "covered": 1, "of": 3, "complete": False}
    assert scores["aggregates"]["All"]["covered"] == 2 and scores["no_answer"] == 4
    table = pq.read_table(work / "instances.parquet")
    assert table.column_names == list(INSTANCE_COLUMNS) and table.num_rows == 2 * N
    rows = {(r["benchmark"], r["question"].split(":")[0]): r for r in table.to_pylist()}
    r5 = rows[("sums", "Item 5")]
    assert r5["gold"] == "15" and r5["extracted"] == "15" and r5["correct"] and r5["method"] == "boxed"
    r10 = rows[("mc", "Item 10")]
    assert r10["status"] == "no_answer" and r10["extracted"] is None and not r10["correct"]
    assert json.loads(r5["messages"])[-1]["content"].endswith("Item 5: what is 5 plus 10?")
    report = (work / "eval_report.md").read_text()
    assert "| GSM8K | 70.00 |" in report and "partial: 2/14" in report and "none 2" in report
    assert (work / "eval_scores.png").read_bytes()[:4] == b"\x89PNG"
    sha = hashlib.sha256((tmp_path / "bench" / "sums.jsonl").read_bytes()).hexdigest()
    assert json.loads((work / "eval_run.json").read_text())["data"]["sums"]["files"] == [{"file": "sums.jsonl",
                                                                                          "sha256": sha}]
    assert f"`sums` `sums.jsonl` sha256 {sha[:12]}" in report           # the report names the data read


def test_rerun_resumes_from_the_cache_without_calling_the_model(tmp_path):
    log = tmp_path / "calls.jsonl"
    model = {**SCRIPTED, "options": {**SCRIPTED["options"], "log_path": str(log)}}
    work, first = run_synthetic(tmp_path, model=model)
    calls = len(log.read_text().splitlines())
    assert calls == 2 * N
    (work / "stages").rename(tmp_path / "old_stages")          # lose every finished shard: answers stay cached
    (work / "manifest.json").unlink()
    work, second = run_synthetic(tmp_path, model=model)
    assert len(log.read_text().splitlines()) == calls           # no new request reached the model
    gen = next(s for s in second["stages"] if s["label"] == "generate")
    assert gen["usage"]["cache_hits"] == 2 * N and gen["usage"]["cache_misses"] == 0
    assert pq.read_table(work / "instances.parquet").num_rows == 2 * N


def test_cli_run_on_a_local_file_and_compare_two_runs(tmp_path, capsys):
    write_synthetic(tmp_path / "bench")
    args = ["run", "--file", str(tmp_path / "bench" / "sums.jsonl"), "--type", "numeric", "--question", "q",
            "--answer", "a", "--answer-format", "gsm8k", "--paper", "GSM8K", "--backend", "scripted", "--model", "scripted-eval",
            "--option", "responder=eval_responder:answer", "--max-tokens", "64"]
    assert cli.main([*args, "--work", str(tmp_path / "a")]) == 0
    assert cli.main([*args, "--work", str(tmp_path / "b"), "--sample", "10", "--seed", "3"]) == 0
    b = json.loads((tmp_path / "b" / "scores.json").read_text())
    assert b["questions"] == 10
    capsys.readouterr()
    assert cli.main(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "cmp"),
                     "--label", "full", "--label", "sample", "--published", "Qwen2.5-7B-Instruct"]) == 0
    md = (tmp_path / "cmp" / "compare_report.md").read_text()
    assert "| Benchmark | full | sample | Qwen2.5-7B-Instruct (paper) |" in md
    assert "| GSM8K | 70.00 |" in md and "91.96" in md and "58.80" in md
    assert (tmp_path / "cmp" / "compare_scores.png").exists()
    assert "**Not the same questions**" in md and "`sums`" in md        # a sample of 10 against all 40
    assert cli.main([*args, "--work", str(tmp_path / "c"), "--temperature", "0.5"]) == 0
    assert cli.main(["compare", str(tmp_path / "a"), str(tmp_path / "c"), "--out", str(tmp_path / "cmp2")]) == 0
    md2 = (tmp_path / "cmp2" / "compare_report.md").read_text()
    assert "All runs scored the same questions" in md2 and "Not the same" not in md2


def test_configuration_errors_exit_2_before_any_work(tmp_path, capsys):
    work = tmp_path / "w"
    assert cli.main(["run", "--work", str(work), "--benchmarks", "nope", "--backend", "scripted",
                     "--model", "x"]) == 2
    assert "unknown benchmark or set 'nope'" in capsys.readouterr().err
    assert cli.main(["run", "--work", str(work), "--benchmarks", "olympicarena", "--backend", "scripted",
                     "--model", "x"]) == 2
    assert "test answers are not public" in capsys.readouterr().err
    # the `paper` set skips the withheld OlympicArena (and says so), then stops at the first unpinned Hub source
    assert cli.main(["run", "--work", str(work), "--benchmarks", "paper", "--backend", "scripted", "--model", "x"]) == 2
    err = capsys.readouterr().err
    assert "skipping olympicarena: gold answers not public" in err and "no pinned revision" in err
    assert "supergpqa (m-a-p/SuperGPQA)" in err and "math_algebra (EleutherAI/hendrycks_math)" in err   # all listed
    assert not work.exists()


@pytest.mark.slow
def test_ray_executor_gives_the_local_instances(tmp_path, monkeypatch):
    import os

    import ray
    from eval_testlib import Path  # noqa: F401
    here = str(__import__("pathlib").Path(__file__).resolve().parent)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([here, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    local, _ = run_synthetic(tmp_path, "local")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        remote, manifest = run_synthetic(tmp_path, "ray", executor="ray")
    finally:
        ray.shutdown()
    assert manifest["executor"]["name"] == "ray"
    assert pq.read_table(remote / "instances.parquet").equals(pq.read_table(local / "instances.parquet"))


def test_default_batch_size_is_one_transformers_batch():
    assert cli.default_batch_size("transformers", {"max_batch_size": 8}) == 8
    assert cli.default_batch_size("transformers", {}) == 16
    assert cli.default_batch_size("openai", {"concurrency": 8}) == 64
