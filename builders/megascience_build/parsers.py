"""Parsers for the free-text replies of the TextbookReasoning LLM stages.

Every function is pure and total: whatever the model wrote, it returns a value or None (None = the
reply could not be read), and never raises. The stages turn None into a counted drop reason.

Formats the prompts in `prompts/` ask for:
  extraction      blocks `Question: ...` / `Answer: ...`, or the single line `NO_QA`
  refinement      free reasoning, then `Refined Question: ...` and `Refined Answer: ...`, or `UNUSABLE`
  judgements      free analysis, then a last line `Decision: YES` or `Decision: NO`
  reference       `Reference Answer: ...` (or a final `\\boxed{...}`)
"""
from __future__ import annotations

import re
from dataclasses import dataclass

NO_QA = "NO_QA"
UNUSABLE = "UNUSABLE"

# A label at the start of a line, with the decorations small models add: markdown bold/italics,
# headings, list bullets, numbering ("Question 2:", "2. Question:", "Q2:"), full-width colon.
_QA_LABEL = re.compile(
    r"^[ \t>#*_\-]*(?:\d+[.)][ \t]*)?[*_]*"
    r"(?P<kind>question|answer|solution|the answer is|q|a)"
    r"(?:[ \t]*\#?[ \t]*\d+)?[ \t]*[*_]*[ \t]*[:：][ \t]*[*_]*[ \t]*",
    re.I | re.M)
_INLINE_ANSWER = re.compile(r"[ \t]+[*_]*answer[*_]*[ \t]*[:：][*_]*[ \t]*", re.I)
_NUMBERED_ITEM = re.compile(r"^[ \t]*\d+[.)][ \t]+(?P<q>\S[^\n]*?)[ \t]+[*_]*answer[*_]*[ \t]*[:：][*_]*[ \t]*(?P<a>\S[^\n]*)$",
                            re.I | re.M)
# The "no pair here" marker, alone on its line, possibly bracketed or bold ("[NO QA]", "**NO_QA**").
_NO_QA_LINE = re.compile(r"^[ \t*_\[(`\"']*NO[ _\-]?QA[ \t*_\])`\"'.]*$", re.I | re.M)
_UNUSABLE_LINE = re.compile(r"^[ \t*_\[(`\"'#]*UNUSABLE\b[^\n]*$", re.M)
_REFINED_LABEL = re.compile(
    r"^[ \t>#*_\-]*refined[ \t]+(?P<kind>question|answer)[ \t]*[*_]*[ \t]*[:：][ \t]*[*_]*[ \t]*", re.I | re.M)
_DECISION = re.compile(
    r"decision[ \t]*[*_]*[ \t]*[:：\-][ \t]*[*_\[\(\"'`]*[ \t]*(?P<verdict>yes|no)\b", re.I)
_BARE_VERDICT = re.compile(r"\b(YES|NO)\b")
_WHOLE_REPLY_VERDICT = re.compile(r"^\W*(yes|no)\W*$", re.I)
_REFERENCE_LABEL = re.compile(r"reference[ \t]+answer[ \t]*[*_]*[ \t]*[:：][ \t]*[*_]*", re.I)
_FINAL_ANSWER_IS = re.compile(r"final answer is[ \t]*[:：]?", re.I)
_BOXED = re.compile(r"\\(?:boxed|fbox)[ \t]*\{")
_EMPTY_BOX = re.compile(r"\$?\\boxed[ \t]*\{[ \t]*\}\$?")


def _clean(text: str) -> str:
    """Strip surrounding whitespace, bold markers left around the label, and trailing rules (---)."""
    text = re.sub(r"(?:\n[ \t]*(?:-{3,}|\*{3,}|_{3,})[ \t]*)+\s*$", "", text.strip())
    return text.strip().strip("*").strip()


def parse_qa_pairs(text: object) -> list[tuple[str, str]] | None:
    """Question/answer pairs from an extraction reply.

    Returns the pairs in order; [] when the model said NO_QA and gave no pair; None when the reply
    has neither a complete pair nor the NO_QA marker (unparseable). A question with no answer
    before the next question is skipped, never merged into its neighbour; a pair repeated verbatim
    (small models loop) is kept once. Labels count only at the start of a line, so a "question:"
    inside a sentence does not cut an answer short; the one exception is a one-line
    "Question: ... Answer: ..." with no answer label after it. With no labelled pair at all, a
    numbered exercise line "3. <question> Answer: <answer>" counts as a pair.
    """
    if not isinstance(text, str):
        return None
    try:
        labels = list(_QA_LABEL.finditer(text))
        pairs: list[tuple[str, str]] = []

        def add(q: str, a: str) -> None:
            q, a = _clean(_NO_QA_LINE.sub("", q)), _clean(_NO_QA_LINE.sub("", a))
            if q and a and (q, a) not in pairs:
                pairs.append((q, a))

        question: str | None = None
        for i, m in enumerate(labels):
            end = labels[i + 1].start() if i + 1 < len(labels) else len(text)
            body = text[m.end():end]
            kind = m.group("kind").lower()
            next_is_answer = i + 1 < len(labels) and labels[i + 1].group("kind").lower() not in ("question", "q")
            if kind in ("question", "q"):
                inline = _INLINE_ANSWER.search(body)
                if inline and not next_is_answer:          # "Question: ... Answer: ..." on one line
                    add(body[:inline.start()], body[inline.end():])
                    question = None
                else:
                    question = body
            elif question is not None:
                add(question, body)
                question = None
        if not pairs:                                      # a numbered exercise list: "3. ... Answer: ..."
            for m in _NUMBERED_ITEM.finditer(text):
                add(m.group("q"), m.group("a"))
        if pairs:
            return pairs
        return [] if _NO_QA_LINE.search(text) else None
    except Exception:  # noqa: BLE001 - a parser of model output must never raise
        return None


@dataclass(frozen=True)
class Refinement:
    question: str
    answer: str


def parse_refined(text: object) -> Refinement | str | None:
    """A refinement reply: Refinement(question, answer), the string UNUSABLE when the model declared
    the pair unusable (the marker on its own line after any refined fields), or None if unreadable.

    The last `Refined Question:` label wins (models often draft first); the answer runs from the
    `Refined Answer:` label after it to the end. Empty `\\boxed{}` left from the instructions are removed.
    """
    if not isinstance(text, str):
        return None
    try:
        labels = list(_REFINED_LABEL.finditer(text))
        q_labels = [m for m in labels if m.group("kind").lower() == "question"]
        unusable = [m.start() for m in _UNUSABLE_LINE.finditer(text)]
        last_q = q_labels[-1] if q_labels else None
        if unusable and (last_q is None or unusable[-1] > last_q.start()):
            return UNUSABLE
        if last_q is None:
            return None
        a_labels = [m for m in labels if m.group("kind").lower() == "answer" and m.start() > last_q.start()]
        if not a_labels:
            return None
        a = a_labels[0]
        question = _clean(text[last_q.end():a.start()])
        answer = _clean(_EMPTY_BOX.sub("", text[a.end():]))
        if not question or not answer:
            return None
        return Refinement(question, answer)
    except Exception:  # noqa: BLE001
        return None


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


_SOLUTION_LABEL = re.compile(
    r"^[ \t#*_]*(?:rewritten[ \t]+answer|refined[ \t]+answer|answer|solution)[ \t]*[*_]*[ \t]*[:：][ \t]*[*_]*[ \t]*", re.I)


def parse_solution(text: object) -> str | None:
    """A free-form solution (supplemented or distilled answer): the reply without a leading
    `Answer:`/`Solution:` label or empty \\boxed{}; None when nothing is left."""
    if not isinstance(text, str):
        return None
    try:
        body = _clean(_EMPTY_BOX.sub("", _SOLUTION_LABEL.sub("", text.strip(), count=1)))
        return body or None
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


def parse_reference_answer(text: object, max_chars: int = 300) -> str | None:
    """The concise final answer from a reference-answer reply.

    In order: the last \\boxed{...}; the first non-empty line after the last `Reference Answer:`;
    the rest of the line after the last "final answer is"; a reply that is one short line. Anything
    else (a long free-form reply) is None rather than a paragraph posing as a reference answer.
    """
    if not isinstance(text, str):
        return None
    try:
        boxed = last_boxed(text)
        if boxed:
            return boxed
        for pattern in (_REFERENCE_LABEL, _FINAL_ANSWER_IS):
            hits = list(pattern.finditer(text))
            if hits:
                rest = text[hits[-1].end():]
                line = next((ln for ln in rest.splitlines() if ln.strip(" \t*_")), "")
                value = _strip_answer(line)
                if value and len(value) <= max_chars:
                    return value
        lines = [ln for ln in text.splitlines() if ln.strip()]
        if len(lines) == 1:
            value = _strip_answer(lines[0])
            if value and len(value) <= max_chars:
                return value
        return None
    except Exception:  # noqa: BLE001
        return None


def _strip_answer(value: str) -> str:
    value = value.strip().strip("*_` \t")
    value = re.sub(r"\$([^$]+)\$", r"\1", value).strip()
    return value[:-1].strip() if value.endswith(".") and not value.endswith("..") else value
