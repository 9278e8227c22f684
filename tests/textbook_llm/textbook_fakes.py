"""A scripted fake of the engine's stage context for the TextbookReasoning LLM stage tests."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Callable

import pyarrow as pa

from megascience_build.backends.base import GenerationRequest, GenerationResult, SamplingParams
from megascience_build.engine import records
from megascience_build.engine.prompts import load_prompt
from megascience_build.stages._textbook_llm import PROMPT_FILES


def user_text(req: GenerationRequest) -> str:
    return req.messages[-1]["content"]


@dataclass
class FakeLLM:
    """Answers each request with reply(request) -> str | GenerationResult; records every request."""
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


class FakeCtx:
    """The slice of the engine's StageContext these stages use: llm(role), prompt(slot), sampling, seed."""

    def __init__(self, stage, llms: dict, sampling: SamplingParams | None = None, seed: int = 0):
        self.stage = stage
        self.llms = llms                       # role -> FakeLLM; None is the stage's own role
        self.sampling = sampling or SamplingParams(max_tokens=200)
        self.seed = seed

    def llm(self, role=None):
        return self.llms[role]

    def prompt(self, slot):
        files = {**PROMPT_FILES.get(self.stage.name, {}), **self.stage.prompts}
        return load_prompt(files[slot])


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
