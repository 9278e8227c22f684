"""Helpers for the textbook ingest tests: file tables, stage contexts (the engine's real one, tests/support,
with a scripted classifier), pdf bytes."""
from __future__ import annotations

import io
from pathlib import Path

import pyarrow as pa

from megascience_build.backends.base import SamplingParams
from megascience_build.engine import records
from support.models import RecordingModel
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


def classify_ctx(answers) -> tuple:
    """(context, classifier): book_metadata's context whose model answers in order from `answers`, a list of
    (text, finish_reason)."""
    answers = list(answers)
    llm = RecordingModel(lambda request: answers.pop(0), "scripted/classifier", "r1")
    return stage_context(models={None: llm}, prompts={"classify": "classify_book.txt"},
                         sampling=SamplingParams(temperature=0.0, max_tokens=32)), llm


def no_model_ctx():
    """A context with no model: a stage that asks for one fails (StageError naming the stage)."""
    return stage_context(prompts={"classify": "classify_book.txt"})


def pdf_bytes(writer) -> bytes:
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()
