"""Numbers and math answers: parse, normalise and compare. Pure functions that never raise on model text.

    parse_number("3.2 \\times 10^{-4}")  -> 0.00032        parse_number("\\frac{3}{4}") -> 0.75
    parse_number("1,234.5") -> 1234.5                      parse_number("50\\%") -> 50.0
    normalize_math("\\dfrac{1}{2}") == normalize_math("\\frac12") == "\\frac{1}{2}"
    math_equal("0.5", "\\frac{1}{2}") is True;  math_equal("(1, 2)", "(1,2)") is True

Equivalence, in order: equal normalised strings; both sides numbers (LaTeX fractions, roots, pi,
scientific notation, percentages) within a relative tolerance; tuples/intervals element by element;
bare comma lists ("all solutions") as multisets, in any order;
both sides symbolic expressions equal at a few random points (sympy, imported lazily; no simplify,
so a hostile expression cannot hang the scorer).
"""
from __future__ import annotations

import math
import random
import re

DEFAULT_REL_TOL = 1e-4

_TEXT_WRAPPERS = re.compile(r"\\(?:text|textbf|textit|mathrm|mathbf|mathit|operatorname|mbox|rm|bf)\s*\{([^{}]*)\}")
_TEXT_UNITS = re.compile(r"(?<=[\d}])\s*\\(?:text|mbox|mathrm)\s*\{\s+[a-zA-Z][^{}]*\}(?:\^\{?\d\}?)?\s*$")
_SPACING = re.compile(r"\\[,;:! ]|\\quad|\\qquad|~")
_LEFT_RIGHT = re.compile(r"\\(?:left|right|big|Big|bigg|Bigg)\s*([()\[\]|.]|\\\{|\\\})")
_FRAC_SHORT = re.compile(r"\\[dt]?frac\s*(\d)\s*(\d)")          # \frac12 -> \frac{1}{2}
_FRAC_ONE = re.compile(r"\\[dt]?frac\s*\{([^{}]*)\}\s*(\d)")      # \frac{1}2
_DFRAC = re.compile(r"\\[dt]frac")
_SQRT_SHORT = re.compile(r"\\sqrt\s*(\d+|[a-zA-Z])")
_DEGREES = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|°|\\degree")
_THOUSANDS = re.compile(r"(?<![\d.])(\d{1,3}(?:,\d{3})+)(?![\d,])")
_UNIT_WORDS = re.compile(
    r"\s*(?:dollars?|cents?|units?|degrees?|inches|inch|feet|foot|meters?|cm|km|kg|grams?|hours?|minutes?|"
    r"seconds?|days?|weeks?|years?|miles?|people|students|apples|marbles|points|percent)\s*$", re.I)
_SCI = re.compile(r"^([-+]?\d*\.?\d+)\s*(?:\\times|\\cdot|\*|x|×|·)\s*10\s*\^\s*\{?\s*([-+−]?\s*\d+)\s*\}?$")
_E_NOTATION = re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$")
_TEN_POW = re.compile(r"^10\s*\^\s*\{?\s*([-+−]?\s*\d+)\s*\}?$")
_NUMBER_IN_TEXT = re.compile(
    r"[-+−]?\d+/\d+(?![\d/]|[.,]\d)|"                          # a fraction "3/4" (not a date "3/4/2020")
    r"[-+−]?(?:\d{1,3}(?:,\d{3})+|\d+)?\.?\d+(?:\s*(?:\\times|×|\*|\\cdot)\s*10\s*\^\s*\{?\s*[-+−]?\d+\s*\}?|[eE][-+]?\d+)?")


def _balanced_groups(s: str, start: int, count: int) -> tuple[list[str], int] | None:
    """`count` consecutive {...} groups starting at s[start:]; their contents and the end position."""
    groups, i = [], start
    for _ in range(count):
        while i < len(s) and s[i].isspace():
            i += 1
        if i >= len(s) or s[i] != "{":
            return None
        depth, j = 0, i
        while j < len(s):
            if s[j] == "{":
                depth += 1
            elif s[j] == "}":
                depth -= 1
                if depth == 0:
                    break
            j += 1
        if depth:
            return None
        groups.append(s[i + 1:j])
        i = j + 1
    return groups, i


def strip_wrappers(s: str) -> str:
    """Remove `\\boxed{...}`/`\\fbox{...}` shells, `$...$`, `\\(...\\)` and surrounding markdown."""
    s = s.strip()
    for _ in range(4):
        before = s
        s = s.strip().strip("*_`").strip()
        m = re.match(r"^\\(?:boxed|fbox)\s*(?=\{)", s)
        if m:
            got = _balanced_groups(s, m.end(), 1)
            if got and not s[got[1]:].strip(" .;"):
                s = got[0][0]
        if len(s) >= 2 and s[0] == "$" and s[-1] == "$":
            s = s.strip("$")
        if s.startswith("\\(") and s.endswith("\\)") or s.startswith("\\[") and s.endswith("\\]"):
            s = s[2:-2]
        s = s.strip().rstrip(".;,").strip()
        if s == before:
            break
    return s


def normalize_math(s: object) -> str:
    """A canonical spelling of a math answer, for string comparison (after the MATH `strip_string` idea)."""
    if not isinstance(s, str):
        return ""
    s = strip_wrappers(s).replace("\n", " ")
    s = _SPACING.sub(" ", s)
    s = _TEXT_UNITS.sub("", s)                            # "5\\text{ cm}^2" -> "5" (MATH's units, spaced)
    for _ in range(3):
        s = _TEXT_WRAPPERS.sub(r"\1", s)
    s = _LEFT_RIGHT.sub(r"\1", s)
    s = _DFRAC.sub(r"\\frac", s)
    s = _FRAC_SHORT.sub(r"\\frac{\1}{\2}", s)
    s = _FRAC_ONE.sub(r"\\frac{\1}{\2}", s)
    s = _SQRT_SHORT.sub(r"\\sqrt{\1}", s)
    s = _DEGREES.sub("", s)
    s = s.replace("\\$", "").replace("$", "").replace("\\%", "").replace("%", "")
    s = s.replace("−", "-").replace("\\cdot", "*").replace("\\times", "*").replace("×", "*")
    s = _THOUSANDS.sub(lambda m: m.group(1).replace(",", ""), s)
    s = _UNIT_WORDS.sub("", s)
    s = re.sub(r"^[a-zA-Z]\s*(?:=|\\in(?![a-zA-Z]))\s*(?=\S)", "", s)   # "x = 5" -> "5", "x \\in [2,5)" -> "[2,5)"
    s = re.sub(r"\s+", "", s)
    s = re.sub(r"(?<![\d])\.(\d)", r"0.\1", s)            # ".5" -> "0.5"
    s = re.sub(r"^(-?\d+)\.0+$", r"\1", s)                # "18.00" -> "18"
    s = re.sub(r"^(-?\d+\.\d*?)0+$", r"\1", s)            # "2.50" -> "2.5"
    return s.rstrip(".")


def latex_to_python(s: str) -> str | None:
    """A python/sympy expression string for a normalised LaTeX answer, or None when it has other commands."""
    s = normalize_math(s)
    if not s:
        return None
    out, i = [], 0
    while i < len(s):
        if s.startswith("\\frac", i):
            got = _balanced_groups(s, i + 5, 2)
            if not got:
                return None
            a, b = (latex_to_python(g) for g in got[0])
            if a is None or b is None:
                return None
            out.append(f"(({a})/({b}))")
            i = got[1]
        elif s.startswith("\\sqrt", i):
            j = i + 5
            root = None
            if j < len(s) and s[j] == "[":
                k = s.find("]", j)
                if k < 0:
                    return None
                root, j = s[j + 1:k], k + 1
            got = _balanced_groups(s, j, 1)
            if not got:
                return None
            inner = latex_to_python(got[0][0])
            if inner is None:
                return None
            out.append(f"(({inner})**(1/({root})))" if root else f"sqrt({inner})")
            i = got[1]
        elif s.startswith("\\pi", i):
            out.append("pi")
            i += 3
        elif s[i] == "\\":
            m = re.match(r"\\(sin|cos|tan|ln|log|exp|infty)", s[i:])
            if not m:
                return None
            out.append({"infty": "oo", "ln": "log"}.get(m.group(1), m.group(1)))
            i += m.end()
        elif s[i] in "{}":
            out.append("(" if s[i] == "{" else ")")
            i += 1
        elif s[i] == "^":
            out.append("**")
            i += 1
        else:
            out.append(s[i])
            i += 1
    expr = "".join(out)
    expr = re.sub(r"(\d)\s*(?=[a-zA-Z(])", r"\1*", expr).replace(")(", ")*(")   # 2x -> 2*x, 2(x) -> 2*(x)
    expr = re.sub(r"\*\*\*", "**", expr)
    expr = re.sub(r"\b(sqrt|sin|cos|tan|log|exp)\*\(", r"\1(", expr)
    return expr


def _plain_float(s: str) -> float | None:
    s = s.replace("−", "-").replace(" ", "")
    if _E_NOTATION.match(s):
        return float(s)
    return None


def parse_number(s: object) -> float | None:
    """The value of an answer that is one number (any common spelling), or None."""
    if not isinstance(s, str):
        return None
    try:
        raw = strip_wrappers(s)
        n = normalize_math(raw)
        v = _plain_float(n)
        if v is not None:
            return v
        m = _SCI.match(raw.replace("−", "-").strip()) or _SCI.match(n)
        if m:
            return float(m.group(1)) * 10 ** int(m.group(2).replace("−", "-").replace(" ", ""))
        m = _TEN_POW.match(n)
        if m:
            return 10.0 ** int(m.group(1).replace("−", "-").replace(" ", ""))
        m = re.match(r"^([-+]?\d+)/(\d+)$", n)
        if m and int(m.group(2)):
            return int(m.group(1)) / int(m.group(2))
        expr = latex_to_python(n)
        if expr and re.fullmatch(r"[\d.+\-*/() eE]*(?:(?:sqrt|pi)[\d.+\-*/() eE]*)*", expr) and re.search(r"\d|pi", expr):
            value = _safe_eval(expr)
            if value is not None:
                return value
    except Exception:  # noqa: BLE001 - model text must never crash the scorer
        return None
    return None


def _safe_eval(expr: str) -> float | None:
    if len(expr) > 200 or "**" in expr and re.search(r"\*\*\s*\(?\s*\d{3,}", expr):
        return None
    try:
        value = eval(expr, {"__builtins__": {}}, {"sqrt": math.sqrt, "pi": math.pi})  # noqa: S307 - charset checked
        return float(value)
    except Exception:  # noqa: BLE001
        return None


def numbers_in(text: str) -> list[tuple[int, str]]:
    """(position, number text) of every number written in `text`, in order."""
    return [(m.start(), m.group(0)) for m in _NUMBER_IN_TEXT.finditer(text or "")]


def close(a: float, b: float, rel_tol: float = DEFAULT_REL_TOL, abs_tol: float = 1e-9) -> bool:
    return math.isclose(a, b, rel_tol=rel_tol, abs_tol=abs_tol)


def _split_tuple(s: str) -> tuple[str, list[str]] | None:
    """'(1,2)' -> ('()', ['1', '2']); intervals keep their brackets; None for a non-tuple."""
    if len(s) >= 2 and s[0] in "([" and s[-1] in ")]":
        inner, depth, parts, cur = s[1:-1], 0, [], ""
        for c in inner:
            depth += c in "([{"
            depth -= c in ")]}"
            if c == "," and depth == 0:
                parts.append(cur)
                cur = ""
            else:
                cur += c
        parts.append(cur)
        if len(parts) > 1:
            return s[0] + s[-1], parts
    return None


def _split_list(s: str) -> list[str] | None:
    """'3,5' -> ['3', '5'] for a bare comma list (no brackets around it: "all solutions"), else None."""
    if not s or s[0] in "([{" and s[-1] in ")]}":
        return None
    got = _split_tuple(f"({s})")
    return got[1] if got else None


def _same_multiset(a: list[str], b: list[str], rel_tol: float) -> bool:
    left = list(b)
    for x in a:
        hit = next((k for k, y in enumerate(left) if math_equal(x, y, rel_tol)), None)
        if hit is None:
            return False
        left.pop(hit)
    return not left


def _symbolic_equal(a: str, b: str) -> bool:
    pa_, pb = latex_to_python(a), latex_to_python(b)
    if not pa_ or not pb or len(pa_) > 200 or len(pb) > 200 or "=" in pa_ + pb:
        return False
    try:
        import sympy
        ea, eb = sympy.sympify(pa_), sympy.sympify(pb)
        free = sorted(ea.free_symbols | eb.free_symbols, key=str)
        if len(free) > 3:
            return False
        rng = random.Random(0)
        for _ in range(4):
            point = {x: rng.uniform(0.5, 2.5) for x in free}
            va, vb = complex(ea.evalf(subs=point)), complex(eb.evalf(subs=point))
            if not (math.isfinite(abs(va)) and abs(va - vb) <= 1e-6 * max(1.0, abs(va), abs(vb))):
                return False
        return True
    except Exception:  # noqa: BLE001 - unparseable or undefined: not equal
        return False


def math_equal(pred: object, gold: object, rel_tol: float = DEFAULT_REL_TOL) -> bool:
    """Whether a predicted math answer equals the gold one (see the module docstring for the order)."""
    if not isinstance(pred, str) or not isinstance(gold, str):
        return False
    np_, ng = normalize_math(pred), normalize_math(gold)
    if not np_ or not ng:
        return False
    if np_ == ng or np_.lower() == ng.lower():
        return True
    vp, vg = parse_number(pred), parse_number(gold)
    if vp is not None and vg is not None:
        return close(vp, vg, rel_tol)
    tp, tg = _split_tuple(np_), _split_tuple(ng)
    if tp and tg:
        return tp[0] == tg[0] and len(tp[1]) == len(tg[1]) and all(
            math_equal(x, y, rel_tol) for x, y in zip(tp[1], tg[1]))
    lp, lg = _split_list(np_), _split_list(ng)
    if lp and lg:                                         # "3, 5" == "5, 3": the solutions in any order
        return len(lp) == len(lg) and _same_multiset(lp, lg, rel_tol)
    return _symbolic_equal(np_, ng)
