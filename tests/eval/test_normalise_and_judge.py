"""Numbers, LaTeX, units and the judge, on hand-written cases with known answers."""
from __future__ import annotations

import pytest

from megascience_eval.judge import judge
from megascience_eval.mathnorm import math_equal, normalize_math, parse_number
from megascience_eval.units import convert, parse_unit, split_quantity


@pytest.mark.parametrize("text,value", [
    ("42", 42.0), ("-3.5", -3.5), ("1,234.5", 1234.5), ("$18", 18.0), ("50\\%", 50.0), (".5", 0.5),
    ("3.2 \\times 10^{-4}", 3.2e-4), ("3.2e-4", 3.2e-4), ("6.02 × 10^23", 6.02e23), ("10^{-3}", 1e-3),
    ("\\frac{3}{4}", 0.75), ("\\dfrac34", 0.75), ("-\\frac{1}{2}", -0.5), ("3/8", 0.375),
    ("2\\sqrt{2}", 2 * 2 ** 0.5), ("\\frac{\\sqrt{3}}{2}", 3 ** 0.5 / 2), ("\\pi", 3.141592653589793),
    ("18 dollars", 18.0), ("\\boxed{7}", 7.0), ("x = 5", 5.0), ("90^\\circ", 90.0),
])
def test_parse_number(text, value):
    assert parse_number(text) == pytest.approx(value, rel=1e-9)


@pytest.mark.parametrize("text", ["", "abc", "x^2+1", "\\frac{1}{", "1/0", "(1, 2)", "9" * 400 + "**" + "9" * 9])
def test_parse_number_refuses(text):
    assert parse_number(text) is None


@pytest.mark.parametrize("a,b", [
    ("\\dfrac{1}{2}", "\\frac12"), ("0.5", "\\frac{1}{2}"), ("(1, 2)", "(1,2)"), ("\\left( 1,2 \\right)", "(1,2)"),
    ("x^2+1", "1+x^2"), ("2x+2", "2(x+1)"), ("\\sqrt{8}", "2\\sqrt{2}"), ("18.00", "18"), ("\\text{(B)}", "(B)"),
    ("[1, 3)", "[1,3)"), ("1,000", "1000"), ("\\$5", "5"),
])
def test_math_equal(a, b):
    assert math_equal(a, b)


@pytest.mark.parametrize("a,b", [("0.5", "0.6"), ("(1,2)", "(2,1)"), ("[1,3)", "(1,3)"), ("x^2", "x^3"), ("", "0"),
                                 ("2", "x")])
def test_math_not_equal(a, b):
    assert not math_equal(a, b)


def test_normalize_math_is_canonical():
    assert normalize_math("$\\boxed{\\dfrac{1}{2}}$.") == "\\frac{1}{2}" == normalize_math("\\frac 1 2")


@pytest.mark.parametrize("unit,scale,dims", [
    ("kJ/mol", 1e3, (2, 1, -2, 0, 0, -1, 0)), ("\\mathrm{~m} / \\mathrm{s}", 1.0, (1, 0, -1, 0, 0, 0, 0)),
    ("m s^-1", 1.0, (1, 0, -1, 0, 0, 0, 0)), ("J K^{-1} mol^{-1}", 1.0, (2, 1, -2, 0, -1, -1, 0)),
    ("\\mathrm{kg} \\cdot \\mathrm{m}^2", 1.0, (2, 1, 0, 0, 0, 0, 0)), ("nm", 1e-9, (1, 0, 0, 0, 0, 0, 0)),
    ("atm", 101325.0, (-1, 1, -2, 0, 0, 0, 0)), ("MeV", 1.602176634e-13, (2, 1, -2, 0, 0, 0, 0)),
    ("min", 60.0, (0, 0, 1, 0, 0, 0, 0)), ("mL", 1e-6, (3, 0, 0, 0, 0, 0, 0)), ("\\AA", 1e-10, (1, 0, 0, 0, 0, 0, 0)),
    ("meters", 1.0, (1, 0, 0, 0, 0, 0, 0)),
])
def test_parse_unit(unit, scale, dims):
    u = parse_unit(unit)
    assert u is not None and u.scale == pytest.approx(scale) and u.dims == dims


def test_units_convert_and_refuse():
    assert convert(1.0, parse_unit("kJ"), parse_unit("J")) == pytest.approx(1000.0)
    assert convert(25.0, parse_unit("°C"), parse_unit("K")) == pytest.approx(298.15)
    assert convert(1.0, parse_unit("atm"), parse_unit("kPa")) == pytest.approx(101.325)
    assert convert(1.0, parse_unit("m"), parse_unit("s")) is None
    assert parse_unit("furlongs per fortnight") is None
    assert split_quantity("4.2 \\times 10^{3} J") == ("4.2 \\times 10^{3}", "J")
    assert split_quantity("\\boxed{12.5 \\mathrm{m/s}}") == ("12.5", "\\mathrm{m/s}")
    assert split_quantity("about five") is None


def test_judge_by_type():
    assert judge("multiple_choice", "b", "B").correct
    assert judge("multiple_choice", "A,C", "C,A").correct and not judge("multiple_choice", "A", "A,C").correct
    assert judge("true_false", "false", "false").correct
    assert judge("numeric", "$18", "18", rel_tol=1e-6).correct and not judge("numeric", "18.1", "18", rel_tol=1e-6).correct
    assert judge("math", "\\frac{1}{2}", "0.5").correct
    assert judge("free_text", "CCO", "cco").correct and judge("free_text", "5", "5.0").correct
    v = judge("multiple_choice", None, "A")
    assert (v.correct, v.status) == (False, "no_answer")


def test_judge_units_scibench_and_olympiad_policies():
    sci = dict(metric="em_unit", rel_tol=0.05, unit_policy="convert_if_given")
    assert judge("numeric_unit", "2.39", "2.4", gold_unit="kJ mol^{-1}", **sci).correct          # within 5 %
    assert not judge("numeric_unit", "2.2", "2.4", gold_unit="kJ mol^{-1}", **sci).correct
    v = judge("numeric_unit", "2400 J/mol", "2.4", gold_unit="$\\mathrm{kJ} \\mathrm{mol}^{-1}$", **sci)
    assert v.correct and v.note == "unit converted"
    assert not judge("numeric_unit", "2.4 m", "2.4", gold_unit="kJ/mol", **sci).correct            # other dimension
    oly = dict(metric="em_unit", rel_tol=0.05, unit_policy="required")
    assert judge("numeric_unit", "1200 m", "1.2", gold_unit="km", **oly).correct
    v = judge("numeric_unit", "1.2", "1.2", gold_unit="km", **oly)
    assert not v.correct and v.note == "unit missing"
    assert judge("numeric_unit", "3", "3", gold_unit="", **oly).correct


def test_math_answers_with_units_sets_and_membership():
    assert math_equal("5\\text{ cm}^2", "5") and math_equal("\\frac{1}{2}\\text{ inches}", "0.5")
    assert not math_equal("5\\text{cm}", "5cm2")
    assert math_equal("x \\in [2, 5)", "[2,5)") and not math_equal("x \\in [2, 5)", "(2,5)")
    assert math_equal("3, 5", "5, 3") and math_equal("-1, \\frac{1}{2}", "0.5, -1")
    assert not math_equal("3, 5", "3, 5, 7") and not math_equal("3, 3", "3, 5")
    assert not math_equal("(3, 5)", "(5, 3)")                                   # an ordered pair stays ordered


def test_scaled_units_as_scibench_writes_them():
    assert parse_unit("$10^{-3} \\mathrm{~m}$").scale == pytest.approx(1e-3)
    assert parse_unit("$\\times 10^{-19} \\mathrm{~J}$").scale == pytest.approx(1e-19)
    sci = dict(metric="em_unit", rel_tol=0.05, unit_policy="convert_if_given")
    assert judge("numeric_unit", "0.002718 m", "2.72", gold_unit="$10^{-3} \\mathrm{~m}$", **sci).correct
    assert judge("numeric_unit", "2.718", "2.72", gold_unit="$10^{-3} \\mathrm{~m}$", **sci).correct
    assert not judge("numeric_unit", "2.718 m", "2.72", gold_unit="$10^{-3} \\mathrm{~m}$", **sci).correct
