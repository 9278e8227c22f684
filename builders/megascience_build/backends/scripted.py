"""A deterministic backend for tests: answers come from rules or a Python function, never from a model.

Rules are tried in order; the first whose regex matches (re.search, DOTALL) the last user message answers.
A rule is {"pattern": REGEX, "response": TEXT} with optional "finish_reason" ("stop", "length", "error"),
or "responses": [TEXT, ...] picked by the request's sample_index (cycling), for k-sample stages.
Responses may use {sample_index} and {seed}. Unmatched requests get `default` (finish_reason "stop"), or
finish_reason "error" when there is no default.

A `responder` callable gets the GenerationRequest and returns a str, a (text, finish_reason) pair or a
GenerationResult; in a pipeline file it is named as "package.module:function".

Every request is counted (`calls`, `batches`) and, with `log_path`, appended as one JSON line to that file
(one write per line, O_APPEND), so a test can count calls made by other processes.
"""
from __future__ import annotations

import importlib
import json
import os
import re
import threading
import time
from pathlib import Path
from typing import Callable, Iterator, Sequence

from .base import FINISH_REASONS, GenerationRequest, GenerationResult
from .identity import ModelIdentity, canonical_json, make_settings, sha256_text

Responder = Callable[[GenerationRequest], object]


def last_user_message(req: GenerationRequest) -> str:
    for msg in reversed(req.messages):
        if msg.get("role") == "user":
            return str(msg.get("content", ""))
    return ""


def load_rules(source: str | os.PathLike | Sequence[dict]) -> list[dict]:
    """Rules from a list, a JSON file (a list) or a JSONL file (one rule per line), validated."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".jsonl":
            rules = []
            for lineno, line in enumerate(text.splitlines(), 1):
                if line.strip():
                    try:
                        rules.append(json.loads(line))
                    except json.JSONDecodeError as exc:
                        raise ValueError(f"scripted rules {path}:{lineno}: invalid JSON ({exc.msg})") from None
        else:
            rules = json.loads(text)
        where = str(path)
    else:
        rules, where = list(source), "rules"
    checked = []
    for n, rule in enumerate(rules):
        if not isinstance(rule, dict) or "pattern" not in rule or not ({"response", "responses"} & set(rule)):
            raise ValueError(f"scripted {where}, rule {n}: expected an object with 'pattern' and "
                             f"'response' (or 'responses'), got {rule!r}")
        finish = rule.get("finish_reason", "stop")
        if finish not in FINISH_REASONS:
            raise ValueError(f"scripted {where}, rule {n}: finish_reason {finish!r} not in {FINISH_REASONS}")
        try:
            regex = re.compile(rule["pattern"], re.S)
        except re.error as exc:
            raise ValueError(f"scripted {where}, rule {n}: bad regex {rule['pattern']!r}: {exc}") from None
        checked.append({**rule, "regex": regex, "finish_reason": finish})
    return checked


def import_callable(ref: str) -> Responder:
    module, _, attr = ref.partition(":")
    if not module or not attr:
        raise ValueError(f"responder {ref!r}: expected 'package.module:function'")
    fn = getattr(importlib.import_module(module), attr, None)
    if not callable(fn):
        raise ValueError(f"responder {ref!r}: {attr!r} is not a callable in {module!r}")
    return fn


def _word_count(text: str) -> int:
    return len(text.split())


class ScriptedBackend:
    def __init__(self, model: str = "scripted", revision: str = "1", *, rules=None, rules_file=None,
                 responder: Responder | str | None = None, default: str | None = None, delay: float = 0.0,
                 log_path: str | os.PathLike | None = None):
        self.model_id = model
        self.revision = revision
        self.rules = load_rules(rules_file) if rules_file else load_rules(rules or [])
        self.responder = import_callable(responder) if isinstance(responder, str) else responder
        self.default = default
        # the script is this backend's weights: other rules, another model
        responder_name = responder if isinstance(responder, str) or responder is None else \
            f"{getattr(responder, '__module__', '?')}:{getattr(responder, '__qualname__', repr(responder))}"
        self.identity = ModelIdentity("scripted", model, revision, settings=make_settings(
            script=sha256_text(canonical_json([self.rules, default, responder_name]))))
        self.delay = float(delay)
        self.log_path = Path(log_path) if log_path else None
        self.calls = 0
        self.batches = 0
        self._lock = threading.Lock()

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        with self._lock:
            self.batches += 1
        return [self._one(req) for req in requests]

    def generate_stream(self, requests: Sequence[GenerationRequest]) -> Iterator[tuple[int, GenerationResult]]:
        """One answer at a time, in request order: the continuous flow's interface."""
        with self._lock:
            self.batches += 1
        for i, req in enumerate(requests):
            yield i, self._one(req)

    def close(self) -> None:
        pass

    def _one(self, req: GenerationRequest) -> GenerationResult:
        if self.delay:
            time.sleep(self.delay)
        result = self._answer(req)
        with self._lock:
            self.calls += 1
        if self.log_path is not None:
            line = json.dumps({"pid": os.getpid(), "key": req.cache_key(self.identity),
                               "sample_index": req.sample_index, "finish_reason": result.finish_reason,
                               "user": last_user_message(req)[:200]}, ensure_ascii=False) + "\n"
            fd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line.encode("utf-8"))
            finally:
                os.close(fd)
        return result

    def _answer(self, req: GenerationRequest) -> GenerationResult:
        prompt = " ".join(str(m.get("content", "")) for m in req.messages)
        if self.responder is not None:
            try:
                return self._coerce(self.responder(req), prompt)
            except Exception as exc:  # a failing responder is a failed request, as with a real backend
                return GenerationResult("", "error", _word_count(prompt), 0, f"responder raised {exc!r}")
        user = last_user_message(req)
        for rule in self.rules:
            if rule["regex"].search(user):
                if "responses" in rule:
                    options = rule["responses"]
                    text = options[req.sample_index % len(options)]
                else:
                    text = rule["response"]
                text = text.replace("{sample_index}", str(req.sample_index)).replace("{seed}", str(req.sampling.seed))
                finish = rule["finish_reason"]
                error = f"scripted error for rule {rule['pattern']!r}" if finish == "error" else None
                return GenerationResult(text if finish != "error" else "", finish, _word_count(prompt),
                                        _word_count(text), error)
        if self.default is None:
            return GenerationResult("", "error", _word_count(prompt), 0, "no scripted rule matched")
        return GenerationResult(self.default, "stop", _word_count(prompt), _word_count(self.default))

    @staticmethod
    def _coerce(value, prompt: str) -> GenerationResult:
        if isinstance(value, GenerationResult):
            return value
        if isinstance(value, tuple) and len(value) == 2 and value[1] in FINISH_REASONS:
            text, finish = value
            return GenerationResult(str(text), finish, _word_count(prompt), _word_count(str(text)),
                                    "scripted error" if finish == "error" else None)
        if isinstance(value, str):
            return GenerationResult(value, "stop", _word_count(prompt), _word_count(value))
        raise TypeError(f"responder returned {type(value).__name__}; expected str, (text, finish_reason) "
                        f"or GenerationResult")
