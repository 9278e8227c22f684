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

from dataclasses import dataclass
from typing import Literal

import pyarrow as pa

from ..engine import records
from ..engine.llm_stage import LLMStage, Outcome
from ..engine.params import param
from ..engine.stage import StageOutput
from .replies import parse_decision


class FilterQA(LLMStage):
    name = "filter_qa"
    summary = "reject contradictory, incomplete or context-dependent pairs (paper §2.4; Llama-3.3-70B-Instruct)"
    inputs = (records.ID, records.PROVENANCE, "question", "answer")
    default_prompts = {"filter": "filter_qa.txt"}

    @dataclass(frozen=True)
    class Params:
        on_unparseable: Literal["drop", "keep"] = param(
            "drop", "a reply without a readable decision drops the pair, or keeps it (demonstration models only)")

    def process(self, batch: pa.Table, ctx) -> StageOutput:
        llm = ctx.llm()
        pairs = zip(batch.column("question").to_pylist(), batch.column("answer").to_pylist())
        results = self.ask(ctx, "filter", [{"question": q or "", "answer": a or ""} for q, a in pairs], llm=llm)
        out = Outcome()
        accepted = 0
        for i, result in enumerate(results):
            reason = self.failure(result)
            if reason is None:
                verdict = parse_decision(result.text)
                reason = None if verdict else "filter_rejected" if verdict is False else "unparseable_filter_verdict"
            if reason == "unparseable_filter_verdict" and self.settings.on_unparseable == "keep":
                out.count(reason)
                out.keep(i, {"filter_verdict": "unparseable"})
            elif reason:
                out.drop(i, reason, counter=reason)
            else:
                accepted += 1
                out.keep(i, {"filter_verdict": "yes"})
        out.counters["filter_accepted"] = accepted
        return self.finish(batch, out, self.step(ctx, llm, "filter"))
