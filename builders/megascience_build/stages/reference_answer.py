"""Stage 9: the concise reference answer of each pair (paper §3.3, Fig. 26; slot `reference`,
`prompts/reference_answer.txt`).

First, with no model call, the content of the last complete `\\boxed{...}` in the answer (balanced
braces, any number of lines: parsers.last_boxed). Only answers without one go to the model, whose reply
is read by parsers.parse_reference_answer (a boxed value, the `Reference Answer:` line, "final answer
is", or a one-line reply). When nothing usable comes back the row is KEPT with an empty
`reference_answer` and counted as `no_reference_answer`: the pair itself passed every quality stage,
and the released schema allows a free-form answer; the signal `reference_source` ("boxed", "model" or
"none") tells them apart. A failed generation follows `on_generation_failure`: `drop` (default, the
project rule: reason `generation_<finish_reason>`) or `keep` (empty reference answer, counted).
"""
from __future__ import annotations

import pyarrow as pa

from ..engine import records
from ..engine.stage import Stage, StageError, StageOutput, register
from ..parsers import last_boxed, parse_reference_answer
from ._textbook_llm import bump, failure_reason, model_ref, prompt_ref, request


@register
class ReferenceAnswer(Stage):
    name = "reference_answer"
    kind = "map"
    inputs = (records.ID, records.PROVENANCE, "question", "answer")
    outputs = ("reference_answer",)
    prompt_slots = ("reference",)
    defaults = {"on_generation_failure": "drop"}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.params["on_generation_failure"] not in ("drop", "keep"):
            raise StageError(f"stage {self.label!r}: parameter 'on_generation_failure' must be 'drop' or 'keep', "
                             f"got {self.params['on_generation_failure']!r}")

    def process(self, batch: pa.Table, ctx) -> StageOutput:
        questions = batch.column("question").to_pylist()
        answers = batch.column("answer").to_pylist()
        reference = [last_boxed(a) for a in answers]
        source = ["boxed" if r else "none" for r in reference]
        ask = [i for i, r in enumerate(reference) if not r]
        counters: dict[str, int] = {"reference_from_boxed": len(answers) - len(ask)}
        dropped: list[tuple[int, str]] = []
        llm = ctx.llm()
        results = llm.generate([request(ctx, "reference", question=questions[i] or "", answer=answers[i] or "")
                                for i in ask]) if ask else []
        for i, result in zip(ask, results):
            reason = failure_reason(result)
            if reason:
                bump(counters, reason)
                if self.params["on_generation_failure"] == "drop":
                    dropped.append((i, reason))
                    continue
            value = None if reason else parse_reference_answer(result.text)
            if value:
                reference[i], source[i] = value, "model"
                bump(counters, "reference_from_model")
            else:
                bump(counters, "no_reference_answer")

        gone = {i for i, _ in dropped}
        keep = [i for i in range(len(batch)) if i not in gone]
        kept = batch.take(pa.array(keep, pa.int64()))
        kept = records.set_column(kept, "reference_answer", [reference[i] or "" for i in keep], pa.string())
        if keep:
            kept = records.add_step(kept, {"stage": self.label, **model_ref(llm), **prompt_ref(ctx, "reference")},
                                    [{"reference_source": source[i]} for i in keep])
        return StageOutput(kept=kept, dropped=dropped, counters=counters)
