"""The request cache: round trip, only complete answers, corruption detected and recomputed, concurrent writers."""
from __future__ import annotations

import multiprocessing
import sqlite3

from dataclasses import replace

from megascience_build.backends.base import GenerationRequest, GenerationResult, SamplingParams
from megascience_build.backends.identity import ModelIdentity, make_settings
from megascience_build.engine.cache import RequestCache
from megascience_build.engine.context import CachedGenerator, ModelUsage


class CountingBackend:
    model_id, revision = "m", "r"

    def __init__(self):
        self.sent = []

    def generate(self, requests):
        self.sent.extend(requests)
        return [GenerationResult(text=f"answer to {r.messages[-1]['content']}", finish_reason="stop",
                                 prompt_tokens=3, completion_tokens=4) for r in requests]


def request(text: str, **sampling) -> GenerationRequest:
    return GenerationRequest(({"role": "user", "content": text},), SamplingParams(**sampling))

M = ModelIdentity("scripted", "m", "r")


def generator(cache, backend, usage=None, cache_only=False, batch_size=2):
    return CachedGenerator(stage_label="s", role="gen", identity=M, batch_size=batch_size, cache=cache,
                           backend_factory=lambda: backend, usage=usage or ModelUsage(), cache_only=cache_only)


def test_round_trip_and_only_ok_results_are_stored(tmp_path):
    cache = RequestCache(tmp_path / "c.sqlite")
    ok = GenerationResult("yes", "stop", 1, 2)
    stored = cache.put_many({"k1": ok, "k2": GenerationResult("", "length", 1, 9),
                             "k3": GenerationResult("", "error", error="boom")}, model="m", revision="r")
    assert stored == 1 and cache.get_many(["k1", "k2", "k3"]) == {"k1": ok}
    # the failures are kept only for --cache-only replays; a later answer replaces a failure
    assert {k: r.finish_reason for k, r in cache.get_many(["k1", "k2", "k3"], failures=True).items()} == \
        {"k1": "stop", "k2": "length", "k3": "error"}
    cache.put_many({"k2": ok}, model="m", revision="r")
    assert cache.get_many(["k2"], failures=True) == {"k2": ok}
    assert cache.conn.execute("SELECT key FROM failures").fetchall() == [("k3",)]
    cache.close()
    assert RequestCache(tmp_path / "c.sqlite").get_many(["k1"]) == {"k1": ok}   # durable across handles


def test_key_depends_on_every_part_of_the_model_identity_sampling_and_prompt():
    base = request("q").cache_key(M)
    assert base == request("q").cache_key(ModelIdentity("other-backend", "m", "r"))   # same weights, same key
    variants = [replace(M, model="m2"), replace(M, revision="r2"), replace(M, dtype="bfloat16"),
                replace(M, quantization="gguf-dequantized"), replace(M, tokenizer="t"),
                replace(M, settings=make_settings(chat_template="x"))]
    keys = {base, *(request("q").cache_key(v) for v in variants), request("q", temperature=0.7).cache_key(M),
            request("q2").cache_key(M), GenerationRequest(request("q").messages, sample_index=1).cache_key(M)}
    assert len(keys) == 10


def test_generator_sends_only_misses_once_and_counts(tmp_path):
    cache, backend, usage = RequestCache(tmp_path / "c.sqlite"), CountingBackend(), ModelUsage()
    gen = generator(cache, backend, usage)
    first = gen.generate([request("a"), request("b"), request("a"), request("c")])
    assert [r.text for r in first] == ["answer to a", "answer to b", "answer to a", "answer to c"]
    assert [r.messages[-1]["content"] for r in backend.sent] == ["a", "b", "c"]     # duplicate sent once
    gen.generate([request("a"), request("d")])
    assert [r.messages[-1]["content"] for r in backend.sent] == ["a", "b", "c", "d"]
    assert (usage.requests, usage.cache_hits, usage.cache_misses) == (6, 1, 5)
    assert (usage.tokens_in, usage.backend_tokens_in) == (18, 12)


def test_corrupted_entry_is_reported_and_recomputed(tmp_path, caplog):
    path = tmp_path / "c.sqlite"
    cache, backend = RequestCache(path), CountingBackend()
    generator(cache, backend).generate([request("a"), request("b")])
    key_a = request("a").cache_key(M)
    with sqlite3.connect(path) as db:               # flip the stored answer behind the cache's back
        db.execute("UPDATE responses SET result = replace(result, 'answer', 'ANSWER') WHERE key = ?", (key_a,))
    with sqlite3.connect(path) as db:
        db.execute("UPDATE responses SET result = '{not json', checksum = ? WHERE key = ?",
                   (__import__("hashlib").sha256(b"{not json").hexdigest(), request("b").cache_key(M)))
    usage, backend2 = ModelUsage(), CountingBackend()
    results = generator(RequestCache(path), backend2, usage).generate([request("a"), request("b")])
    assert [r.text for r in results] == ["answer to a", "answer to b"]
    assert len(backend2.sent) == 2 and usage.cache_corrupted == 2
    assert "corrupted entry" in caplog.text and key_a in caplog.text
    # recomputed entries were written back: a third pass is all hits
    usage3 = ModelUsage()
    generator(RequestCache(path), CountingBackend(), usage3).generate([request("a"), request("b")])
    assert (usage3.cache_hits, usage3.cache_corrupted) == (2, 0)


def _writer(path: str, prefix: str, n: int) -> None:
    cache = RequestCache(path)
    for i in range(n):
        cache.put_many({f"{prefix}{i}": GenerationResult(f"{prefix}{i}", "stop")}, model="m", revision="r")


def test_concurrent_writers_lose_nothing(tmp_path):
    path = str(tmp_path / "c.sqlite")
    RequestCache(path).conn   # create the file
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, p, 150)) for p in ("x", "y", "z")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    assert len(RequestCache(path)) == 450
