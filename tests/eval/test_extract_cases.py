"""Hand-written hard cases for each question type: (reply, expected answer, expected method prefix)."""
from __future__ import annotations

import pytest

from megascience_eval.extract import MATH, MC, NUM, TEXT, TF, UNIT, extract, indicated

OPTS4 = ["0", "4", "2", "6"]
OPTS_TEXT = ["mitochondria", "nucleus", "ribosome", "Golgi apparatus"]

MC_CASES = [
    ("Let me think.\nAnswer: B", "B", "indicator:answer_colon"),
    ("**Answer:** (C)", "C", "indicator:answer_colon"),
    ("The final answer is $\\boxed{D}$.", "D", "boxed"),
    ("So the answer is \\boxed{\\text{A}}", "A", "boxed"),
    ("The correct option is [B].", "B", "indicator:correct_answer"),
    ("The best option is C: 2", "C", "indicator:best_option"),
    ("At first the answer is A. On reflection, the answer is C.", "C", "indicator:answer_is"),
    ("The answer should be: D", "D", "indicator:answer_should_be"),
    ("Option B is correct because 2+2=4.", "B", "indicator:is_correct"),
    ("(D) seems correct here.", "D", "indicator:is_correct"),
    ("Answer is probably A", "A", "indicator:answer_is_probably"),
    ("We compute 2*2.\nThe answer is 4", "B", "indicator:answer_is"),            # option text, mapped to B
    ("Reasoning...\n(C)", "C", "last_line"),
    ("Reasoning...\nB. 4", "B", "last_line"),
    ("A husband and wife went shopping.", None, "none"),                         # article, not option A
    ("A. 0\nB. 4\nC. 2\nD. 6", None, "none"),                                    # the options repeated
    ("The answer is E.", None, "none"),                                          # out of range for 4 options
    ("I am not sure.", None, "none"),
    ("", None, "none"),
]


@pytest.mark.parametrize("reply,answer,method", MC_CASES)
def test_multiple_choice(reply, answer, method):
    got = extract(MC, reply, OPTS4)
    assert (got.answer, got.method) == (answer, method)


def test_option_text_fallbacks():
    assert extract(MC, "Energy comes from the mitochondria.\nThe answer is mitochondria.", OPTS_TEXT).answer == "A"
    assert extract(MC, "It is the Golgi apparatus", OPTS_TEXT).answer == "D"                 # last line
    assert extract(MC, "Final answer: golgi apparatus", OPTS_TEXT).answer == "D"             # case-insensitive
    assert extract(MC, "Final answer: nucleus or ribosome", OPTS_TEXT).answer is None        # two options: none
    assert extract(MC, "Answer: 14", ["4", "14", "41"]).answer == "B"                       # whole numbers only


def test_several_correct_options():
    assert extract(MC, "Answer: A, C", ["x", "y", "z"]).answer == "A,C"
    assert extract(MC, "The correct answers are... Answer: (C) and (A).", ["x", "y", "z"]).answer == "A,C"


TF_CASES = [
    ("Answer: True", "true"), ("The answer is **False**.", "false"), ("\\boxed{True}", "true"),
    ("Thus the statement is incorrect.", "false"), ("So, yes.\nAnswer: Yes", "true"),
    ("Hmm, it is hard to say. It could be true.", "true"),                  # last line, last truth word
    ("No idea.", None),
]


@pytest.mark.parametrize("reply,answer", TF_CASES)
def test_true_false(reply, answer):
    assert extract(TF, reply).answer == answer


NUM_CASES = [
    ("She sells 9 eggs at $2: 9*2 = 18.\nThe answer is $18.", "$18"),
    ("The final answer is: 1,234", "1,234"),
    ("Total = 3 + 4 = 7 apples", "7"),                                    # no indicator: the last number
    ("So the answer is 5 + 3 = 8.", "8"),                                 # after the last '='
    ("\\boxed{42} ... wait, the answer is 41", "41"),                     # the later indicator wins
    ("The answer is \\boxed{3.5 \\times 10^{-4}}", "3.5 \\times 10^{-4}"),
    ("Nothing numeric here", None),
]


@pytest.mark.parametrize("reply,answer", NUM_CASES)
def test_numeric(reply, answer):
    assert extract(NUM, reply).answer == answer


MATH_CASES = [
    ("The final answer is $\\frac{1}{2}$. I hope it is correct.", "\\frac{1}{2}"),
    ("Thus $x = \\boxed{\\dfrac{\\sqrt{3}}{2}}$.", "\\dfrac{\\sqrt{3}}{2}"),
    ("\\boxed{(1, -2)}", "(1, -2)"),
    ("The answer is $x^2+1$.", "x^2+1"),
    ("\\boxed{\\boxed{7}}", "7"),
    ("Hence \\boxed{y = 3x + 2}", "3x + 2"),
]


@pytest.mark.parametrize("reply,answer", MATH_CASES)
def test_math(reply, answer):
    assert extract(MATH, reply).answer == answer


def test_quantity_and_free_text():
    assert extract(UNIT, "So v = 12.5 m/s. The answer is \\boxed{12.5 \\mathrm{~m/s}}").answer == "12.5 \\mathrm{~m/s}"
    assert extract(UNIT, "Therefore the answer is 4.2 kJ/mol.").answer == "4.2 kJ/mol"
    assert extract(TEXT, "Counting the protons...\nAnswer: 5").answer == "5"
    assert extract(TEXT, "I could not decide.").answer is None


def test_indicators_are_found_in_order_and_extraction_never_raises():
    spans = indicated("Answer: A. Hmm. The final answer is \\boxed{B}.")
    assert [m for _, m, _ in spans] == ["indicator:answer_colon", "indicator:final_answer", "boxed"]
    for qtype in (MC, TF, NUM, MATH, UNIT, TEXT):
        for junk in (None, 3, "\\boxed{", "}}}{{{", "Answer:" * 500, "\\frac{" * 50 + "1"):
            got = extract(qtype, junk, OPTS4)                   # total: returns, never raises
            assert got.method != "error" and (got.answer is None or isinstance(got.answer, str))


def test_pronoun_i_is_not_option_i_and_negated_truth_flips():
    ten = [f"o{i}" for i in range(10)]
    assert extract(MC, "Answer: I think it is B.", ten).answer is None            # the pronoun: no option I
    assert extract(MC, "Answer: I think it is B.\nThe answer is B", ten).answer == "B"
    assert extract(MC, "Answer: I", ten).answer == "I"                            # a bare I is option I (MMLU-Pro)
    assert extract(MC, "Answer: (I) o8", ten).answer == "I"
    assert extract(TF, "Thinking it over, this is not true.").answer == "false"
    assert extract(TF, "So the statement is not false.").answer == "true"
    assert extract(TF, "Answer: not true").answer == "false"


def test_fractions_are_numbers_in_text():
    assert extract(NUM, "The answer is 3/4 of a cup.").answer == "3/4"
    assert extract(NUM, "She ate 3/4.").answer == "3/4"                          # last number, a fraction
    assert extract(NUM, "On 3/4/2020 she bought 7 pens.").answer == "7"           # a date is no fraction


UNIT_CASES = [   # (reply, gold number, gold unit, policy, expected extraction, correct)
    ("Thus c = 3.0e8 m/s.\nThe answer is \\boxed{3.0 \\times 10^8 \\mathrm{~m/s}}", "3e8", "m/s", "required",
     "3.0 \\times 10^8 \\mathrm{~m/s}", True),
    ("The speed is 12 m/s, that is 43.2 km/h.\nAnswer: 43.2 km/h", "12", "m s^{-1}", "required", "43.2 km/h", True),
    ("The final answer is 25 °C.", "298.15", "K", "required", "25 °C", True),
    ("The answer is \\boxed{2.4}.", "2.4", "kJ/mol", "required", "2.4", False),            # unit missing
    ("The answer is \\boxed{2.4}.", "2.4", "kJ/mol", "convert_if_given", "2.4", True),     # SciBench: no unit asked
    ("The answer is 2.4 kg.", "2.4", "kJ/mol", "convert_if_given", "2.4 kg", False),       # another dimension
    ("So the energy is \\boxed{4.0 \\times 10^{-19} \\mathrm{~J}}", "4.0", "$10^{-19} \\mathrm{~J}$", "convert_if_given",
     "4.0 \\times 10^{-19} \\mathrm{~J}", True),                                          # a scaled gold unit
]


@pytest.mark.parametrize("reply,gold,unit,policy,answer,correct", UNIT_CASES)
def test_quantities_extracted_and_judged(reply, gold, unit, policy, answer, correct):
    from megascience_eval.judge import judge
    got = extract(UNIT, reply)
    assert got.answer == answer
    assert judge(UNIT, got.answer, gold, metric="em_unit", rel_tol=0.05, gold_unit=unit, unit_policy=policy).correct is correct


TEXT_CASES = [   # ChemBench string match: (reply, gold, expected extraction, correct)
    ("Phosphorus loses five electrons.\nThe oxidation state of P is +5.", "+5", "+5", True),
    ("Answer: **CCO**", "cco", "CCO", True),
    ("The answer is $1.5 \\times 10^{-3}$.", "0.0015", "1.5 \\times 10^{-3}", True),
    ("Answer: 7.2\nWait, the answer is 7.4", "7.4", "7.4", True),                        # the last indicator
    ("It depends on the temperature.", "3", None, False),                                  # no answer: counted
]


@pytest.mark.parametrize("reply,gold,answer,correct", TEXT_CASES)
def test_free_text_extracted_and_judged(reply, gold, answer, correct):
    from megascience_eval.judge import judge
    got = extract(TEXT, reply)
    assert got.answer == answer
    v = judge(TEXT, got.answer, gold, rel_tol=1e-6)
    assert v.correct is correct and (v.status == "no_answer") is (answer is None)
