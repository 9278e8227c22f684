"""The OpenAI-compatible backend against a real HTTP server on loopback that misbehaves on purpose."""
from __future__ import annotations

import socket
import time

import pytest

from megascience_build.backends import make_backend
from megascience_build.backends.base import GenerationRequest, SamplingParams
from megascience_build.backends.openai_backend import OpenAIBackend, parse_retry_after


def req(text: str, **sampling) -> GenerationRequest:
    return GenerationRequest(({"role": "system", "content": "be brief"}, {"role": "user", "content": text}),
                             SamplingParams(**sampling))


def backend(server, **options) -> OpenAIBackend:
    opts = {"base_url": server.base_url, "backoff_base": 0.01, "backoff_max": 0.05, "timeout": 0.5,
            "max_retries": 3, **options}
    return make_backend({"backend": "openai", "model": "test-model", "revision": "r1", "options": opts})


def test_plain_answers_keep_request_order_and_report_tokens(faulty_server):
    b = backend(faulty_server)
    texts = [f"ok number {i}" for i in range(6)]
    results = b.generate([req(t) for t in texts])
    assert [r.text for r in results] == [f"answer to {t}" for t in texts]
    assert all(r.finish_reason == "stop" and r.ok for r in results)
    assert [r.prompt_tokens for r in results] == [5] * 6 and all(r.completion_tokens == 3 for r in results)
    assert (b.model_id, b.revision) == ("test-model", "r1")


def test_429_is_retried_after_the_retry_after_delay(faulty_server):
    b = backend(faulty_server)
    start = time.monotonic()
    [result] = b.generate([req("r429:2 please")])
    assert result.text == "answer to r429:2 please" and result.ok
    assert faulty_server.attempts["r429:2 please"] == 3
    gaps = [b - a for a, b in zip(faulty_server.arrivals["r429:2 please"], faulty_server.arrivals["r429:2 please"][1:])]
    # backoff alone would wait <= 0.05 s; Retry-After: 1 makes each gap about a second
    assert all(g >= 0.95 for g in gaps), gaps
    assert time.monotonic() - start < 5


def test_500s_are_retried_with_backoff_then_succeed(faulty_server):
    [result] = backend(faulty_server).generate([req("e500:2 x")])
    assert result.ok and result.text == "answer to e500:2 x"
    assert faulty_server.attempts["e500:2 x"] == 3


def test_persistent_500_gives_error_after_max_retries(faulty_server):
    [result] = backend(faulty_server, max_retries=2).generate([req("always500 x")])
    assert result.finish_reason == "error" and not result.ok and result.text == ""
    assert "3 attempt" in result.error and "HTTP 500" in result.error
    assert faulty_server.attempts["always500 x"] == 3


def test_timeout_is_retried(faulty_server):
    [result] = backend(faulty_server, timeout=0.3).generate([req("slow:1 x")])
    assert result.ok and result.text == "answer to slow:1 x"
    assert faulty_server.attempts["slow:1 x"] == 2


def test_timeouts_exhaust_retries_into_an_error(faulty_server):
    [result] = backend(faulty_server, timeout=0.2, max_retries=1).generate([req("slow:5 x")])
    assert result.finish_reason == "error" and "timeout" in result.error
    assert faulty_server.attempts["slow:5 x"] == 2


def test_length_is_a_failure_not_an_answer(faulty_server):
    [result] = backend(faulty_server).generate([req("length x")])
    assert result.finish_reason == "length" and not result.ok
    assert faulty_server.attempts["length x"] == 1


@pytest.mark.parametrize("kind, message", [("malformed", "malformed JSON"), ("nochoices", "no choices")])
def test_malformed_responses_become_errors_with_a_message(faulty_server, kind, message):
    [result] = backend(faulty_server).generate([req(f"{kind} x")])
    assert result.finish_reason == "error" and message in result.error and result.text == ""
    assert faulty_server.attempts[f"{kind} x"] == 1


def test_client_errors_are_not_retried(faulty_server):
    [result] = backend(faulty_server).generate([req("badrequest x")])
    assert result.finish_reason == "error" and "HTTP 400" in result.error
    assert faulty_server.attempts["badrequest x"] == 1


def test_mixed_batch_each_request_gets_its_own_outcome(faulty_server):
    texts = ["ok a", "e500:1 b", "length c", "malformed d", "always500 e", "ok f"]
    results = backend(faulty_server, max_retries=1).generate([req(t) for t in texts])
    assert [r.finish_reason for r in results] == ["stop", "stop", "length", "error", "error", "stop"]
    assert results[0].text == "answer to ok a" and results[5].text == "answer to ok f"


def test_concurrency_limit_is_respected_and_used(faulty_server):
    b = backend(faulty_server, concurrency=3, timeout=5)
    results = b.generate([req(f"hold {i}") for i in range(12)])
    assert all(r.ok for r in results)
    assert faulty_server.max_in_flight == 3


def test_connection_refused_is_retried_then_error():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    b = OpenAIBackend("m", base_url=f"http://127.0.0.1:{port}/v1", max_retries=2, backoff_base=0.01,
                      backoff_max=0.02, timeout=1)
    [result] = b.generate([req("ok")])
    assert result.finish_reason == "error" and "connection error" in result.error and "3 attempt" in result.error


def test_payload_carries_sampling_seed_and_api_key(faulty_server, monkeypatch):
    monkeypatch.setenv("TEST_API_KEY", "sk-secret")
    b = backend(faulty_server, api_key_env="TEST_API_KEY", extra_body={"top_k": 20})
    r = GenerationRequest(({"role": "user", "content": "ok seeded"},),
                          SamplingParams(temperature=0.7, top_p=0.9, max_tokens=77, seed=10, stop=("END",)),
                          sample_index=3)
    assert b.generate([r])[0].ok
    body, headers = faulty_server.bodies[-1], faulty_server.headers[-1]
    assert body["model"] == "test-model" and body["messages"] == [{"role": "user", "content": "ok seeded"}]
    assert (body["temperature"], body["top_p"], body["max_tokens"], body["seed"], body["stop"], body["top_k"]) == \
        (0.7, 0.9, 77, 13, ["END"], 20)
    assert headers["Authorization"] == "Bearer sk-secret"


def test_missing_api_key_env_fails_at_construction(monkeypatch):
    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    with pytest.raises(ValueError, match="NO_SUCH_KEY_VAR"):
        OpenAIBackend("deepseek-chat", base_url="https://api.deepseek.com/v1", api_key_env="NO_SUCH_KEY_VAR")


def test_parse_retry_after_forms():
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == pytest.approx(10.0)


def test_parse_response_never_raises_on_odd_bodies():
    cases = [b"", b"[]", b"null", b'{"choices": [1]}', b'{"choices": [{"message": {"content": 5}, "finish_reason": "stop"}]}',
             b'{"choices": [{"message": {"content": "x"}, "finish_reason": "content_filter"}]}',
             b'{"choices": [{"message": {"content": "x"}}]}', b"\xff\xfe"]
    for raw in cases:
        result = OpenAIBackend.parse_response(raw)
        assert result.finish_reason == "error" and result.error and result.text == "", raw
    null_content = OpenAIBackend.parse_response(b'{"choices": [{"message": {"content": null}, "finish_reason": "stop"}]}')
    assert null_content.finish_reason == "stop" and null_content.text == ""


def test_a_server_answering_as_another_model_is_refused_and_nothing_is_cached(faulty_server, tmp_path):
    from megascience_build.backends.identity import ModelMismatchError
    from megascience_build.engine.cache import RequestCache
    from megascience_build.engine.context import CachedGenerator, ModelUsage

    b = backend(faulty_server)
    faulty_server.served_model = "test-model"        # the pinned name: accepted
    assert b.generate([req("ok first")])[0].ok
    faulty_server.served_model = "some-other-model"
    cache = RequestCache(tmp_path / "c.sqlite")
    gen = CachedGenerator(stage_label="s", role="gen", identity=b.identity, batch_size=4, cache=cache,
                          backend_factory=lambda: b, usage=ModelUsage(), cache_only=False)
    with pytest.raises(ModelMismatchError, match="'some-other-model'.*pinned 'test-model'"):
        gen.generate([req("ok second"), req("ok third")])
    keys = [req(t).cache_key(b.identity) for t in ("ok second", "ok third")]
    assert cache.get_many(keys, failures=True) == {}


def test_a_model_listing_without_the_pinned_model_is_refused_before_any_request(faulty_server):
    from megascience_build.backends.identity import ModelMismatchError

    faulty_server.listed_models = ["llama-3-8b"]
    with pytest.raises(ModelMismatchError, match=r"serves \['llama-3-8b'\], not the pinned model 'test-model'"):
        backend(faulty_server).generate([req("ok one")])
    assert faulty_server.bodies == []                 # nothing was sent
    faulty_server.listed_models = ["llama-3-8b", "test-model"]
    assert backend(faulty_server).generate([req("ok one")])[0].ok


def test_identity_is_the_pinned_name_revision_and_request_extras():
    a = OpenAIBackend.identify("test-model", "r1")
    assert (a.model, a.revision, a.backend) == ("test-model", "r1", "openai")
    assert OpenAIBackend.identify("test-model").revision == "served"
    assert OpenAIBackend.identify("test-model", "r1", extra_body={"top_k": 20}).digest != a.digest


def test_openai_stream_keeps_the_window_full_past_a_slow_request(faulty_server):
    b = make_backend({"backend": "openai", "model": "m", "options": {
        "base_url": faulty_server.base_url, "concurrency": 2, "timeout": 10, "max_retries": 0}})
    requests = [GenerationRequest(({"role": "user", "content": "slow:1 first"},))] + \
        [GenerationRequest(({"role": "user", "content": f"hold {i}"},)) for i in range(4)]
    t0 = time.monotonic()
    order = [i for i, result in b.generate_stream(requests) if result.ok]
    # 4 quick requests of 0.25 s share the second slot while the 1.5 s one holds the first
    assert order == [1, 2, 3, 4, 0] and faulty_server.max_in_flight == 2
    assert time.monotonic() - t0 < 1.5 + 0.25 * 2
