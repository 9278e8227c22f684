"""Is an extracted answer correct? One pure function per question type; `judge` dispatches.

Statuses: "correct", "wrong", "no_answer" (nothing could be extracted: counted, and scored as wrong, as
the paper's toolkit scores its 'placeholder'). Metrics (declared per benchmark):
  em       exact match after the type's normalisation (letters, truth values, math equivalence with
           `rel_tol` for numbers, normalised strings for free text)
  em_unit  a number and its unit; `unit_policy`:
           required          the prediction must carry a unit of the gold's dimension (converted before the
                             numbers are compared: OlympicArena-style EM (unit))
           convert_if_given  a unit in the prediction is converted to the gold's; a prediction without a unit
                             (as the SciBench prompt asks) is read in the gold's unit; a unit of another
                             dimension is wrong
"""
from __future__ import annotations

from dataclasses import dataclass

from .extract import MATH, MC, NUM, TEXT, TF, UNIT
from .mathnorm import close, math_equal, normalize_math, parse_number
from .units import convert, parse_unit, split_quantity

METRICS = ("em", "em_unit")
UNIT_POLICIES = ("required", "convert_if_given")


@dataclass(frozen=True)
class Verdict:
    correct: bool
    status: str          # correct | wrong | no_answer
    note: str = ""       # why, when it is not plain (unit converted, unit missing, ...)


def _v(ok: bool, note: str = "") -> Verdict:
    return Verdict(bool(ok), "correct" if ok else "wrong", note)


def judge_quantity(pred: str, gold: str, gold_unit: str, *, rel_tol: float, policy: str) -> Verdict:
    q = split_quantity(pred)
    if q is None:
        return _v(False, "no number in the answer")
    value = parse_number(q[0])
    target = parse_number(gold)
    if value is None or target is None:
        return _v(False, "unreadable number")
    pred_unit_text = q[1]
    if not gold_unit.strip():
        return _v(close(value, target, rel_tol), "no gold unit: number only")
    want = parse_unit(gold_unit)
    if not pred_unit_text:
        if policy == "required":
            return _v(False, "unit missing")
        return _v(close(value, target, rel_tol), "read in the gold unit")
    have = parse_unit(pred_unit_text)
    if want is None or have is None:
        if policy == "required":
            same = normalize_math(pred_unit_text) == normalize_math(gold_unit)
            return _v(same and close(value, target, rel_tol), "unit compared as text")
        return _v(close(value, target, rel_tol), "unknown unit: number only")
    converted = convert(value, have, want)
    if converted is None:
        return _v(False, f"unit {pred_unit_text!r} is not a {gold_unit!r} quantity")
    return _v(close(converted, target, rel_tol), "unit converted" if have != want else "")


def judge_free_text(pred: str, gold: str, rel_tol: float) -> Verdict:
    vp, vg = parse_number(pred), parse_number(gold)
    if vp is not None and vg is not None:
        return _v(close(vp, vg, rel_tol))
    a, b = normalize_math(pred).lower(), normalize_math(gold).lower()
    return _v(bool(a) and a == b)


def judge(qtype: str, answer: str | None, gold: str, *, metric: str = "em", rel_tol: float = 1e-4,
          gold_unit: str = "", unit_policy: str = "convert_if_given") -> Verdict:
    if answer is None or not str(answer).strip():
        return Verdict(False, "no_answer")
    answer = str(answer)
    if metric == "em_unit" or qtype == UNIT:
        return judge_quantity(answer, gold, gold_unit, rel_tol=rel_tol, policy=unit_policy)
    if qtype == MC:                                    # a set of letters where several options are correct
        def letters(x: str) -> set[str]:
            return {p.strip().upper() for p in x.split(",") if p.strip()}
        return _v(letters(answer) == letters(gold))
    if qtype == TF:
        return _v(answer.strip().lower() == gold.strip().lower())
    if qtype in (NUM, MATH):
        return _v(math_equal(answer, gold, rel_tol))
    if qtype == TEXT:
        return judge_free_text(answer, gold, rel_tol)
    raise ValueError(f"unknown question type {qtype!r}")
