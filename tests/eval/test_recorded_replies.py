"""Extraction on REAL replies: SmolLM2-135M-Instruct's answers to benchmark questions (recorded by
record_eval_replies.py with megascience-eval itself), each with the answer a person reads in it."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from megascience_eval.extract import extract
from megascience_eval.judge import judge

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "smollm2_replies.json"
RECORDS = json.loads(FIXTURE.read_text())["records"]


def test_the_fixture_covers_several_types_and_benchmarks_and_is_checked():
    assert len(RECORDS) >= 30
    assert {r["qtype"] for r in RECORDS} >= {"multiple_choice", "numeric", "true_false", "free_text"}
    assert len({r["benchmark"] for r in RECORDS}) >= 6
    assert all(r["expected"]["checked"] == "by hand" for r in RECORDS)
    assert not any("gpqa" in r["benchmark"] for r in RECORDS)      # GPQA text is not republished


@pytest.mark.parametrize("record", RECORDS, ids=[f"{r['benchmark']}-{r['id'][:8]}" for r in RECORDS])
def test_extraction_matches_what_a_reader_sees(record):
    got = extract(record["qtype"], record["reply"], record["options"])
    assert got.answer == record["expected"]["answer"], (got, record["reply"][-300:])


def test_unanswered_replies_are_counted_not_scored_silently():
    verdicts = Counter()
    for r in RECORDS:
        got = extract(r["qtype"], r["reply"], r["options"])
        v = judge(r["qtype"], got.answer, r["gold"], rel_tol=1e-6)
        verdicts[v.status] += 1
        if got.answer is None:
            assert v.status == "no_answer" and not v.correct
    assert verdicts["no_answer"] == sum(1 for r in RECORDS if r["expected"]["answer"] is None) > 0
