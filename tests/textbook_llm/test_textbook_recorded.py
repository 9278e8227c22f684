"""Parsers and stages on real SmolLM2-135M-Instruct replies recorded by record_fixtures.py.

The small model rarely follows the formats (it loops, echoes the instructions, and answers off-format),
which is what these tests need: real malformed output. The expectations below were read off the
recorded replies by hand; regenerating the fixtures means re-reading them.
"""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from megascience_build.backends.base import GenerationResult
from megascience_build.engine import records
from megascience_build.engine.prompts import load_prompt
from megascience_build.stages.cot import SupplementCoT, parse_solution
from megascience_build.stages.extract_qa import ExtractQA, parse_qa_pairs
from megascience_build.stages.filter_qa import FilterQA
from megascience_build.stages.reference_answer import ReferenceAnswer, parse_reference_answer
from megascience_build.stages.refine_qa import RefineQA, parse_refined
from megascience_build.stages.replies import parse_decision
from textbook_fakes import FakeCtx, FakeLLM, provenance, signals_of

INPUTS = json.loads((Path(__file__).resolve().parent / "fixture_inputs.json").read_text(encoding="utf-8"))
PARSER = {"refine_qa": parse_refined, "judge_cot": parse_decision, "filter_qa": parse_decision,
          "reference_answer": parse_reference_answer, "supplement_cot": parse_solution, "distill_cot": parse_solution}


def parser_for(name):
    return PARSER.get(name, parse_qa_pairs)


def replay(recorded) -> FakeLLM:
    """A fake model that answers each request with the reply recorded for exactly its messages."""
    table = {json.dumps(r["messages"], sort_keys=True): r for doc in recorded.values() for r in doc["records"]}

    def reply(req):
        key = json.dumps([dict(m) for m in req.messages], sort_keys=True)
        assert key in table, "no recorded reply for this prompt: rerun tests/textbook_llm/record_fixtures.py"
        rec = table[key]
        return GenerationResult(text=rec["output"], finish_reason=rec["finish_reason"])
    return FakeLLM(reply, model_id="HuggingFaceTB/SmolLM2-135M-Instruct")


def test_fixtures_match_the_current_prompts(recorded):
    assert len(recorded) == 20
    for name, doc in recorded.items():
        tmpl = load_prompt(name)
        assert doc["prompt_sha256"] == tmpl.sha256, f"{name}: prompt changed since recording; rerun record_fixtures.py"
        for rec in doc["records"]:
            assert rec["messages"] == [dict(m) for m in tmpl.render(**rec["input"])]
            assert rec["finish_reason"] in ("stop", "length")


# Hand-read expectations for every complete ("stop") reply: the parser's result.
EXPECTED = {
    ("extract_high_biology", 0): None,         # "The passage is not a biology textbook. It is a biology puzzle."
    ("extract_high_biology", 1): None,         # restates the task, no pair, no NO_QA
    ("extract_high_economics", 0): None,       # "The answer is: 6.1 Market equilibrium" ...
    ("extract_high_mathematics", 0): None,     # a numbered list of statements, no Question/Answer labels
    # "1. Find the sum ... Answer: 1820." echoed from the exercise list: a numbered item with an inline answer
    ("extract_low_mathematics", 0): [("Find the sum of the first 6 terms of the series 5 + 15 + 45 + ...", "1820.")],
    ("refine_qa", 0): None, ("refine_qa", 1): None, ("refine_qa", 2): None,   # "The answer is ..." only
    ("judge_cot", 0): False,                   # "Decision: YES" then "Decision: NO": the last one counts
    ("judge_cot", 1): None,                    # no decision, no YES/NO word
    ("judge_cot", 2): True,                    # "Decision: YES" then "The answer is YES."
    ("filter_qa", 0): None, ("filter_qa", 1): None, ("filter_qa", 2): None,
    ("reference_answer", 1): "The equilibrium price is $20 per bushel and the quantity is 60 million bushels",
    ("supplement_cot", 0): "A 2.0 kg block is released from rest at the top of a frictionless ramp, and it is "
                           "moving at the bottom at a speed of 6.3 m/s.",
    ("supplement_cot", 1): "The answer is: 20",
    ("supplement_cot", 2): "The genotype of the black parent is Bb.",
}


def test_every_complete_recorded_reply_has_a_hand_checked_expectation(recorded):
    complete = {(name, k) for name, doc in recorded.items() for k, r in enumerate(doc["records"])
                if r["finish_reason"] == "stop" and name != "distill_cot"}
    assert complete == set(EXPECTED)


@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_parsers_on_recorded_replies(recorded, key):
    name, k = key
    assert parser_for(name)(recorded[name]["records"][k]["output"]) == EXPECTED[key]


def test_distilled_solutions_are_read_whole(recorded):
    for rec in recorded["distill_cot"]["records"]:
        if rec["finish_reason"] == "stop":
            assert parse_solution(rec["output"]) == rec["output"].strip()


def test_parsers_on_truncated_replies_never_raise_and_loops_collapse(recorded):
    for name, doc in recorded.items():
        for rec in doc["records"]:
            result = parser_for(name)(rec["output"])
            if isinstance(result, list):
                assert len(result) == len(set(result))
                assert all(q in rec["output"] and a in rec["output"] for q, a in result)
    # a looping, cut-off extraction still yields pairs to the parser, which is why stages never parse
    # a reply whose finish_reason is not "stop"
    looping = recorded["extract_low_biology"]["records"][1]
    assert looping["finish_reason"] == "length"
    assert parse_qa_pairs(looping["output"])[0] == (
        "What is the process of photosynthesis?",
        "The process of photosynthesis is a biological process that occurs in plants.")


# -- the stages replaying the recorded replies ----------------------------------------------------------------
def chunk_rows():
    rows = []
    for d in ("mathematics", "physics", "chemistry", "biology", "medicine", "computer_science", "economics"):
        subject = d.replace("_", " ")
        for kind in (d, "front_matter"):
            rows.append({records.ID: records.content_id(d, kind), records.PROVENANCE: provenance(book_id=d),
                         "chunk_text": INPUTS["passages"][kind], "subject": subject})
    return pa.Table.from_pylist(rows)


def pair_rows():
    return pa.Table.from_pylist([
        {records.ID: records.content_id("pair", i), records.PROVENANCE: provenance(book_id="b"),
         "question": p["question"], "answer": p["answer"], "chunk_text": INPUTS["passages"][p["chunk"]],
         "subject": p["subject"]} for i, p in enumerate(INPUTS["pairs"])])


def test_extract_qa_on_recorded_replies(recorded):
    stage = ExtractQA()
    out = stage.process(chunk_rows(), FakeCtx(stage, {None: replay(recorded)}))
    # five of the 28 replies are complete; one of them (the mathematics chunk, low standard) holds a
    # pair; every chunk without a pair had a reply cut off at 200 tokens (which takes precedence)
    (row,) = out.kept.to_pylist()
    assert (row["question"], row["answer"], row["standard"]) == (
        "Find the sum of the first 6 terms of the series 5 + 15 + 45 + ...", "1820.", "low")
    assert row["chunk_id"] == chunk_rows()[records.ID][0].as_py()
    assert out.dropped == [(i, "generation_length") for i in range(1, 14)]
    assert out.counters["high_unparseable"] == 4 and out.counters["low_pairs"] == 1
    assert out.counters["high_generation_length"] + out.counters["low_generation_length"] == 28 - 5
    assert out.counters["chunks_with_pairs"] == 1


def test_refine_filter_cot_reference_on_recorded_replies(recorded):
    pairs = pair_rows()
    llm = replay(recorded)
    refine = RefineQA()
    assert refine.process(pairs, FakeCtx(refine, {None: llm})).dropped == [
        (0, "unparseable_refinement"), (1, "unparseable_refinement"), (2, "unparseable_refinement")]

    filt = FilterQA()
    assert filt.process(pairs, FakeCtx(filt, {None: llm})).dropped == [
        (0, "unparseable_filter_verdict"), (1, "unparseable_filter_verdict"), (2, "unparseable_filter_verdict")]

    cot = SupplementCoT()
    out = cot.process(pairs, FakeCtx(cot, {None: llm}))
    assert out.dropped == []
    assert out.kept.column("cot_supplemented").to_pylist() == [True, False, False]
    assert [s["cot_judgement"] for s in signals_of(out.kept)] == ["no", "unparseable", "yes"]
    assert out.kept.column("answer")[0].as_py().endswith("moving at the bottom at a speed of 6.3 m/s.")

    ref = ReferenceAnswer()
    out = ref.process(pairs, FakeCtx(ref, {None: llm}))
    # pair 1's answer is boxed: no model call; the model's replies for pairs 0 and 2 ran past 200 tokens
    assert out.kept.column("reference_answer").to_pylist() == ["P = 20, Q = 60"]
    assert out.dropped == [(0, "generation_length"), (2, "generation_length")]
