"""Answer extraction from a model's reply: pure functions, total on any text (they return, never raise).

Two stages, as in the paper's §4.3: (1) answer-indicator phrases ("The final answer is", "The correct
answer is", "Answer:", `\\boxed{}` ..., table in `PHRASES`), tried from the LAST occurrence in the reply
backwards until one yields an answer of the question's type; (2) the answer's form: formatting shells
(`\\boxed{}`, `\\text{}`, `\\mathrm{}`, `\\mathbf{}`, `$`, `**`, `()`, `[]`) are peeled and the content is
read as an option letter, a true/false word, a number, a math expression or a quantity with its unit.
Where no indicator works, each type has stated fallbacks (the last line for letters and truth values, an
option's text, the last number). Every result names its `method`; `answer is None` (method "none") is a
reply with no extractable answer, which the scorer counts as such.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Sequence

from .mathnorm import normalize_math, numbers_in, parse_number, strip_wrappers
from .units import split_quantity

MC, TF, NUM, MATH, UNIT, TEXT = "multiple_choice", "true_false", "numeric", "math", "numeric_unit", "free_text"
QUESTION_TYPES = (MC, TF, NUM, MATH, UNIT, TEXT)


@dataclass(frozen=True)
class Extraction:
    answer: str | None       # letter "B" | "true"/"false" | number or expression text | "<number> <unit>"
    method: str              # "indicator:<phrase>", "boxed", "statement", "last_line", "option_text", ...
    span: str | None = None  # the piece of the reply the answer was read from


NONE = Extraction(None, "none")

_M = r"[*_`#\s]*"                                 # markdown that small models put around labels
PHRASES: tuple[tuple[str, str], ...] = (
    ("final_answer", rf"final{_M}answer(?:{_M}to{_M}(?:this|the){_M}(?:question|problem))?{_M}(?:is|[:：=]){_M}:?"),
    ("correct_answer", rf"the{_M}(?:correct|right){_M}(?:answer|option|choice){_M}(?:is|[:：]){_M}:?"),
    ("best_option", rf"the{_M}best{_M}(?:answer|option|choice){_M}(?:is|[:：]){_M}:?"),
    ("answer_should_be", rf"answer{_M}(?:should|must|would|will){_M}be{_M}:?"),
    ("answer_is_probably", rf"answer{_M}is{_M}(?:probably|likely){_M}:?"),
    ("answer_is", rf"answer{_M}is{_M}:?"),
    ("answer_colon", rf"answer{_M}[:：]"),
)
_PHRASE_RES = tuple((name, re.compile(rx, re.I)) for name, rx in PHRASES)
_BOX_OPEN = re.compile(r"\\(?:boxed|fbox)\s*\{")
_LETTER_AFTER = r"(?:option|choice|answer)?\s*[\[(]?\s*\**\$?(?:\\(?:boxed|text|mathrm|mathbf|textbf)\{)?\s*([A-Z])\s*\}?\$?\**\s*[\])]?"
_SUFFIX_RE = re.compile(
    rf"(?:^|[\s(*\[])(?:option\s+|choice\s+)?[\[(]?\**([A-Z])\**[\])]?\s+(?:is|seems|would\s+be)\s+(?:the\s+)?"
    rf"(?:correct|right|best)(?:\s+(?:answer|option|choice))?\b", re.I | re.M)
_TF_WORDS = {"true": "true", "false": "false", "yes": "true", "no": "false", "correct": "true",
             "incorrect": "false", "right": "true", "wrong": "false", "t": "true", "f": "false"}
_TF_STATEMENT = re.compile(r"\bstatement\s+(?:is|is\s+therefore|must\s+be|would\s+be)\s+(not\s+)?\**(true|false|correct|incorrect)\b",
                           re.I)
_FLIP = {"true": "false", "false": "true"}
_TF_ANY = re.compile(r"\b(true|false)\b", re.I)
_STATEMENT_VALUE = re.compile(r"\s(?:is|are|equals|=)\s+([^\s].*?)\s*[.!]?\s*$", re.I)
_PRONOUN = re.compile(r"\s+(?!is\b|seems\b|would\b|and\b|or\b|because\b|since\b|as\b)[a-z']+", re.S)
_NEGATED = re.compile(r"\b(?:not|n't|never)\s+(?:be\s+)?$", re.I)
_HOPE = re.compile(r"\s*I\s+hope\s+it\s+is\s+correct.*$", re.I | re.S)


def boxed_spans(text: str) -> list[tuple[int, str]]:
    """(position, content) of every balanced `\\boxed{...}` / `\\fbox{...}`, in order."""
    out = []
    for m in _BOX_OPEN.finditer(text):
        depth, i = 1, m.end()
        while i < len(text) and depth:
            if text[i] == "\\":
                i += 2
                continue
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        if depth == 0:
            out.append((m.start(), text[m.end():i - 1].strip()))
    return out


def _phrase_content(text: str, end: int) -> str:
    """What follows an indicator phrase: the rest of its line, or the next non-empty line."""
    rest = text[end:]
    line, _, after = rest.partition("\n")
    if not line.strip(" \t*_:$"):
        line = next((ln for ln in after.splitlines() if ln.strip(" \t*_")), "")
    return _HOPE.sub("", line).strip()


def indicated(text: str) -> list[tuple[int, str, str]]:
    """(position, method, content) of every indicator phrase and boxed answer, by position (a box after a
    phrase comes later, so "The answer is \\boxed{5}" is read from the box)."""
    spans = [(pos, "boxed", content) for pos, content in boxed_spans(text) if content]
    taken: list[tuple[int, int]] = []
    for name, rx in _PHRASE_RES:                     # more specific phrases first; they shadow shorter ones
        for m in rx.finditer(text):
            if any(a <= m.start() < b or m.start() <= a < m.end() for a, b in taken):
                continue
            taken.append((m.start(), m.end()))
            content = _phrase_content(text, m.end())
            if content:
                spans.append((m.start(), f"indicator:{name}", content))
    return sorted(spans)


def _first_of(text: str, readers: Sequence[Callable[[str], str | None]]) -> tuple[str, str] | None:
    for pos, method, content in reversed(indicated(text)):
        for read in readers:
            value = read(content)
            if value is not None:
                return value, method, content
    return None


def _last_line(text: str) -> str:
    return next((ln.strip() for ln in reversed(text.splitlines()) if ln.strip(" \t*_-")), "")


# -- multiple choice -------------------------------------------------------------------------------------

def read_letter(content: str, n_options: int, strict: bool = False) -> str | None:
    """An option letter at the start of `content` ("B", "(B)", "B.", "**B**", "\\boxed{B}", "option B: ...").
    `strict` (for a bare last line): the letter must be followed by punctuation or the end, so the article
    in "A husband and wife ..." is not read as option A."""
    s = strip_wrappers(content)
    s = re.sub(r"^\\(?:text|mathrm|mathbf|textbf)\s*\{([^{}]*)\}", r"\1", s).strip()
    after = r"(?=$|[.,:;)\]*]|\\)" if strict else r"(?=$|[\s.,:;)\]*]|\\)"
    m = re.match(rf"^{_LETTER_AFTER}{after}", s, re.I)
    if not m:
        return None
    letter = m.group(1).upper()
    labelled = m.group(0).strip().upper().startswith(("OPTION", "CHOICE", "ANSWER"))
    if not labelled and m.group(1).islower():
        return None                                  # a lower-case word like "a" is not an option label
    if letter == "I" and not labelled and m.group(0).strip() == "I" and _PRONOUN.match(s[m.end(1):]):
        return None                                  # "I think it is B": the pronoun, not option I
    return letter if 0 <= ord(letter) - 65 < n_options else None


_LETTER_LIST = re.compile(r"^[\[(]?([A-Z])[\])]?((?:\s*(?:,|and|&|/|\s)\s*[\[(]?[A-Z][\])]?)+)\s*(?:$|[.;])")


def read_letters(content: str, n_options: int) -> str | None:
    """Several option letters ("A, C", "(A) and (C)", "A,C,E"): sorted and comma-joined; None for fewer than two."""
    s = strip_wrappers(content)
    s = re.sub(r"^\\(?:text|mathrm|mathbf|textbf)\s*\{([^{}]*)\}", r"\1", s).strip().strip("*").strip()
    s = re.sub(r"^(?:options?|choices?)\s+", "", s, flags=re.I)
    m = _LETTER_LIST.match(s)
    if not m:
        return None
    letters = sorted({m.group(1), *re.findall(r"[A-Z]", m.group(2))})
    if len(letters) < 2 or any(ord(x) - 65 >= n_options for x in letters):
        return None
    return ",".join(letters)


def _norm_text(s: str) -> str:
    s = normalize_math(s) if "\\" in s else s.lower()
    s = re.sub(r"\.(?!\d)", " ", s)                   # sentence periods go, decimal points stay
    return " ".join(re.sub(r"[^\w.%+\-/]+", " ", s).split()).lower()


def read_option_text(content: str, options: Sequence[str]) -> str | None:
    """The letter of the one option whose text `content` is or contains as whole words. An option found
    only inside another found option's text ("4" inside "14") does not count; two distinct options: None."""
    c = f" {_norm_text(content)} "
    hits = {}
    for i, opt in enumerate(options):
        o = _norm_text(str(opt))
        if o and (c.strip() == o or f" {o} " in c):
            hits[i] = o
    top = [i for i, o in hits.items() if not any(o != p and f" {o} " in f" {p} " for p in hits.values())]
    return chr(65 + top[0]) if len(top) == 1 else None


def _ends_with_option_list(text: str, n_options: int) -> bool:
    """Whether the reply ends with a listing of two or more different option labels ("A. ...", "B. ...")."""
    labels = []
    for line in reversed([ln for ln in text.splitlines() if ln.strip()]):
        letter = read_letter(line, n_options, strict=True)
        if letter is None:
            break
        labels.append(letter)
    return len(set(labels)) > 1


def _starts_with_option_list(lines: list[str], n_options: int) -> bool:
    labels = []
    for line in lines:
        letter = read_letter(line, n_options, strict=True)
        if letter is None:
            break
        labels.append(letter)
    return len(set(labels)) > 1


def extract_choice(text: object, options: Sequence[str]) -> Extraction:
    if not isinstance(text, str) or not text.strip():
        return NONE
    n = len(options)
    hit = _first_of(text, [lambda c: read_letters(c, n), lambda c: read_letter(c, n),
                           lambda c: read_option_text(c, options)])
    if hit:
        return Extraction(hit[0], hit[1], hit[2])
    suffix = [m for m in _SUFFIX_RE.finditer(text) if 0 <= ord(m.group(1).upper()) - 65 < n and m.group(1).isupper()]
    if suffix:
        return Extraction(suffix[-1].group(1).upper(), "indicator:is_correct", suffix[-1].group(0).strip())
    line = _last_line(text)
    if _ends_with_option_list(text, n):
        return NONE                                  # the reply repeats the options: no choice was made
    letter = read_letters(line, n) or read_letter(line, n, strict=True)
    if letter:
        return Extraction(letter, "last_line", line)
    letter = read_option_text(line, options)
    if letter:
        return Extraction(letter, "option_text", line)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    first = read_letter(lines[0], n, strict=True)
    if first and not _starts_with_option_list(lines, n):
        return Extraction(first, "first_line", lines[0])    # "B. No" then talk: the reply opened with its choice
    return NONE


# -- true / false --------------------------------------------------------------------------------------

def read_truth(content: str) -> str | None:
    s = strip_wrappers(content)
    s = re.sub(r"^\\(?:text|mathrm|textbf)\s*\{([^{}]*)\}", r"\1", s)
    m = re.match(r"^[\s*_(\[\"']*(?:the\s+statement\s+is\s+)?(true|false|yes|no|correct|incorrect|right|wrong|t|f)\b",
                 s, re.I)
    return _TF_WORDS[m.group(1).lower()] if m else None


def extract_true_false(text: object) -> Extraction:
    if not isinstance(text, str) or not text.strip():
        return NONE
    hit = _first_of(text, [read_truth])
    if hit:
        return Extraction(hit[0], hit[1], hit[2])
    statements = list(_TF_STATEMENT.finditer(text))
    if statements:
        last = statements[-1]
        value = _TF_WORDS[last.group(2).lower()]
        return Extraction(_FLIP[value] if last.group(1) else value, "statement", last.group(0))
    line = _last_line(text)
    words = list(_TF_ANY.finditer(line))
    if words:
        value = words[-1].group(1).lower()
        negated = _NEGATED.search(line[:words[-1].start()])     # "This is not true." reads as false
        return Extraction(_FLIP[value] if negated else value, "last_line", line)
    return NONE


# -- numbers, expressions, quantities -----------------------------------------------------------------

def _sentence(content: str) -> str:
    """The answer part of an indicator's content: the first $...$ math if it opens the content, else up to
    the end of the sentence."""
    s = content.strip().lstrip(":").strip()
    m = re.match(r"^\$\$?(.+?)\$\$?", s)
    if m:
        return m.group(1).strip()
    m = re.match(r"^\\\((.+?)\\\)|^\\\[(.+?)\\\]", s)
    if m:
        return (m.group(1) or m.group(2)).strip()
    return re.split(r"\.(?:\s|$)|;\s|\s(?:because|since|as|which)\s", s, maxsplit=1)[0].strip()


def read_number(content: str) -> str | None:
    """A number from an indicator's content: the whole of it, else after its last '=', else its first number."""
    s = _sentence(content)
    if parse_number(s) is not None:
        return s
    if "=" in s:
        tail = s.rsplit("=", 1)[1].strip()
        if parse_number(tail) is not None:
            return tail
    found = numbers_in(s)
    return found[0][1].strip() if found else None


def read_math(content: str) -> str | None:
    s = strip_wrappers(_sentence(content))
    if "=" in s and not re.search(r"[<>]|\\le|\\ge", s):
        s = s.rsplit("=", 1)[1].strip()
    return s if s and len(s) <= 200 else None


def read_quantity(content: str) -> str | None:
    s = _sentence(content)
    if "=" in s:
        s = s.rsplit("=", 1)[1].strip()
    q = split_quantity(s)
    return f"{q[0]} {q[1]}".strip() if q else None


def _last_number(text: str) -> Extraction:
    found = numbers_in(text)
    if not found:
        return NONE
    return Extraction(found[-1][1].strip(), "last_number", found[-1][1])


def _indicated_or_last_number(text: object, reader) -> Extraction:
    """The reader's answer after an indicator (last occurrence), else the reply's last number."""
    if not isinstance(text, str) or not text.strip():
        return NONE
    hit = _first_of(text, [reader])
    return Extraction(hit[0], hit[1], hit[2]) if hit else _last_number(text)


def extract_number(text: object) -> Extraction:
    return _indicated_or_last_number(text, read_number)


def extract_math(text: object) -> Extraction:
    return _indicated_or_last_number(text, read_math)


def extract_quantity(text: object) -> Extraction:
    return _indicated_or_last_number(text, read_quantity)


def extract_free_text(text: object) -> Extraction:
    if not isinstance(text, str) or not text.strip():
        return NONE
    hit = _first_of(text, [lambda c: strip_wrappers(_sentence(c)) or None])
    if hit:
        return Extraction(hit[0], hit[1], hit[2])
    last = re.split(r"(?<=[.!?])\s+", _last_line(text))[-1]
    m = _STATEMENT_VALUE.search(last)
    if m and len(m.group(1)) <= 40:                      # "The oxidation state of P is +5." -> "+5"
        return Extraction(strip_wrappers(m.group(1)), "statement", last)
    return NONE


def extract(qtype: str, text: object, options: Sequence[str] = ()) -> Extraction:
    """The answer of a reply to a question of type `qtype` (one of QUESTION_TYPES)."""
    try:
        if qtype == MC:
            return extract_choice(text, options)
        if qtype == TF:
            return extract_true_false(text)
        if qtype == NUM:
            return extract_number(text)
        if qtype == MATH:
            return extract_math(text)
        if qtype == UNIT:
            return extract_quantity(text)
        if qtype == TEXT:
            return extract_free_text(text)
    except Exception:  # noqa: BLE001 - a bug here must show as a counted failure, not crash a run
        return Extraction(None, "error")
    raise ValueError(f"unknown question type {qtype!r}; known: {QUESTION_TYPES}")
