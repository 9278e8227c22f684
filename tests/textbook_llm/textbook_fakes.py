"""Stage contexts for the TextbookReasoning LLM stage tests: the engine's real context (tests/support)
with recording scripted models."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Callable

import pyarrow as pa

from megascience_build.backends.base import GenerationRequest, GenerationResult, SamplingParams
from megascience_build.engine import records
from support.stage_context import stage_context


def user_text(req: GenerationRequest) -> str:
    return req.messages[-1]["content"]


@dataclass
class FakeLLM:
    """A backend answering each request with reply(request) -> str | GenerationResult; records every request
    that reaches it (the cache in front of it answers repeated prompts)."""
    reply: Callable[[GenerationRequest], "str | GenerationResult"]
    model_id: str = "fake/judge-model"
    revision: str = "rev-1"
    calls: list[GenerationRequest] = field(default_factory=list)

    def generate(self, requests):
        self.calls.extend(requests)
        out = []
        for req in requests:
            r = self.reply(req)
            out.append(r if isinstance(r, GenerationResult) else GenerationResult(text=r, finish_reason="stop"))
        return out


def FakeCtx(stage, llms: dict, sampling: SamplingParams | None = None, seed: int = 0):  # noqa: N802 (the tests' name)
    """The engine's StageContext for `stage`: llms maps role -> FakeLLM (None: the stage's own role)."""
    return stage_context(stage, models=llms, sampling=sampling or SamplingParams(max_tokens=200), seed=seed)


def provenance(**origin) -> str:
    return records.new_provenance({"kind": "book", **origin})


def steps_of(table: pa.Table) -> list[list[dict]]:
    return [json.loads(p)["steps"] for p in table.column(records.PROVENANCE).to_pylist()]


def signals_of(table: pa.Table) -> list[dict]:
    return [json.loads(p)["signals"] for p in table.column(records.PROVENANCE).to_pylist()]


def qa_table(rows: list[dict]) -> pa.Table:
    """Rows with id, provenance, question, answer, subject (+ any extra keys)."""
    full = [{records.ID: records.content_id("row", i), records.PROVENANCE: provenance(book_id="b1"), **r}
            for i, r in enumerate(rows)]
    return pa.Table.from_pylist(full)
