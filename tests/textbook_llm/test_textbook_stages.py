"""The TextbookReasoning LLM stages under a scripted fake context: outputs, drops and reasons, counters,
provenance steps and schemas."""
from __future__ import annotations

import json

import pyarrow as pa
import pytest

from megascience_build.backends.base import GenerationResult, SamplingParams
from megascience_build.engine import records
from megascience_build.engine.prompts import load_prompt
from megascience_build.engine.stage import StageError
from megascience_build.stages.cot import SupplementCoT
from megascience_build.stages.extract_qa import OUTPUT_SCHEMA, ExtractQA
from megascience_build.stages.filter_qa import FilterQA
from megascience_build.stages.finalize import Finalize
from megascience_build.stages.reference_answer import ReferenceAnswer
from megascience_build.stages.refine_qa import RefineQA
from textbook_fakes import FakeCtx, FakeLLM, provenance, qa_table, signals_of, steps_of, user_text

LENGTH = GenerationResult(text="Question: cut off", finish_reason="length")
ERROR = GenerationResult(text="", finish_reason="error", error="timeout")


def chunk_table(rows, text_column="chunk_text"):
    full = []
    for r in rows:
        prov = json.loads(provenance(book_id=r.get("book_id", "book-1"), file="b.pdf"))
        prov["steps"] = [{"stage": "chunk", "tokenizer": "minilm"}]
        full.append({records.ID: records.content_id("chunk", r["marker"]), records.PROVENANCE: json.dumps(prov),
                     text_column: r.get("text", f"Some textbook text. MARKER-{r['marker']}"),
                     "subject": r["subject"], "book_id": r.get("book_id", "book-1"), "chunk_index": r["index"],
                     "pages": [r["index"] + 1, r["index"] + 2]})
    return pa.Table.from_pylist(full)


# -- extract_qa ---------------------------------------------------------------------------------------
EXTRACT_REPLIES = {
    ("m", "high"): "Question: Sum the first 8 terms of 3 + 6 + 12 + ...\nAnswer: a = 3, r = 2, so S = 3(2^8 - 1) = 765.",
    ("m", "low"): "Question: State the sum of a geometric series.\nAnswer: a(1 - r^n)/(1 - r).\n\n"
                  "**Question 2:** Prove that the infinite series converges for |r| < 1.\n**Answer 2:** r^n tends to 0.",
    ("p", "high"): "NO_QA", ("p", "low"): "[NO QA]",
    ("c", "high"): "I could not find anything useful here.", ("c", "low"): LENGTH,
    ("b", "high"): "The passage describes Mendel.", ("b", "low"): "NO_QA",
    ("e", "high"): "NO_QA", ("e", "low"): "Question: Find P if 100 - 2P = 20 + 2P.\nAnswer: P = 20",
}


def extract_reply(req):
    text = user_text(req)
    marker = text.split("MARKER-")[1][0]
    standard = "high" if "worked solution appears in the passage" in text else "low"
    return EXTRACT_REPLIES[(marker, standard)]


def run_extract(table, **params):
    stage = ExtractQA(params)
    llm = FakeLLM(extract_reply, model_id="fake/extractor")
    ctx = FakeCtx(stage, {None: llm}, sampling=SamplingParams(max_tokens=321))
    return stage, llm, stage.process(table, ctx)


EXTRACT_CHUNKS = [
    {"marker": "m", "subject": "mathematics", "index": 0}, {"marker": "p", "subject": "physics", "index": 1},
    {"marker": "c", "subject": "chemistry", "index": 2}, {"marker": "x", "subject": "astrology", "index": 3},
    {"marker": "b", "subject": "Biology", "index": 4}, {"marker": "z", "subject": "physics", "index": 5, "text": "  "},
    {"marker": "e", "subject": "economics", "index": 6},
]


def test_extract_qa_pairs_drops_and_counters():
    table = chunk_table(EXTRACT_CHUNKS)
    stage, llm, out = run_extract(table)
    assert out.kept.schema.names == list(OUTPUT_SCHEMA.names) == stage.output_columns(table.column_names)
    kept = out.kept.to_pylist()
    assert [(r["chunk_id"], r["standard"]) for r in kept] == [
        (table[records.ID][0].as_py(), "high"), (table[records.ID][0].as_py(), "low"),
        (table[records.ID][0].as_py(), "low"), (table[records.ID][6].as_py(), "low")]
    assert kept[2]["question"] == "Prove that the infinite series converges for |r| < 1."
    assert kept[2]["answer"] == "r^n tends to 0."
    assert kept[0]["chunk_text"] == "Some textbook text. MARKER-m" and kept[0]["subject"] == "mathematics"
    # ids: content hash of chunk id, standard, pair index
    assert [r[records.ID] for r in kept] == [records.content_id(r["chunk_id"], r["standard"], k)
                                             for r, k in zip(kept, (0, 0, 1, 0))]
    # the dropped list refers to input chunk positions, one reason each
    assert out.dropped == [(1, "no_qa"), (2, "generation_length"), (3, "unknown_subject"), (4, "unparseable"),
                           (5, "empty_chunk")]
    assert out.counters == {"high_pairs": 1, "low_pairs": 3, "high_no_qa": 2, "low_no_qa": 2,
                            "high_unparseable": 2, "low_generation_length": 1, "chunks_with_pairs": 2, "pairs": 4}
    # 5 chunks with a known subject and text, both standards each; the stage's sampling is used
    assert len(llm.calls) == 10 and {c.sampling.max_tokens for c in llm.calls} == {321}


def test_extract_qa_uses_the_discipline_prompt_and_records_provenance():
    table = chunk_table(EXTRACT_CHUNKS)
    _, llm, out = run_extract(table)
    assert "from a mathematics textbook" in user_text(llm.calls[0])
    assert "book on mathematics" in user_text(llm.calls[1])
    assert "book on economics" in user_text(llm.calls[-1])
    row = out.kept.to_pylist()[2]
    prov = json.loads(row[records.PROVENANCE])
    assert prov["origin"] == {"kind": "book", "book_id": "book-1", "file": "b.pdf", "chunk_id": row["chunk_id"],
                              "chunk_index": 0, "pages": [1, 2]}
    tmpl = load_prompt("extract_low_mathematics")
    assert prov["steps"] == [{"stage": "chunk", "tokenizer": "minilm"},
                             {"stage": "extract_qa", "model": "fake/extractor", "revision": "rev-1",
                              "prompt": "extract_low_mathematics", "prompt_sha256": tmpl.sha256,
                              "standard": "low", "pair_index": 1}]


def test_extract_qa_reads_the_chunk_stage_schema():
    rows = [{"marker": "e", "subject": "economics", "index": 6}]
    table = chunk_table(rows, text_column="text").drop_columns(["pages"])
    table = table.append_column("page_start", pa.array([40])).append_column("page_end", pa.array([41]))
    stage, _, out = run_extract(table, standards=["low"])
    stage.check_schema(table.schema)
    (row,) = out.kept.to_pylist()
    assert row["chunk_text"] == "Some textbook text. MARKER-e"
    assert json.loads(row[records.PROVENANCE])["origin"]["pages"] == [40, 41]


def test_extract_qa_standards_param_and_schema_checks():
    _, llm, out = run_extract(chunk_table(EXTRACT_CHUNKS[:1]), standards=["high"])
    assert len(llm.calls) == 1 and out.kept.column("standard").to_pylist() == ["high"]
    for bad in ([], ["medium"], ["high", "high"], "high"):
        with pytest.raises(StageError, match="standards"):
            ExtractQA({"standards": bad})
    with pytest.raises(StageError, match="'chunk_text' or 'text'"):
        ExtractQA().check_schema(pa.schema([(records.ID, pa.string()), (records.PROVENANCE, pa.string()),
                                            ("subject", pa.string())]))


def test_extract_qa_empty_batch():
    _, llm, out = run_extract(chunk_table(EXTRACT_CHUNKS).slice(0, 0))
    assert out.kept.num_rows == 0 and out.kept.schema == OUTPUT_SCHEMA and out.dropped == [] and not llm.calls


# -- refine_qa ----------------------------------------------------------------------------------------
def refine_rows():
    return qa_table([
        {"question": "Q-ok: find the speed.", "answer": "6.3", "chunk_text": "passage " * 10 + "TAIL", "subject": "physics"},
        {"question": "Q-unusable", "answer": "see Fig. 2", "chunk_text": "x", "subject": "physics"},
        {"question": "Q-garbage", "answer": "a", "chunk_text": "x", "subject": "physics"},
        {"question": "Q-length", "answer": "a", "chunk_text": "x", "subject": "physics"},
    ])


def refine_reply(req):
    text = user_text(req)
    if "Q-ok" in text:
        return ("The question lacks the angle.\nRefined Question: A block slides 4.0 m down a frictionless 30 degree "
                "ramp from rest. Find its speed.\nRefined Answer: a = g sin 30 = 4.9 m/s^2; v = sqrt(2as) = 6.3 m/s. "
                "\\boxed{6.3\\ \\text{m/s}}")
    if "Q-unusable" in text:
        return "The pair depends on a figure.\nUNUSABLE"
    if "Q-garbage" in text:
        return "Sure! Here is a better version of the question."
    return LENGTH


def test_refine_qa_replaces_pairs_and_counts_drops():
    stage = RefineQA({"max_chunk_chars": 40})
    llm = FakeLLM(refine_reply, model_id="fake/refiner")
    out = stage.process(refine_rows(), FakeCtx(stage, {None: llm}))
    assert out.dropped == [(1, "refine_rejected"), (2, "unparseable_refinement"), (3, "generation_length")]
    assert out.counters == {"refine_rejected": 1, "unparseable_refinement": 1, "generation_length": 1, "refined": 1}
    (row,) = out.kept.to_pylist()
    assert row["question"].startswith("A block slides 4.0 m") and row["answer"].endswith("\\boxed{6.3\\ \\text{m/s}}")
    assert row[records.ID] == refine_rows()[records.ID][0].as_py()
    assert out.kept.schema.names == refine_rows().schema.names
    assert "TAIL" not in user_text(llm.calls[0]) and "passage passage" in user_text(llm.calls[0])
    (step,) = steps_of(out.kept)[0]
    assert step == {"stage": "refine_qa", "model": "fake/refiner", "revision": "rev-1", "prompt": "refine_qa",
                    "prompt_sha256": load_prompt("refine_qa").sha256}
    assert signals_of(out.kept)[0] == {"refined": True, "refined_answer_boxed": True}


def test_refine_qa_keep_extracted_keeps_unreadable_pairs_unchanged():
    stage = RefineQA({"on_unparseable": "keep_extracted"})
    out = stage.process(refine_rows(), FakeCtx(stage, {None: FakeLLM(refine_reply)}))
    assert out.dropped == [(1, "refine_rejected"), (3, "generation_length")]
    assert out.counters["unparseable_refinement"] == 1 and out.counters["refined"] == 1
    assert out.kept.column("question").to_pylist()[1] == "Q-garbage"
    assert [s["refined"] for s in signals_of(out.kept)] == [True, False]


def test_refine_qa_param_check():
    with pytest.raises(StageError, match="max_chunk_chars"):
        RefineQA({"max_chunk_chars": 0})
    with pytest.raises(StageError, match="on_unparseable"):
        RefineQA({"on_unparseable": "keep"})


# -- cot ----------------------------------------------------------------------------------------------
def cot_rows():
    return qa_table([
        {"question": "Q-yes", "answer": "Because metal conducts heat, the skin cools fast.", "subject": "physics"},
        {"question": "Q-no", "answer": "Na", "subject": "chemistry"},
        {"question": "Q-unparseable", "answer": "42", "subject": "mathematics"},
        {"question": "Q-judge-length", "answer": "7", "subject": "mathematics"},
        {"question": "Q-no-writer-fails", "answer": "Bb", "subject": "biology"},
    ])


def judge_reply(req):
    text = user_text(req)
    if "Question: Q-yes" in text:
        return "Analysis: it explains the cause.\nDecision: YES"
    if "Question: Q-unparseable" in text:
        return "Analysis: hard to say."
    if "Question: Q-judge-length" in text:
        return LENGTH
    return "Analysis: only a bare fact.\nDecision: NO"


def writer_reply(req):
    text = user_text(req)
    if "Q-no-writer-fails" in text:
        return ERROR
    return "Answer: Sodium's symbol comes from its Latin name natrium, so the symbol is \\boxed{Na}."


def run_cot(**params):
    stage = SupplementCoT(params)
    judge = FakeLLM(judge_reply, model_id="fake/judge")
    writer = FakeLLM(writer_reply, model_id="fake/writer", revision="rev-9")
    ctx = FakeCtx(stage, {None: judge, "refiner": writer})
    return judge, writer, stage.process(cot_rows(), ctx)


def test_cot_paper_mode_supplements_no_answers_with_the_answer_shown():
    judge, writer, out = run_cot(supplement_llm="refiner")
    assert out.dropped == [(3, "generation_length"), (4, "generation_error")]
    assert out.counters == {"cot_yes": 1, "cot_no": 2, "cot_unparseable": 1, "unparseable_cot_judgement": 1,
                            "judge_generation_length": 1, "supplement_generation_error": 1, "cot_supplemented": 1}
    rows = out.kept.to_pylist()
    assert [r["question"] for r in rows] == ["Q-yes", "Q-no", "Q-unparseable"]
    assert [r["cot_supplemented"] for r in rows] == [False, True, False]
    assert rows[1]["answer"].startswith("Sodium's symbol") and rows[2]["answer"] == "42"
    assert out.kept.schema.field("cot_supplemented").type == pa.bool_()
    # paper semantics: the writer sees the question AND the existing answer
    assert len(writer.calls) == 2 and "Q-no" in user_text(writer.calls[0]) and "\nNa\n" in user_text(writer.calls[0]) + "\n"
    assert "Keep the final result of the given answer unchanged" in user_text(writer.calls[0])
    step = steps_of(out.kept)[0][-1]
    assert step["mode"] == "paper" and step["model"] == "fake/judge" and step["prompt"] == "judge_cot"
    assert step["supplement_model"] == "fake/writer" and step["supplement_revision"] == "rev-9"
    assert step["supplement_prompt"] == "supplement_cot"
    assert step["supplement_prompt_sha256"] == load_prompt("supplement_cot").sha256
    assert [s["cot_judgement"] for s in signals_of(out.kept)] == ["yes", "no", "unparseable"]


def test_cot_authors_mode_writes_from_the_question_alone():
    judge, _, out = run_cot(mode="authors")
    distill_calls = [c for c in judge.calls if "Reason through it one step at a time" in user_text(c)]
    assert [user_text(c).rsplit("\n", 1)[-1] for c in distill_calls] == ["Q-no", "Q-no-writer-fails"]
    assert all("Na" not in user_text(c) and "Bb" not in user_text(c) for c in distill_calls)
    step = steps_of(out.kept)[0][-1]
    assert step["supplement_prompt"] == "distill_cot" and step["supplement_model"] == "fake/judge"
    # no supplement_llm: the judge's model writes too (its scripted reply is the judge text here)
    assert out.kept.column("cot_supplemented").to_pylist() == [False, True, False, True]


@pytest.mark.parametrize("policy,kept,supplemented", [("drop", ["Q-yes", "Q-no"], [False, True]),
                                                      ("supplement", ["Q-yes", "Q-no", "Q-unparseable"],
                                                       [False, True, True])])
def test_cot_unparseable_policies(policy, kept, supplemented):
    _, _, out = run_cot(on_unparseable=policy, supplement_llm="refiner")
    assert out.kept.column("question").to_pylist() == kept
    assert out.kept.column("cot_supplemented").to_pylist() == supplemented
    assert ((2, "unparseable_cot_judgement") in out.dropped) == (policy == "drop")


def test_cot_param_checks():
    with pytest.raises(StageError, match="mode"):
        SupplementCoT({"mode": "both"})
    with pytest.raises(StageError, match="on_unparseable"):
        SupplementCoT({"on_unparseable": "ignore"})
    with pytest.raises(StageError, match="needs prompt slot 'distill'"):
        SupplementCoT({"mode": "authors"}, prompts={"judge": "judge_cot.txt", "supplement": "supplement_cot.txt"})


# -- filter_qa ------------------------------------------------------------------------------------------
def test_filter_qa_keeps_only_yes():
    rows = qa_table([{"question": f"Q{i}", "answer": "a", "subject": "physics"} for i in range(5)])
    replies = {"Q0": "Analysis: fine.\nDecision: YES", "Q1": "Analysis: cites Figure 3-7.\nDecision: NO",
               "Q2": "I think this is fine", "Q3": ERROR, "Q4": "Decision: **Yes**"}
    stage = FilterQA()
    llm = FakeLLM(lambda r: replies[user_text(r).split("Question:\n")[1].split("\n")[0]], model_id="fake/filter")
    out = stage.process(rows, FakeCtx(stage, {None: llm}))
    assert out.kept.column("question").to_pylist() == ["Q0", "Q4"]
    assert out.dropped == [(1, "filter_rejected"), (2, "unparseable_filter_verdict"), (3, "generation_error")]
    assert out.counters == {"filter_rejected": 1, "unparseable_filter_verdict": 1, "generation_error": 1,
                            "filter_accepted": 2}
    assert steps_of(out.kept)[0][-1]["prompt"] == "filter_qa"
    assert signals_of(out.kept) == [{"filter_verdict": "yes"}] * 2

    stage = FilterQA({"on_unparseable": "keep"})
    out = stage.process(rows, FakeCtx(stage, {None: llm}))
    assert out.kept.column("question").to_pylist() == ["Q0", "Q2", "Q4"]
    assert out.dropped == [(1, "filter_rejected"), (3, "generation_error")]
    assert out.counters["unparseable_filter_verdict"] == 1 and out.counters["filter_accepted"] == 2
    assert [s["filter_verdict"] for s in signals_of(out.kept)] == ["yes", "unparseable", "yes"]
    with pytest.raises(StageError, match="on_unparseable"):
        FilterQA({"on_unparseable": "supplement"})


# -- reference_answer ------------------------------------------------------------------------------------
def reference_rows():
    return qa_table([
        {"question": "Q-boxed", "answer": "S = 765, so \\boxed{765}.", "subject": "mathematics"},
        {"question": "Q-model", "answer": "The pH is 4.46 at first.", "subject": "chemistry"},
        {"question": "Q-none", "answer": "Long discussion.", "subject": "biology"},
        {"question": "Q-length", "answer": "Something.", "subject": "biology"},
    ])


def reference_reply(req):
    text = user_text(req)
    if "Q-model" in text:
        return "Reference Answer: 4.46"
    if "Q-none" in text:
        return "The solution discusses several things\nbut I cannot tell which one is final."
    return LENGTH


@pytest.mark.parametrize("on_failure", ["drop", "keep"])
def test_reference_answer_boxed_first_then_model(on_failure):
    stage = ReferenceAnswer({"on_generation_failure": on_failure})
    llm = FakeLLM(reference_reply, model_id="fake/ref")
    out = stage.process(reference_rows(), FakeCtx(stage, {None: llm}))
    assert [user_text(c).split("Question:\n")[1].split("\n")[0] for c in llm.calls] == ["Q-model", "Q-none", "Q-length"]
    expected = ["765", "4.46", ""] + ([""] if on_failure == "keep" else [])
    assert out.kept.column("reference_answer").to_pylist() == expected
    assert out.dropped == ([(3, "generation_length")] if on_failure == "drop" else [])
    assert out.counters == {"reference_from_boxed": 1, "reference_from_model": 1, "generation_length": 1,
                            "no_reference_answer": 1 + (on_failure == "keep")}
    assert [s["reference_source"] for s in signals_of(out.kept)] == ["boxed", "model", "none"] + \
        (["none"] if on_failure == "keep" else [])


def test_reference_answer_needs_no_model_when_every_answer_is_boxed():
    rows = reference_rows().slice(0, 1)
    stage = ReferenceAnswer()
    llm = FakeLLM(lambda r: pytest.fail("the model must not be called"))
    out = stage.process(rows, FakeCtx(stage, {None: llm}))
    assert out.kept.column("reference_answer").to_pylist() == ["765"] and not llm.calls


# -- finalize ---------------------------------------------------------------------------------------------
def test_finalize_projects_to_the_released_schema():
    rows = qa_table([
        {"question": " What is 2+2? ", "answer": "4 \n", "subject": "mathematics", "reference_answer": "4",
         "chunk_text": "dropped column", "cot_supplemented": False},
        {"question": "Q", "answer": "A", "subject": "Computer Science", "reference_answer": ""},
        {"question": "  ", "answer": "A", "subject": "physics", "reference_answer": "x"},
        {"question": "Q", "answer": "", "subject": "physics", "reference_answer": "x"},
        {"question": "Q", "answer": "A", "subject": "Astronomy", "reference_answer": "x"},
        {"question": "Q", "answer": "A", "subject": "economics", "reference_answer": "x"},
    ])
    stage = Finalize()
    out = stage.process(rows, FakeCtx(stage, {}))
    assert out.kept.schema.names == ["id", "question", "answer", "subject", "reference_answer", "provenance"]
    assert out.kept.schema.names == stage.output_columns(rows.column_names)
    assert all(t == pa.string() for t in out.kept.schema.types)
    assert out.kept.column("subject").to_pylist() == ["math", "cs", "astronomy", "economics"]
    assert out.kept.to_pylist()[0]["question"] == "What is 2+2?" and out.kept.to_pylist()[0]["answer"] == "4"
    assert out.dropped == [(2, "empty_field"), (3, "empty_field")]
    assert out.counters == {"subject_unmapped": 1, "empty_field": 2}
    assert steps_of(out.kept)[0] == [{"stage": "finalize"}]


# -- the stages chained ---------------------------------------------------------------------------------------
def test_stages_chain_from_chunks_to_the_released_schema():
    table = chunk_table(EXTRACT_CHUNKS[:1])
    _, _, out = run_extract(table, standards=["high"])
    t = out.kept
    chain = [
        (RefineQA(), lambda r: "Refined Question: Sum the first 8 terms of 3 + 6 + 12 + ...\n"
                               "Refined Answer: S = 3(2^8 - 1) = 765, so \\boxed{765}."),
        (SupplementCoT(), lambda r: "Analysis: shows the formula.\nDecision: YES"),
        (FilterQA(), lambda r: "Analysis: self-contained.\nDecision: YES"),
        (ReferenceAnswer(), lambda r: pytest.fail("boxed answers need no model")),
        (Finalize(), None),
    ]
    for stage, reply in chain:
        stage.check_schema(t.schema)
        t = stage.process(t, FakeCtx(stage, {None: FakeLLM(reply)})).kept
    (row,) = t.to_pylist()
    assert row["question"] == "Sum the first 8 terms of 3 + 6 + 12 + ..." and row["reference_answer"] == "765"
    assert row["subject"] == "math"
    assert [s["stage"] for s in steps_of(t)[0]] == ["chunk", "extract_qa", "refine_qa", "cot", "filter_qa",
                                                     "reference_answer", "finalize"]
