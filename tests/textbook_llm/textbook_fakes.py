"""Stage contexts for the TextbookReasoning LLM stage tests: the engine's real context (tests/support)
with recording scripted models."""
from __future__ import annotations

import json
from dataclasses import dataclass

import pyarrow as pa

from megascience_build.backends.base import GenerationRequest, SamplingParams
from megascience_build.engine import records
from support.models import RecordingModel
from support.stage_context import stage_context


def user_text(req: GenerationRequest) -> str:
    return req.messages[-1]["content"]


@dataclass
class FakeLLM(RecordingModel):
    """A recording model named like the stage tests' models."""
    model_id: str = "fake/judge-model"
    revision: str = "rev-1"


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
