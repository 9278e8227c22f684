"""Stage 7: filter refined pairs (paper §2.4, Fig. 24; slot `filter`, `prompts/filter_qa.txt`).

The model rejects a pair whose answer contradicts itself, that relies on material the reader does not
have (numbered equations, figures, tables, documents not included), or whose answer is missing or
invalid. Its reply ends with `Decision: YES` (keep) or `Decision: NO`.

Drops: `filter_rejected` (NO), `unparseable_filter_verdict` (no readable decision: dropped, as the
authors' keep-only-YES rule does, because a pair nobody vouched for should not enter the release),
`generation_<finish_reason>`. Kept rows get the signal `filter_verdict`.

`on_unparseable: keep` keeps pairs whose verdict cannot be read (still counted, signal
`filter_verdict: "unparseable"`): for small demonstration models that never write a `Decision:` line
(SmolLM2-135M in tests/textbook_llm/fixtures), never for a real build.
"""
from __future__ import annotations

import pyarrow as pa

from ..engine import records
from ..engine.stage import Stage, StageError, StageOutput, register
from ..parsers import parse_decision
from ._textbook_llm import bump, failure_reason, model_ref, prompt_ref, request


@register
class FilterQA(Stage):
    name = "filter_qa"
    kind = "map"
    inputs = (records.ID, records.PROVENANCE, "question", "answer")
    outputs = ()
    prompt_slots = ("filter",)
    defaults = {"on_unparseable": "drop"}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.params["on_unparseable"] not in ("drop", "keep"):
            raise StageError(f"stage {self.label!r}: parameter 'on_unparseable' must be 'drop' or 'keep', "
                             f"got {self.params['on_unparseable']!r}")

    def process(self, batch: pa.Table, ctx) -> StageOutput:
        llm = ctx.llm()
        pairs = zip(batch.column("question").to_pylist(), batch.column("answer").to_pylist())
        results = llm.generate([request(ctx, "filter", question=q or "", answer=a or "") for q, a in pairs]) \
            if len(batch) else []
        counters: dict[str, int] = {}
        dropped: list[tuple[int, str]] = []
        keep: list[int] = []
        verdicts: list[str] = []
        for i, result in enumerate(results):
            reason = failure_reason(result)
            if reason is None:
                verdict = parse_decision(result.text)
                reason = None if verdict else "filter_rejected" if verdict is False else "unparseable_filter_verdict"
            if reason:
                bump(counters, reason)
                if reason == "unparseable_filter_verdict" and self.params["on_unparseable"] == "keep":
                    keep.append(i)
                    verdicts.append("unparseable")
                    continue
                dropped.append((i, reason))
            else:
                keep.append(i)
                verdicts.append("yes")
        counters["filter_accepted"] = verdicts.count("yes")
        kept = batch.take(pa.array(keep, pa.int64()))
        if keep:
            kept = records.add_step(kept, {"stage": self.label, **model_ref(llm), **prompt_ref(ctx, "filter")},
                                    [{"filter_verdict": v} for v in verdicts])
        return StageOutput(kept=kept, dropped=dropped, counters=counters)
