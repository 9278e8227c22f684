"""The scripted backend and the backend factory."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from megascience_build.backends import GENERATION_BACKENDS, make_backend, make_embedder
from megascience_build.backends.base import GenerationRequest, GenerationResult, SamplingParams
from megascience_build.backends.scripted import ScriptedBackend


def req(text: str, sample_index: int = 0, seed: int = 0) -> GenerationRequest:
    return GenerationRequest(({"role": "system", "content": "sys"}, {"role": "user", "content": text}),
                             SamplingParams(seed=seed), sample_index)


RULES = [
    {"pattern": r"^Extract", "response": '{"qa": []}'},
    {"pattern": r"difficulty", "responses": ["A", "B", "C"]},
    {"pattern": r"cut me", "response": "half an ans", "finish_reason": "length"},
    {"pattern": r"fail me", "response": "", "finish_reason": "error"},
    {"pattern": r"seeded", "response": "sample {sample_index} seed {seed}"},
]


def test_rules_first_match_on_last_user_message():
    b = make_backend({"backend": "scripted", "model": "fake", "options": {"rules": RULES, "default": "DEFAULT"}})
    out = b.generate([req("Extract QA from this"), req("nothing matches"), req("cut me"), req("fail me"),
                      req("seeded", 2, seed=7)])
    assert [(r.text, r.finish_reason) for r in out] == [
        ('{"qa": []}', "stop"), ("DEFAULT", "stop"), ("half an ans", "length"), ("", "error"),
        ("sample 2 seed 7", "stop")]
    assert out[3].error and not out[2].ok
    assert out[0].prompt_tokens == 5 and out[0].completion_tokens == 2
    assert b.calls == 5 and b.batches == 1 and (b.model_id, b.revision) == ("fake", "1")


def test_responses_cycle_by_sample_index_and_are_deterministic():
    b = ScriptedBackend(rules=RULES)
    first = [r.text for r in b.generate([req("rate difficulty", k) for k in range(5)])]
    again = [r.text for r in b.generate([req("rate difficulty", k) for k in range(5)])]
    assert first == again == ["A", "B", "C", "A", "B"]


def test_no_rule_and_no_default_is_an_error():
    [r] = ScriptedBackend(rules=RULES).generate([req("unmatched")])
    assert r.finish_reason == "error" and "no scripted rule" in r.error


def test_callable_responder_forms():
    def responder(request):
        text = request.messages[-1]["content"]
        if text == "tuple":
            return ("cut", "length")
        if text == "result":
            return GenerationResult("r", "stop", 1, 1)
        if text == "raise":
            raise RuntimeError("nope")
        return text.upper()

    out = ScriptedBackend(responder=responder).generate([req("hello"), req("tuple"), req("result"), req("raise")])
    assert [(r.text, r.finish_reason) for r in out] == [("HELLO", "stop"), ("cut", "length"), ("r", "stop"),
                                                        ("", "error")]
    assert "nope" in out[3].error


def test_responder_by_import_path():
    b = make_backend({"backend": "scripted", "options": {"responder": "json:dumps"}})
    assert b.model_id == "scripted"
    # json.dumps(request) fails (a dataclass is not JSON-serialisable): the failure is the request's error
    assert b.generate([req("x")])[0].finish_reason == "error"
    with pytest.raises(ValueError, match="package.module:function"):
        ScriptedBackend(responder="json.dumps")


def test_rules_file_jsonl_and_errors(tmp_path):
    good = tmp_path / "rules.jsonl"
    good.write_text('{"pattern": "a", "response": "A"}\n\n{"pattern": "b", "response": "B"}\n')
    assert [r.text for r in ScriptedBackend(rules_file=good).generate([req("b"), req("a")])] == ["B", "A"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"pattern": "a", "response": "A"}\n{"pattern": \n')
    with pytest.raises(ValueError, match=r"bad\.jsonl:2"):
        ScriptedBackend(rules_file=bad)
    with pytest.raises(ValueError, match="rule 0"):
        ScriptedBackend(rules=[{"pattern": "a"}])
    with pytest.raises(ValueError, match="finish_reason"):
        ScriptedBackend(rules=[{"pattern": "a", "response": "x", "finish_reason": "done"}])
    with pytest.raises(ValueError, match="bad regex"):
        ScriptedBackend(rules=[{"pattern": "(", "response": "x"}])


def test_call_log_counts_calls_across_processes(tmp_path):
    log = tmp_path / "calls.jsonl"
    ScriptedBackend(default="x", log_path=log).generate([req("one"), req("two")])
    script = textwrap.dedent(f"""
        from megascience_build.backends.scripted import ScriptedBackend
        from megascience_build.backends.base import GenerationRequest
        b = ScriptedBackend(default="y", log_path={str(log)!r})
        b.generate([GenerationRequest(({{"role": "user", "content": "three"}},))])
    """)
    subprocess.run([sys.executable, "-c", script], check=True)
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [line["user"] for line in lines] == ["one", "two", "three"]
    assert len({line["pid"] for line in lines}) == 2
    assert lines[0]["key"] == req("one").cache_key(ScriptedBackend(default="x").identity)


def test_factory_rejects_unknown_backend_naming_choices():
    with pytest.raises(ValueError) as err:
        make_backend({"backend": "llamacpp", "model": "m"})
    assert "llamacpp" in str(err.value) and all(name in str(err.value) for name in GENERATION_BACKENDS)
    with pytest.raises(ValueError, match="sentence-transformers"):
        make_embedder({"backend": "openai", "model": "m"})


def test_factory_rejects_bad_options_and_keys_before_loading():
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['max_batch'\]"):
        make_backend({"backend": "transformers", "model": "smollm2", "options": {"max_batch": 4}})
    with pytest.raises(ValueError, match="temperature"):
        make_backend({"backend": "openai", "model": "m", "temperature": 0.2})
    with pytest.raises(ValueError, match="no 'model'"):
        make_backend({"backend": "openai"})
    with pytest.raises(ValueError, match="mapping"):
        make_backend("openai")
