"""Reply readers shared by several LLM stages (each stage's own reader lives in its module).

Every function is pure and total: whatever the model wrote, it returns a value or None (None = the reply
could not be read), and never raises; the stages turn None into a counted drop reason.

  judgements      free analysis, then a last line `Decision: YES` or `Decision: NO` (cot, filter_qa,
                  decontaminate)
  boxed answers   the last complete `\\boxed{...}` (reference_answer)
"""
from __future__ import annotations

import re

_DECISION = re.compile(
    r"decision[ \t]*[*_]*[ \t]*[:：\-][ \t]*[*_\[\(\"'`]*[ \t]*(?P<verdict>yes|no)\b", re.I)
_BARE_VERDICT = re.compile(r"\b(YES|NO)\b")
_WHOLE_REPLY_VERDICT = re.compile(r"^\W*(yes|no)\W*$", re.I)
_BOXED = re.compile(r"\\(?:boxed|fbox)[ \t]*\{")
EMPTY_BOX = re.compile(r"\$?\\boxed[ \t]*\{[ \t]*\}\$?")


def clean(text: str) -> str:
    """Strip surrounding whitespace, bold markers left around the label, and trailing rules (---)."""
    text = re.sub(r"(?:\n[ \t]*(?:-{3,}|\*{3,}|_{3,})[ \t]*)+\s*$", "", text.strip())
    return text.strip().strip("*").strip()


def parse_decision(text: object) -> bool | None:
    """YES -> True, NO -> False, else None.

    Rule 1: the last `Decision:` line (any case; brackets, bold or quotes around the word allowed).
    Rule 2: with no such line, the last stand-alone upper-case YES or NO word, or a reply that is
    just "yes"/"no". Substrings never count ("Now", "Note", "None" are not NO).
    """
    if not isinstance(text, str):
        return None
    try:
        decisions = list(_DECISION.finditer(text))
        if decisions:
            return decisions[-1].group("verdict").lower() == "yes"
        whole = _WHOLE_REPLY_VERDICT.match(text)
        if whole:
            return whole.group(1).lower() == "yes"
        bare = _BARE_VERDICT.findall(text)
        if bare:
            return bare[-1] == "YES"
        return None
    except Exception:  # noqa: BLE001
        return None


def _boxed_spans(text: str) -> list[str]:
    """Contents of every balanced \\boxed{...}, in order of their opening; escaped braces \\{ \\} do not
    count. One pass over the text (a stack of open boxes), so long or hostile replies stay linear."""
    opens = {m.end(): m for m in _BOXED.finditer(text)}     # position after "\\boxed{" -> match
    found: list[tuple[int, str]] = []
    stack: list[tuple[int, int]] = []                        # (content start, depth outside the box)
    depth, i, n = 0, 0, len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == "{":
            if i + 1 in opens:
                stack.append((i + 1, depth))
            depth += 1
        elif c == "}" and depth:
            depth -= 1
            if stack and stack[-1][1] == depth:
                start, _ = stack.pop()
                found.append((start, text[start:i]))
        i += 1
    return [content for _, content in sorted(found)]


def last_boxed(text: object) -> str | None:
    """The content of the last complete, non-empty \\boxed{...} (balanced braces, any lines), or None."""
    if not isinstance(text, str):
        return None
    try:
        for content in reversed(_boxed_spans(text)):
            if content.strip():
                return content.strip()
        return None
    except Exception:  # noqa: BLE001
        return None
