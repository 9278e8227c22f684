"""The static generation path (static_generation.py, generation_paths.py): bucket planning, path choice,
and, run eagerly on CPU, the same results as the plain path on the real SmolLM2 (greedy text, stop strings,
EOS, max_tokens, seeded samples, slot reuse and compaction; a tiny random model's near-uniform logits flip
between batch shapes even on the plain path, so it only checks the out-of-memory rerun)."""
from __future__ import annotations

import weakref
from types import SimpleNamespace

import pytest

from megascience_build.backends import make_backend
from megascience_build.backends.base import GenerationRequest, SamplingParams
from megascience_build.backends.generation_paths import StaticPath
from megascience_build.backends.static_generation import (
    StaticEngine, batch_buckets, bucket_for, length_buckets, resolve_path, round_length, slot_count,
    unsupported_reason)


def chat(text: str, sample_index: int = 0, **sampling) -> GenerationRequest:
    return GenerationRequest(({"role": "user", "content": text},), SamplingParams(**sampling), sample_index)


def run_static(backend, requests):
    path = StaticPath(backend, graphs=False)
    prompts = {i: backend.encode_prompt(r.messages) for i, r in enumerate(requests)}
    out = path.generate(requests, prompts)
    return [out[i] for i in range(len(requests))], path


def as_tuples(results):
    return [(r.text, r.finish_reason, r.completion_tokens, r.prompt_tokens) for r in results]


# -- buckets and choice (pure) ------------------------------------------------------------------------

def test_buckets_cover_every_size_with_few_shapes():
    assert batch_buckets(1) == [1] and batch_buckets(128) == [1, 2, 4, 8, 16, 32, 64, 128]
    assert batch_buckets(48) == [1, 2, 4, 8, 16, 32, 48]
    assert length_buckets(4096) == [128, 256, 512, 1024, 1536, 2048, 2560, 3072, 3584, 4096]
    assert length_buckets(100) == [128] and length_buckets(700) == [128, 256, 512, 768]
    assert round_length(1) == 128 and round_length(129) == 256
    assert [bucket_for([1, 2, 4], n) for n in (1, 2, 3, 4)] == [1, 2, 4, 4]
    with pytest.raises(ValueError):
        bucket_for([1, 2, 4], 5)
    with pytest.raises(ValueError):
        batch_buckets(0)
    # slots x cache length within the token budget, never below one slot
    assert slot_count(128, 128 * 4096, 4000) == 128 and slot_count(128, 262144, 4000) == 64
    assert slot_count(16, 100, 4000) == 1


def fake_model(**config):
    return SimpleNamespace(config=SimpleNamespace(**config))


def test_path_choice_and_option_check():
    llama = fake_model(model_type="llama")
    assert resolve_path("auto", "cuda", llama) == "static" and resolve_path("auto", "cuda:1", llama) == "static"
    assert resolve_path("auto", "cpu", llama) == "plain"  # measured faster only on CUDA
    assert resolve_path("static", "cpu", llama) == "static" and resolve_path("plain", "cuda", llama) == "plain"
    sliding = fake_model(model_type="mistral", use_sliding_window=True, sliding_window=4096)
    other = fake_model(model_type="gpt2")
    mixed = fake_model(model_type="qwen2", layer_types=["full_attention", "sliding_attention"])
    for model in (sliding, other, mixed):
        assert unsupported_reason(model) and resolve_path("auto", "cuda", model) == "plain"
        with pytest.raises(ValueError, match="generation_path static cannot run this model"):
            resolve_path("static", "cuda", model)
    assert unsupported_reason(fake_model(model_type="qwen2", use_sliding_window=False, sliding_window=4096)) is None
    with pytest.raises(ValueError, match="must be one of auto, plain, static, not 'fast'"):
        resolve_path("fast", "cuda", llama)


# -- against the plain path, eagerly on CPU ------------------------------------------------------------

def test_static_path_equals_plain_on_smollm2(smollm2):
    """Greedy replies that end on EOS, on a stop string and at max_tokens (a failure), and a seeded sample:
    the same text, finish reason and token counts as the plain path's batch."""
    requests = [chat("What is the capital of France?", max_tokens=24),
                chat("Name three noble gases.", max_tokens=24, stop=("Argon", "Neon")),
                chat("Write a long story about a cat.", max_tokens=10),
                chat("Say one word.", max_tokens=12, temperature=0.8, top_p=0.9, seed=4)]
    plain = smollm2.generate(requests)
    static, path = run_static(smollm2, requests)
    assert as_tuples(static) == as_tuples(plain)
    assert [r.finish_reason for r in static] == ["stop", "stop", "length", "stop"]
    assert "Argon" not in static[1].text and "Neon" not in static[1].text
    assert path.stats["prefills"] >= 1 and path.stats["captures"] == 0  # no graphs on CPU


def test_slots_are_reused_and_compacted_like_plain(smollm2, monkeypatch):
    """Six requests through 2 and 4 slots: slots pass to waiting requests as replies end, the batch is
    compacted once the queue is empty, and every result is the plain path's (greedy, and seeded samples
    that differ by sample index only)."""
    sampled = dict(temperature=0.9, seed=3)
    requests = [chat("Name a colour.", max_tokens=7), chat("Hi", max_tokens=2, **sampled),
                chat("What is 2+2?", max_tokens=5), chat("Hi", 1, max_tokens=9, **sampled),
                chat("Name a planet.", max_tokens=3), chat("Hi", 2, max_tokens=6, **sampled)]
    plain = smollm2.generate(requests)
    compactions = []
    original = StaticEngine._compact
    monkeypatch.setattr(StaticEngine, "_compact", lambda self, a, f, t: compactions.append(t) or original(self, a, f, t))
    for slots in (2, 4):
        monkeypatch.setattr(smollm2, "max_batch_size", slots)
        static, path = run_static(smollm2, requests)
        assert as_tuples(static) == as_tuples(plain)
        assert path.stats["prefills"] >= 2  # slots were handed on
    assert compactions  # 4 slots: the long reply ends alone in a smaller batch bucket
    assert len({r.text for r in static[1::2]}) == 3  # three sample indices, three samples


def test_blocks_of_steps_between_host_reads_change_nothing(smollm2, monkeypatch):
    """Decode steps queued in blocks (the step feeds its own greedy token and position back on the device;
    the host reads a block's tokens once): EOS, a stop string and max_tokens end a reply inside a block,
    the tokens after it are dropped, slots pass on between blocks, and a sampled request forces one-step
    blocks. Every block size gives the plain path's results."""
    requests = [chat("What is the capital of France?", max_tokens=24),
                chat("Name three noble gases.", max_tokens=24, stop=("Argon", "Neon")),
                chat("Write a long story about a cat.", max_tokens=10),
                chat("Name a planet.", max_tokens=3),
                chat("Say one word.", max_tokens=12, temperature=0.8, top_p=0.9, seed=4)]
    plain = smollm2.generate(requests)
    monkeypatch.setattr(smollm2, "max_batch_size", 2)
    for block in (1, 3, 16):
        path = StaticPath(smollm2, graphs=False, steps_per_sync=block)
        prompts = {i: smollm2.encode_prompt(r.messages) for i, r in enumerate(requests)}
        out = path.generate(requests, prompts)
        assert as_tuples([out[i] for i in range(len(requests))]) == as_tuples(plain), block
        stats = path.stats
        assert path.engine.block == block
        if block == 1:
            assert stats["decode_blocks"] == stats["decode_steps"] and stats["wasted_steps"] == 0
        else:  # fewer host reads than steps; replies ending inside a block leave its other steps unused
            assert stats["decode_blocks"] < stats["decode_steps"] and stats["wasted_steps"] > 0
    greedy_only = requests[:4]
    for block in (1, 16):  # without the sampled request, replies ending at max_tokens bound the block
        path = StaticPath(smollm2, graphs=False, steps_per_sync=block)
        out = path.generate(greedy_only, {i: smollm2.encode_prompt(r.messages) for i, r in enumerate(greedy_only)})
        assert as_tuples([out[i] for i in range(4)]) == as_tuples(plain[:4])


def test_decode_attention_matmul_equals_sdpa():
    """The decode step's attention as two matrix products (the default) against scaled_dot_product_attention
    on the same packed query, masked cache and grouped K/V heads."""
    import torch

    from megascience_build.backends import slot_cache as sg

    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(shape, generator=gen) for shape in ((3, 8, 1, 16), (3, 2, 40, 16), (3, 2, 40, 16)))
    mask = (torch.arange(40)[None, :] <= torch.tensor([5, 17, 39])[:, None])[:, None, None, :]
    outs = {}
    for name in sg.DECODE_ATTENTIONS:
        sg._DECODE["attention"] = name
        outs[name] = sg._slot_attention(None, q, k, v, mask, scaling=0.25)[0]
    sg._DECODE["attention"] = "matmul"
    assert outs["matmul"].shape == (3, 1, 8, 16)
    assert torch.allclose(outs["matmul"], outs["sdpa"], atol=1e-5)
    with pytest.raises(ValueError, match="decode_attention must be one of matmul, sdpa"):
        StaticEngine(SimpleNamespace(), slots=1, length=8, eos_ids=[0], pad_id=0, ignore_eos=False,
                     decode_attention="flash")


@pytest.fixture(scope="module")
def tiny():
    return make_backend({"backend": "transformers", "model": "tiny", "options": {
        "dummy": True, "config": "tiny-llama", "device": "cpu", "max_batch_size": 4}})


def test_out_of_memory_halves_the_slots_and_reruns_unfinished(tiny, monkeypatch):
    import torch

    requests = [chat("a", max_tokens=4), chat("bb", max_tokens=4), chat("ccc", max_tokens=4, temperature=1.0)]
    expected = as_tuples(run_static(tiny, requests)[0])  # an undisturbed run
    original = StaticEngine.run
    calls = []

    failed = []

    def flaky(self, jobs, finished, more=None):
        calls.append(self.slots)
        # the failed engine (and so its KV cache) is released before the retry builds a smaller one
        assert all(ref() is None for ref in failed), "the retry ran while the failed engine lived"
        if len(calls) == 1:
            failed.append(weakref.ref(self))
            gen = original(self, jobs, finished, more)
            yield next(gen)  # one result arrives, then the GPU runs out of memory
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        yield from original(self, jobs, finished, more)

    monkeypatch.setattr(StaticEngine, "run", flaky)
    splits = tiny.oom_splits
    static, path = run_static(tiny, requests)
    assert calls == [4, 2] and tiny.oom_splits == splits + 1 and path.slot_cap == 2
    assert as_tuples(static) == expected


# -- through the backend's option ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def smollm2_static(smollm2):
    return make_backend({"backend": "transformers", "model": "smollm2", "options": {
        "device": "cpu", "max_batch_size": 3, "generation_path": "static"}})


MIXED = [chat("What is the capital of France?", max_tokens=24),
         chat("Name three noble gases.", max_tokens=24, stop=("Argon", "Neon")),
         chat("Write a long story about a cat.", max_tokens=10),
         chat("Say one word.", max_tokens=12, temperature=0.8, top_p=0.9, seed=4),
         chat("Say one word.", 1, max_tokens=12, temperature=0.8, top_p=0.9, seed=4),
         chat("Too long.", max_tokens=10 ** 6),
         GenerationRequest(({"role": "nobody"},), SamplingParams(max_tokens=4))]


def test_backend_option_static_gives_the_plain_results(smollm2, smollm2_static):
    """generation_path=static through make_backend: the same texts, finish reasons and token counts as the
    plain path for greedy, stop-string, max_tokens (length) and seeded requests, the same per-request errors,
    and the same identity (the option does not change what a cached answer means)."""
    assert smollm2.generation_path == "plain" and smollm2_static.generation_path == "static"  # auto on CPU
    plain, static = smollm2.generate(MIXED), smollm2_static.generate(MIXED)
    assert as_tuples(static) == as_tuples(plain)
    assert [r.finish_reason for r in static[:5]] == ["stop", "stop", "length", "stop", "stop"]
    assert static[3].text != static[4].text  # sample index changes the draw
    assert static[5].finish_reason == "error" and "context length" in static[5].error
    assert static[6].finish_reason == "error" and "chat template" in static[6].error
    stats = smollm2_static.static_stats
    assert stats["prefills"] >= 2 and stats["decode_steps"] > 0 and stats["captures"] == 0
    assert smollm2_static.identity == smollm2.identity
    again = smollm2_static.generate(MIXED[:4])  # the engine is kept: same results on a second call
    assert as_tuples(again) == as_tuples(plain[:4])


def test_backend_option_is_checked_and_auto_is_plain_on_cpu():
    with pytest.raises(ValueError, match="generation_path must be one of auto, plain, static, not 'fast'"):
        make_backend({"backend": "transformers", "model": "tiny", "options": {
            "dummy": True, "config": "tiny-llama", "device": "cpu", "generation_path": "fast"}})
    tiny_auto = make_backend({"backend": "transformers", "model": "tiny", "options": {
        "dummy": True, "config": "tiny-llama", "device": "cpu"}})
    assert tiny_auto.generation_path == "plain" and tiny_auto.static_stats == {}


def test_static_failure_falls_back_to_plain_for_the_rest(smollm2, smollm2_static, monkeypatch):
    """A static-path failure that is not out-of-memory: finished replies are kept, the unfinished ones and
    every later call run on the plain path, and nothing is lost or changed."""
    requests = MIXED[:5]
    plain = smollm2.generate(requests)
    original = StaticEngine.run

    def broken(self, jobs, finished, more=None):
        gen = original(self, jobs, finished, more)
        yield next(gen)
        raise RuntimeError("CUDA graph replay failed (simulated)")

    monkeypatch.setattr(StaticEngine, "run", broken)
    monkeypatch.setattr(smollm2_static, "generation_path", "static")
    finished_before = smollm2_static.static_stats.get("prefills", 0)
    out = smollm2_static.generate(requests)
    assert as_tuples(out) == as_tuples(plain)
    assert smollm2_static.generation_path == "plain"
    assert smollm2_static.static_stats.get("prefills", 0) > finished_before  # the static path did run first


def test_generate_stream_hands_over_each_reply_as_its_slot_finishes(smollm2, smollm2_static):
    """generate_stream (the continuous flow's interface): per-request errors first, then each reply the
    moment its slot finishes (a 2-token request listed last overtakes a 20-token one listed first), every
    index exactly once, the same results as generate, and the caller's code between two replies runs outside
    inference mode (a cache commit must not see inference tensors)."""
    import torch

    requests = [chat("Count from one to fifty, in words.", max_tokens=20), *MIXED[5:],
                chat("Say hi.", max_tokens=2)]
    expected = as_tuples(smollm2.generate(requests))
    for backend in (smollm2_static, smollm2):
        order, results = [], {}
        for i, result in backend.generate_stream(requests):
            assert not torch.is_inference_mode_enabled()
            order.append(i)
            results[i] = result
        assert sorted(order) == list(range(len(requests)))
        assert as_tuples([results[i] for i in range(len(requests))]) == expected
        assert order[:2] == [1, 2]  # the too-long prompt and the bad message list, before any generation
        if backend is smollm2_static:
            assert order[2:] == [3, 0]
    assert expected[0][1:3] == ("length", 20) and expected[3][1:3] == ("length", 2)


def test_requests_handed_over_while_the_engine_runs_join_it(smollm2, smollm2_static):
    """`more` (backends/shared_stream.py feeds it from other shards in flight): requests handed over between
    engine turns take the next indices and get the plain path's results; one whose reply does not fit the
    running engine's cache waits for an engine of its own length; a malformed one is an error of its own."""
    first = MIXED[:2]
    late = [MIXED[2], MIXED[3], MIXED[6], chat("Count from one to fifty in words.", max_tokens=110)]
    asked = []

    def more():
        asked.append(len(asked))
        return list(late) if len(asked) == 2 else []   # the second turn: the engine is running

    before = smollm2_static.static_stats.get("prefills", 0)
    got = dict(smollm2_static.generate_stream(first, more=more))
    assert sorted(got) == list(range(6)) and len(asked) > 2
    plain = smollm2.generate(first + late[:2]) + smollm2.generate(late[3:])
    assert as_tuples([got[i] for i in (0, 1, 2, 3, 5)]) == as_tuples(plain)
    assert got[4].finish_reason == "error" and "chat template" in got[4].error
    assert got[5].prompt_tokens + 110 > 128     # more than the first engine's 128-position cache holds
    assert smollm2_static.static_stats["prefills"] - before >= 3
