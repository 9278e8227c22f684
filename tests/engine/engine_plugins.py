"""Stages and a backend used only by the engine tests (a plugin: pipelines name this module in `plugins:`, and
the engine takes the stages listed in `STAGES`)."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass

import pyarrow as pa

from megascience_build.backends.base import GenerationRequest, GenerationResult
from megascience_build.backends.identity import identity_of
from megascience_build.engine import records
from megascience_build.engine.params import param
from megascience_build.engine.stage import Stage, StageOutput


class TagLength(Stage):
    """CPU map: add text_len; drop empty texts."""
    name = "test_tag_length"
    inputs = ("id", "provenance", "text")
    outputs = ("text_len",)

    @dataclass(frozen=True)
    class Params:
        min_len: int = param(1, "shorter texts are dropped as too_short")

    def process(self, batch, ctx):
        texts = batch.column("text").to_pylist()
        marker = os.environ.get("ENGINE_TEST_FAIL_ON")     # lets a test make one shard fail
        if marker and any(marker in t for t in texts):
            raise RuntimeError(f"test failure on a text containing {marker!r}")
        keep = [i for i, t in enumerate(texts) if len(t) >= self.settings.min_len]
        dropped = [(i, "too_short") for i, t in enumerate(texts) if len(t) < self.settings.min_len]
        kept = batch.take(pa.array(keep, pa.int64()))
        kept = records.set_column(kept, "text_len", [len(t) for t in kept.column("text").to_pylist()], pa.int64())
        return StageOutput(kept=records.add_step(kept, {"stage": self.label}), dropped=dropped)


class Answer(Stage):
    """Model map: ask the llm role about each text; drop failed generations."""
    name = "test_answer"
    inputs = ("id", "provenance", "text")
    outputs = ("answer",)
    prompt_slots = ("ask",)

    def process(self, batch, ctx):
        tmpl = ctx.prompt("ask")
        gen = ctx.llm()
        requests = [GenerationRequest(tmpl.render(text=t), ctx.sampling) for t in batch.column("text").to_pylist()]
        results = gen.generate(requests)
        keep, answers, dropped = [], [], []
        for i, res in enumerate(results):
            if res.ok:
                keep.append(i)
                answers.append(res.text)
            else:
                dropped.append((i, f"generation_{res.finish_reason}"))
        kept = records.set_column(batch.take(pa.array(keep, pa.int64())), "answer", answers, pa.string())
        kept = records.add_step(kept, {"stage": self.label, "model": gen.model_id, "revision": gen.revision,
                                       "prompt": tmpl.name, "prompt_sha256": tmpl.sha256})
        return StageOutput(kept=kept, dropped=dropped, counters={"answered": len(keep)})


class DedupAnswers(Stage):
    """Global: keep the first row of each answer."""
    name = "test_dedup"
    kind = "global"
    inputs = ("id", "provenance", "answer")

    def process(self, table, ctx):
        seen, keep, dropped = set(), [], []
        for i, a in enumerate(table.column("answer").to_pylist()):
            (dropped.append((i, "duplicate")) if a in seen else keep.append(i))
            seen.add(a)
        return StageOutput(kept=table.take(pa.array(keep, pa.int64())), dropped=dropped)


class Upper(Stage):
    """CPU map after the barrier."""
    name = "test_upper"
    inputs = ("id", "provenance", "answer")
    outputs = ("answer_upper",)

    def process(self, batch, ctx):
        return StageOutput(kept=records.set_column(batch, "answer_upper",
                                                  [a.upper() for a in batch.column("answer").to_pylist()], pa.string()))


class FileSize(Stage):
    """CPU map over a files input."""
    name = "test_file_size"
    inputs = ("id", "provenance", "path")
    outputs = ("size",)

    def process(self, batch, ctx):
        return StageOutput(kept=records.set_column(batch, "size", [os.path.getsize(p) for p in batch.column("path").to_pylist()],
                                                  pa.int64()))


class FakeBackend:
    """Answers with the reversed user message. `delay` seconds per request; each request sent is appended
    (its cache key) to `calls_file`; a message containing LONG finishes with "length"; one containing the
    `fail_on` text makes the call raise (before it is logged)."""

    def __init__(self, spec):
        self.model_id = spec["model"]
        self.revision = spec.get("revision", "main")
        options = spec.get("options") or {}
        self.delay = float(options.get("delay", 0))
        self.calls_file = options.get("calls_file")
        self.fail_on = options.get("fail_on")

    def generate(self, requests):
        if self.fail_on and any(self.fail_on in req.messages[-1]["content"] for req in requests):
            raise RuntimeError(f"fake backend failure on {self.fail_on!r}")
        out = []
        for req in requests:
            text = req.messages[-1]["content"]
            if self.delay:
                time.sleep(self.delay)
            if self.calls_file:
                with open(self.calls_file, "a") as fh:
                    fh.write(req.cache_key(identity_of(self, "engine_plugins:FakeBackend")) + "\n")
            reason = "length" if "LONG" in text else "stop"
            out.append(GenerationResult(text=text[::-1], finish_reason=reason, prompt_tokens=len(text.split()),
                                        completion_tokens=len(text.split())))
        return out

    def close(self):
        pass


class EmbedNorm(Stage):
    """Model map with an embedder: the first coordinate of each text's embedding."""
    name = "test_embed"
    inputs = ("id", "provenance", "text")
    outputs = ("emb0",)

    def process(self, batch, ctx):
        vectors = ctx.embedder().encode(batch.column("text").to_pylist())
        return StageOutput(kept=records.set_column(batch, "emb0", [float(v[0]) for v in vectors], pa.float64()))


class FakeEmbedder:
    """Deterministic unit vectors from text length; counts how many embedders were built in `built_file`."""

    def __init__(self, spec):
        import numpy as np
        self.np = np
        self.model_id = spec["model"]
        built = (spec.get("options") or {}).get("built_file")
        if built:
            with open(built, "a") as fh:
                fh.write(f"{os.getpid()}\n")

    def encode(self, texts):
        v = self.np.array([[len(t) + 1.0, 1.0] for t in texts], dtype=self.np.float32)
        return v / self.np.linalg.norm(v, axis=1, keepdims=True)


def reverse_responder(req):
    """The FakeBackend's answers for the scripted backend (which streams): reversed text, LONG -> length."""
    text = req.messages[-1]["content"]
    return text[::-1], ("length" if "LONG" in text else "stop")


STAGES = [TagLength, Answer, DedupAnswers, Upper, FileSize, EmbedNorm]
