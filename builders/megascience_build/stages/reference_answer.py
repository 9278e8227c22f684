"""Stage 9: the concise reference answer of each pair (paper §3.3, Fig. 26; slot `reference`,
`prompts/reference_answer.txt`).

First, with no model call, the content of the last complete `\\boxed{...}` in the answer (balanced
braces, any number of lines: replies.last_boxed). Only answers without one go to the model, whose reply
is read by parse_reference_answer (a boxed value, the `Reference Answer:` line, "final answer
is", or a one-line reply). When nothing usable comes back the row is KEPT with an empty
`reference_answer` and counted as `no_reference_answer`: the pair itself passed every quality stage,
and the released schema allows a free-form answer; the signal `reference_source` ("boxed", "model" or
"none") tells them apart. A failed generation follows `on_generation_failure`: `drop` (default, the
project rule: reason `generation_<finish_reason>`) or `keep` (empty reference answer, counted).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import pyarrow as pa

from ..engine import records
from ..engine.llm_stage import LLMStage, Outcome
from ..engine.params import param
from ..engine.stage import StageOutput
from .replies import last_boxed

_REFERENCE_LABEL = re.compile(r"reference[ \t]+answer[ \t]*[*_]*[ \t]*[:：][ \t]*[*_]*", re.I)
_FINAL_ANSWER_IS = re.compile(r"final answer is[ \t]*[:：]?", re.I)


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


class ReferenceAnswer(LLMStage):
    name = "reference_answer"
    summary = "the concise reference answer: the last \\boxed{} or asked (paper §3.3; Llama-3.3-70B-Instruct)"
    inputs = (records.ID, records.PROVENANCE, "question", "answer")
    outputs = ("reference_answer",)
    default_prompts = {"reference": "reference_answer.txt"}

    @dataclass(frozen=True)
    class Params:
        on_generation_failure: Literal["drop", "keep"] = param(
            "drop", "a failed generation drops the pair, or keeps it with an empty reference answer")

    def process(self, batch: pa.Table, ctx) -> StageOutput:
        questions = batch.column("question").to_pylist()
        answers = batch.column("answer").to_pylist()
        reference = [last_boxed(a) for a in answers]
        ask = [i for i, r in enumerate(reference) if not r]
        out = Outcome(counters={"reference_from_boxed": len(answers) - len(ask)})
        for i, r in enumerate(reference):
            out.keep(i, {"reference_source": "boxed" if r else "none"}, reference_answer=r or "")
        llm = ctx.llm()
        results = self.ask(ctx, "reference", [{"question": questions[i] or "", "answer": answers[i] or ""}
                                              for i in ask], llm=llm)
        for i, result in zip(ask, results):
            reason = self.failure(result)
            if reason:
                out.count(reason)
                if self.settings.on_generation_failure == "drop":
                    out.drop(i, reason)
                    continue
            value = None if reason else parse_reference_answer(result.text)
            if value:
                out.keep(i, {"reference_source": "model"}, reference_answer=value)
                out.count("reference_from_model")
            else:
                out.count("no_reference_answer")
        return self.finish(batch, out, self.step(ctx, llm, "reference"), {"reference_answer": pa.string()})
