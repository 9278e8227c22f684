"""A scripted model for the end-to-end tests: it answers questions of the synthetic benchmarks that
eval_testlib writes, correctly exactly when the question number is not a multiple of 4, and with no
answer at all when it is 10 modulo 20. So over 40 questions: 28 right, 10 wrong, 2 without an answer."""
from __future__ import annotations

import re

from megascience_build.backends.scripted import last_user_message


def verdict(i: int) -> str:
    if i % 20 == 10:
        return "none"
    return "wrong" if i % 4 == 0 else "right"


def answer(request) -> str:
    text = last_user_message(request)
    m = re.search(r"Item (\d+): what is (\d+) plus (\d+)\?", text)
    if not m:
        return "I cannot read this question."
    i, a, b = (int(g) for g in m.groups())
    v = verdict(i)
    if v == "none":
        return "Let me think about it. Adding numbers is fun, but I will stop here."
    if "Options:" in text:                                   # multiple choice: option A is a+b (see eval_testlib)
        letter = "A" if v == "right" else "B"
        return f"Adding {a} and {b}.\nAnswer: {letter}"
    value = a + b if v == "right" else a + b + 1
    return f"First, {a} + {b} = {value}.\nThe answer is \\boxed{{{value}}}."
