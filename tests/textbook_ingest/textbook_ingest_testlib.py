"""Helpers for the textbook ingest tests: file tables, stage contexts (the engine's real one, tests/support,
with a scripted classifier), pdf bytes."""
from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from megascience_build.backends.base import GenerationResult, SamplingParams
from megascience_build.engine import records
from support.stage_context import stage_context

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "builders" / "megascience_build" / "corpus"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def file_table(paths) -> pa.Table:
    paths = [str(p) for p in paths]
    return pa.table({records.ID: [records.content_id("file", p) for p in paths],
                     records.PROVENANCE: [records.new_provenance({"kind": "file", "file": Path(p).name})
                                          for p in paths],
                     "path": paths})


@dataclass
class ScriptedLLM:
    """Answers requests in order from a list of (text, finish_reason); records what it was asked."""
    answers: list
    model_id: str = "scripted/classifier"
    revision: str = "r1"
    requests: list = field(default_factory=list)

    def generate(self, requests):
        self.requests.extend(requests)
        out = []
        for _ in requests:
            text, finish = self.answers.pop(0)
            out.append(GenerationResult(text=text, finish_reason=finish))
        return out


def classify_ctx(answers) -> tuple:
    """(context, classifier): book_metadata's context whose model answers in order from `answers`."""
    llm = ScriptedLLM(list(answers))
    return stage_context(models={None: llm}, prompts={"classify": "classify_book.txt"},
                         sampling=SamplingParams(temperature=0.0, max_tokens=32)), llm


def no_model_ctx():
    """A context with no model: a stage that asks for one fails (StageError naming the stage)."""
    return stage_context(prompts={"classify": "classify_book.txt"})


def pdf_bytes(writer) -> bytes:
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()
