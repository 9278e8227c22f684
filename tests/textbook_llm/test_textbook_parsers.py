"""Parsers of the TextbookReasoning LLM replies: well-formed, malformed and random input."""
from __future__ import annotations

import random
import string

import pytest

from megascience_build.stages.cot import parse_solution
from megascience_build.stages.extract_qa import parse_qa_pairs
from megascience_build.stages.reference_answer import parse_reference_answer
from megascience_build.stages.refine_qa import UNUSABLE, Refinement, parse_refined
from megascience_build.stages.replies import last_boxed, parse_decision

PARSERS = (parse_qa_pairs, parse_refined, parse_decision, parse_reference_answer, last_boxed, parse_solution)


# -- extraction -------------------------------------------------------------------------------------
def test_qa_pairs_plain_blocks_keep_multiline_answers():
    text = "Question: What is 2 + 2?\nAnswer: 4\n\nQuestion: Why is the sky blue?\nAnswer: Rayleigh scattering\nis stronger for short wavelengths.\n"
    assert parse_qa_pairs(text) == [("What is 2 + 2?", "4"),
                                    ("Why is the sky blue?", "Rayleigh scattering\nis stronger for short wavelengths.")]


@pytest.mark.parametrize("q_label,a_label", [
    ("**Question:**", "**Answer:**"), ("**Question 1:**", "**Answer 1:**"), ("Question 1:", "Answer 1:"),
    ("1. Question:", "Answer:"), ("Q1:", "A1:"), ("### Question:", "### Answer:"), ("- Question:", "- Answer:"),
    ("Question：", "Answer："), ("**Question**:", "**Answer**:"),
])
def test_qa_pairs_accept_label_decorations(q_label, a_label):
    assert parse_qa_pairs(f"{q_label} Find x if 2x = 6.\n{a_label} x = 3") == [("Find x if 2x = 6.", "x = 3")]


def test_qa_pairs_no_qa_marker_variants_give_empty_list():
    for text in ("NO_QA", "[NO QA]", "**NO_QA**", "  no_qa.\n", "NO-QA"):
        assert parse_qa_pairs(text) == [], text


def test_qa_pairs_question_without_answer_is_skipped_not_merged():
    text = "Question: first, no answer here\nQuestion: second?\nAnswer: yes"
    assert parse_qa_pairs(text) == [("second?", "yes")]


def test_qa_pairs_one_line_pairs_and_numbered_exercises():
    assert parse_qa_pairs("Question: What is 2 + 2? Answer: 4") == [("What is 2 + 2?", "4")]
    # an inline "answer:" is part of the question when an Answer label follows
    assert parse_qa_pairs("Question: Give your answer: in m/s. Speed?\nAnswer: 3 m/s") == \
        [("Give your answer: in m/s. Speed?", "3 m/s")]
    assert parse_qa_pairs("Exercises\n1. Sum 5 + 15. Answer: 20.\n2) Find x if 2x = 6. **Answer:** 3\n3. No answer.") \
        == [("Sum 5 + 15.", "20."), ("Find x if 2x = 6.", "3")]
    # numbered lines count only when no labelled pair exists
    assert parse_qa_pairs("Question: q\nAnswer: a\n1. x Answer: y") == [("q", "a\n1. x Answer: y")]


def test_qa_pairs_verbatim_repeats_are_kept_once():
    text = "Question: q1\nAnswer: a1\n\nQuestion: q1\nAnswer: a1\n\nQuestion: q1\nAnswer: a2"
    assert parse_qa_pairs(text) == [("q1", "a1"), ("q1", "a2")]


def test_qa_pairs_inline_labels_do_not_cut_answers():
    text = "Question: A ball is thrown. What is its range?\nAnswer: The answer: 12 m. Question: asked above."
    assert parse_qa_pairs(text) == [("A ball is thrown. What is its range?",
                                     "The answer: 12 m. Question: asked above.")]


def test_qa_pairs_words_starting_with_a_are_not_labels():
    text = "Question: Name the force.\nAnswer: A normal force.\nA second line of the answer."
    assert parse_qa_pairs(text) == [("Name the force.", "A normal force.\nA second line of the answer.")]


def test_qa_pairs_pairs_win_over_a_trailing_no_qa_and_trailing_rules_are_cut():
    assert parse_qa_pairs("Question: q?\nAnswer: a\n---\nNO_QA") == [("q?", "a")]


@pytest.mark.parametrize("text", ["", "The passage is about motion.", "Question: only a question",
                                  "Answer: only an answer", "Question:\nAnswer:", None, 42, b"Question: x\nAnswer: y"])
def test_qa_pairs_unparseable_is_none(text):
    assert parse_qa_pairs(text) is None


# -- refinement -------------------------------------------------------------------------------------
def test_refined_takes_the_last_question_and_removes_empty_boxes():
    text = ("Let me think. Refined Question: draft?\nRefined Answer: draft\n\nFinal version:\n"
            "**Refined Question:** What is 3 x 4?\n**Refined Answer:** 3 x 4 = 12, so $\\boxed{}$ \\boxed{12}")
    assert parse_refined(text) == Refinement("What is 3 x 4?", "3 x 4 = 12, so  \\boxed{12}")


def test_refined_unusable_only_when_it_comes_last():
    assert parse_refined("The pair needs Figure 2.\nUNUSABLE") == UNUSABLE
    assert parse_refined("**UNUSABLE**") == UNUSABLE
    text = "UNUSABLE? No, it can be fixed.\nRefined Question: q?\nRefined Answer: a"
    assert parse_refined(text) == Refinement("q?", "a")


@pytest.mark.parametrize("text", ["", "Refined Question: q only", "Refined Answer: a only",
                                  "Refined Question:\nRefined Answer: a", "Refined Question: q\nRefined Answer:  ",
                                  "Question: q\nAnswer: a", None])
def test_refined_unparseable_is_none(text):
    assert parse_refined(text) is None


# -- decisions --------------------------------------------------------------------------------------
@pytest.mark.parametrize("text,expected", [
    ("Analysis: fine.\nDecision: YES", True), ("Analysis: bad.\nDecision: NO", False),
    ("Decision: [YES]", True), ("Decision: **No**", False), ("decision: yes", True), ("Decision - no", False),
    ("**Decision:** YES", True), ("Decision: YES\n\nDecision: NO", False), ("Decision:\nNO", False),
    ("Yes.", True), ("no", False),
    ("Analysis: it explains. The verdict is YES", True),
    # substrings never count: "Now", "Note", "None", "Nobel" are not NO
    ("Analysis: Now the answer explains. Note: None of it is wrong.", None),
    ("Decision: maybe", None), ("", None), (None, None), ("YESNO", None),
])
def test_parse_decision(text, expected):
    assert parse_decision(text) is expected


# -- boxed and reference answers ----------------------------------------------------------------------
@pytest.mark.parametrize("text,expected", [
    (r"so \boxed{42}.", "42"), (r"$\boxed{\frac{1}{2}}$", r"\frac{1}{2}"), (r"\[\boxed{7}\]", "7"),
    ("\\boxed{\n a = 1,\n b = 2\n}", "a = 1,\n b = 2"), (r"\boxed{1} then \boxed{2}", "2"),
    (r"\boxed{x^{2}} and a cut-off \boxed{3", "x^{2}"), (r"\boxed{\{1, 2\}}", r"\{1, 2\}"),
    (r"\boxed { 5 }", "5"), (r"\fbox{B}", "B"), (r"\boxed{}", None), (r"\boxed{5} \boxed{ }", "5"),
    (r"} stray \boxed{5}", "5"), (r"\boxed{p} } \boxed{q", "p"), ("no box", None), (None, None),
])
def test_last_boxed(text, expected):
    assert last_boxed(text) == expected


@pytest.mark.parametrize("text,expected", [
    ("Reference Answer: 80 km/h", "80 km/h"), ("**Reference Answer:** $78.54$ cm²", "78.54 cm²"),
    ("Reference Answer:\n\nBb", "Bb"), ("Thus the final answer is: 765.", "765"),
    (r"It equals \boxed{765} (see above). Reference Answer: 700", "765"), ("Paris.", "Paris"),
    ("Reference Answer: 3.", "3"), ("Reference Answer: 1, 2, ...", "1, 2, ..."),
    ("A long reply\nthat spans lines and never states a labelled answer.", None), ("", None), (None, None),
])
def test_parse_reference_answer(text, expected):
    assert parse_reference_answer(text) == expected


def test_parse_solution_strips_label_and_empty_boxes():
    assert parse_solution("**Answer:** step one.\nSo $\\boxed{}$ the result is \\boxed{5}.") == \
        "step one.\nSo  the result is \\boxed{5}."
    assert parse_solution("  \n") is None and parse_solution("Solution: \\boxed{}") is None


# -- never raise ---------------------------------------------------------------------------------------
TOKENS = ["Question:", "Answer:", "**", "Q1:", "A:", "NO_QA", "Refined Question:", "Refined Answer:", "UNUSABLE",
          "Decision:", "YES", "NO", "\\boxed{", "\\fbox{", "{", "}", "\\", "$", "Reference Answer:",
          "final answer is", "\n", "\n\n", "---", "：", "\x00", "é", "😀", "[", "]"]


def random_reply(rng: random.Random) -> str:
    parts = []
    for _ in range(rng.randint(0, 40)):
        if rng.random() < 0.5:
            parts.append(rng.choice(TOKENS))
        else:
            parts.append("".join(rng.choice(string.printable) for _ in range(rng.randint(0, 12))))
    return "".join(parts)


def test_parsers_never_raise_on_random_replies():
    rng = random.Random(1234)
    for _ in range(3000):
        text = random_reply(rng)
        for parse in PARSERS:
            parse(text)          # must not raise
        pairs = parse_qa_pairs(text)
        assert pairs is None or all(q and a for q, a in pairs)
        assert parse_decision(text) in (True, False, None)
        refined = parse_refined(text)
        assert refined is None or refined == UNUSABLE or (refined.question and refined.answer)


@pytest.mark.parametrize("value", [None, 0, 3.5, b"bytes", ["Question: a"], {"x": 1}, "\\boxed{" * 5000])
def test_parsers_accept_any_value(value):
    for parse in PARSERS:
        result = parse(value)
        assert result is None or isinstance(result, (str, list, bool, Refinement))


def test_qa_pairs_accept_the_answer_is_label_at_line_start():
    # small models (SmolLM2 with the low-standard prompt) write "The answer is:" instead of "Answer:"
    reply = "Question: If x = 2, what is x + 1?\n\nThe answer is:\n\n3, because 2 + 1 = 3."
    assert parse_qa_pairs(reply) == [("If x = 2, what is x + 1?", "3, because 2 + 1 = 3.")]
    # inside a sentence it is not a label
    assert parse_qa_pairs("Question: Why?\nAnswer: The answer is: because.") == [("Why?", "The answer is: because.")]
