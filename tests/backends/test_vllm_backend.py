"""The vLLM backend's request/response mapping, against a fake `vllm` module (vLLM needs a CUDA machine;
nothing here runs real vLLM)."""
from __future__ import annotations

import sys
import types
from types import SimpleNamespace

import pytest

from megascience_build.backends import make_backend
from megascience_build.backends.base import GenerationRequest, SamplingParams

SHA = "5" * 40     # a pinned commit: Hub revisions resolve to commits, and these models are not in any cache


class FakeTokenizer:
    chat_template = "fake"

    def apply_chat_template(self, messages, tokenize, add_generation_prompt):
        assert tokenize is False and add_generation_prompt is True
        return "".join(f"<{m['role']}>{m['content']}" for m in messages) + "<assistant>"

    def __call__(self, text, add_special_tokens):
        assert add_special_tokens is False
        return {"input_ids": [ord(c) for c in text]}


class FakeLLM:
    instances: list["FakeLLM"] = []

    def __init__(self, **kwargs):
        self.kwargs = kwargs
        self.calls = []
        self.fail = False
        self.llm_engine = SimpleNamespace(model_config=SimpleNamespace(max_model_len=kwargs.get("max_model_len", 4096)))
        FakeLLM.instances.append(self)

    def get_tokenizer(self):
        return FakeTokenizer()

    def generate(self, prompts, sampling_params, use_tqdm):
        self.calls.append((prompts, sampling_params))
        if self.fail:
            raise RuntimeError("CUDA error: device-side assert")
        outs = []
        for p, sp in zip(prompts, sampling_params):
            text = "".join(map(chr, p["prompt_token_ids"]))
            finish = "length" if "LONG" in text else "abort" if "ABORT" in text else "stop"
            outs.append(SimpleNamespace(prompt_token_ids=p["prompt_token_ids"], outputs=[
                SimpleNamespace(text=f"seed={sp.kwargs['seed']}", token_ids=[1] * sp.kwargs["max_tokens"],
                                finish_reason=finish)]))
        return outs


class FakeSamplingParams:
    def __init__(self, **kwargs):
        self.kwargs = kwargs


@pytest.fixture
def fake_vllm(monkeypatch):
    module = types.ModuleType("vllm")
    module.LLM, module.SamplingParams = FakeLLM, FakeSamplingParams
    monkeypatch.setitem(sys.modules, "vllm", module)
    FakeLLM.instances.clear()
    return module


def req(text, sample_index=0, **sampling):
    return GenerationRequest(({"role": "user", "content": text},), SamplingParams(**sampling), sample_index)


def test_engine_arguments(fake_vllm):
    b = make_backend({"backend": "vllm", "model": "Qwen/Qwen2.5-7B-Instruct", "revision": SHA,
                      "options": {"tensor_parallel_size": 4, "dummy": True, "max_model_len": 2048,
                                  "engine_args": {"enable_prefix_caching": True}}})
    kwargs = FakeLLM.instances[-1].kwargs
    assert kwargs["model"] == "Qwen/Qwen2.5-7B-Instruct" and kwargs["revision"] == SHA
    assert kwargs["tensor_parallel_size"] == 4 and kwargs["load_format"] == "dummy"
    assert kwargs["max_model_len"] == 2048 and kwargs["enable_prefix_caching"] is True
    assert (b.model_id, b.revision, b.context_length) == ("Qwen/Qwen2.5-7B-Instruct", SHA, 2048)


def test_requests_map_to_one_generate_call_in_order(fake_vllm):
    b = make_backend({"backend": "vllm", "model": "m", "revision": SHA})
    requests = [req("hello", 0, temperature=0.8, top_p=0.9, max_tokens=5, seed=100, stop=("###",)),
                req("hello", 3, temperature=0.8, top_p=0.9, max_tokens=5, seed=100),
                req("LONG one", max_tokens=7), req("ABORT it")]
    results = b.generate(requests)
    [(prompts, params)] = FakeLLM.instances[-1].calls
    assert "".join(map(chr, prompts[0]["prompt_token_ids"])) == "<user>hello<assistant>"
    assert params[0].kwargs == {"n": 1, "temperature": 0.8, "top_p": 0.9, "max_tokens": 5, "seed": 100,
                                "stop": ["###"]}
    assert params[1].kwargs["seed"] == 103 and params[1].kwargs["stop"] is None
    assert [r.text for r in results[:3]] == ["seed=100", "seed=103", "seed=0"]
    assert [r.finish_reason for r in results] == ["stop", "stop", "length", "error"]
    assert "abort" in results[3].error
    assert results[0].prompt_tokens == len("<user>hello<assistant>") and results[2].completion_tokens == 7


def test_too_long_prompt_is_an_error_and_never_sent(fake_vllm):
    b = make_backend({"backend": "vllm", "model": "m", "revision": SHA, "options": {"max_model_len": 64}})
    results = b.generate([req("short", max_tokens=8), req("x" * 100, max_tokens=8)])
    assert results[0].ok and results[1].finish_reason == "error" and "context length 64" in results[1].error
    [(prompts, _)] = FakeLLM.instances[-1].calls
    assert len(prompts) == 1


def test_engine_failure_becomes_per_request_errors(fake_vllm):
    b = make_backend({"backend": "vllm", "model": "m", "revision": SHA})
    FakeLLM.instances[-1].fail = True
    results = b.generate([req("a"), req("b")])
    assert [r.finish_reason for r in results] == ["error", "error"] and "device-side assert" in results[0].error


def test_missing_vllm_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # makes `import vllm` raise ImportError
    with pytest.raises(ImportError, match=r"megascience-datasets\[build,vllm\]"):
        make_backend({"backend": "vllm", "model": "m", "revision": SHA})


def test_an_unpinned_hub_model_that_cannot_be_resolved_is_refused(fake_vllm, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as constants
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ValueError, match="cannot resolve revision 'main' to a commit sha"):
        make_backend({"backend": "vllm", "model": "org/not-cached"})


def test_shards_waiting_behind_a_call_go_to_vllm_as_one_call(fake_vllm, monkeypatch):
    """Through the shared request stream (backends/shared_stream.py): while one shard's call runs, the
    shards that arrive wait, then go to LLM.generate together as one call, each getting its own answers."""
    import threading
    import time

    from megascience_build.backends.shared_stream import SharedStream

    b = make_backend({"backend": "vllm", "model": "m", "revision": SHA})
    llm = FakeLLM.instances[-1]
    first_call = threading.Event()
    real_generate = llm.generate

    def slow_generate(prompts, sampling_params, use_tqdm):
        first_call.set()
        time.sleep(0.3 if len(llm.calls) == 0 else 0)
        return real_generate(prompts, sampling_params, use_tqdm)

    monkeypatch.setattr(llm, "generate", slow_generate)
    shared = SharedStream(b)
    answers = {}

    def shard(k: int, n: int) -> None:
        answers[k] = shared.generate([req(f"shard {k} row {i}", max_tokens=k + 1) for i in range(n)])

    threads = [threading.Thread(target=shard, args=(0, 2))]
    threads[0].start()
    first_call.wait(5)
    threads += [threading.Thread(target=shard, args=(k, 3)) for k in (1, 2)]
    for t in threads[1:]:
        t.start()
    for t in threads:
        t.join(10)
    assert [len(prompts) for prompts, _ in llm.calls] == [2, 6] and shared.rounds == 2
    assert {k: [r.completion_tokens for r in rs] for k, rs in answers.items()} == {0: [1, 1], 1: [2] * 3, 2: [3] * 3}
    shared.close()
