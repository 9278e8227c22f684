"""Helpers for the textbook ingest tests: file tables, a tiny fake stage context (prompt loading through
the real engine.prompts, a scripted LLM), pdf bytes. (A module with a unique name: every test folder
has its own conftest.py, so `from conftest import` would be ambiguous in a whole-suite run.)"""
from __future__ import annotations

import io
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT / "builders") not in sys.path:
    sys.path.insert(0, str(ROOT / "builders"))

from megascience_build.backends.base import GenerationResult, SamplingParams  # noqa: E402
from megascience_build.engine import records  # noqa: E402
from megascience_build.engine.prompts import load_prompt  # noqa: E402

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


class FakeCtx:
    def __init__(self, answers=None, prompts=None):
        self._llm = ScriptedLLM(list(answers or []))
        self._prompts = {"classify": "classify_book.txt", **(prompts or {})}
        self.sampling = SamplingParams(temperature=0.0, max_tokens=32)
        self.seed = 0

    def llm(self, role=None):
        return self._llm

    def prompt(self, slot):
        return load_prompt(self._prompts[slot])

    def embedder(self, role=None):
        raise AssertionError("these stages use no embedder")


class NoModelCtx(FakeCtx):
    def llm(self, role=None):
        raise AssertionError("the model must not be called")


def pdf_bytes(writer) -> bytes:
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()
