"""Any OpenAI-compatible /v1/chat/completions server: vLLM or SGLang servers, hosted APIs such as DeepSeek's.

Requests run on `concurrency` threads sharing one HTTP connection pool. A 408, 429 or 5xx answer, a
timeout or a connection error is retried up to `max_retries` times with exponential backoff and jitter
(delay ~ U(b/2, b), b = min(backoff_max, backoff_base * 2**attempt)); a Retry-After header (seconds or an
HTTP date) replaces the computed delay, capped at `max_retry_after`. After the last attempt, and at once
for other 4xx answers, malformed JSON or a response without choices, the request becomes
finish_reason="error" with a message. A server finish_reason of "length" stays "length": a failure,
never an answer. The API key is read from the environment variable named by `api_key_env`.

Identity: the pinned `model` name (and `revision`, default "served"; pin it to the weights' commit you
deployed) plus `extra_body`. Before the first request the server's /models listing must include the pinned
name (servers without a listing are asked nothing), and every reply's `model` field must equal it: the first
reply naming another model raises ModelMismatchError, and neither it nor the requests still in flight are
kept (the engine caches only answers it has received before).
"""
from __future__ import annotations

import email.utils
import logging
import os
import random
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from collections import deque
from typing import Callable, Iterator, Sequence

from .base import GenerationRequest, GenerationResult
from .identity import ModelIdentity, ModelMismatchError, make_settings

log = logging.getLogger(__name__)

RETRY_STATUS = frozenset({408, 429}) | frozenset(range(500, 600))
MORE_POLL_S = 0.02  # how often a backend with free connection slots asks for new requests
_FINISH = {"stop": "stop", "eos": "stop", "length": "length"}


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date); None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class OpenAIBackend:
    def __init__(self, model: str, revision: str | None = None, *, base_url: str = "http://127.0.0.1:8000/v1",
                 api_key_env: str | None = None, concurrency: int = 8, timeout: float = 600.0,
                 connect_timeout: float = 30.0, max_retries: int = 6, backoff_base: float = 1.0,
                 backoff_max: float = 60.0, max_retry_after: float = 300.0, extra_body: dict | None = None,
                 headers: dict | None = None):
        import httpx

        if concurrency < 1:
            raise ValueError(f"openai backend: concurrency must be >= 1, got {concurrency}")
        if max_retries < 0:
            raise ValueError(f"openai backend: max_retries must be >= 0, got {max_retries}")
        self.identity = self.identify(model, revision, extra_body=extra_body)
        self.model_id, self.revision = model, self.identity.revision
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.models_url = base_url.rstrip("/") + "/models"
        self._listing_checked = False
        self.concurrency = int(concurrency)
        self.max_retries = int(max_retries)
        self.backoff_base, self.backoff_max = float(backoff_base), float(backoff_max)
        self.max_retry_after = float(max_retry_after)
        self.extra_body = dict(extra_body or {})
        all_headers = dict(headers or {})
        if api_key_env:
            key = os.environ.get(api_key_env)
            if not key:
                raise ValueError(f"openai backend for {model!r}: environment variable {api_key_env!r} "
                                 f"(options.api_key_env) is not set")
            all_headers["Authorization"] = f"Bearer {key}"
        self._httpx = httpx
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=min(connect_timeout, timeout)), headers=all_headers,
            limits=httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency))
        self._random = random.Random()
        self._random_lock = threading.Lock()

    # -- public API -----------------------------------------------------------------------------------

    @classmethod
    def identify(cls, model: str, revision: str | None = None, *, extra_body: dict | None = None, **_client
                 ) -> ModelIdentity:
        return ModelIdentity("openai", model, revision or "served", settings=make_settings(extra_body=extra_body))

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        results: list[GenerationResult | None] = [None] * len(requests)
        for i, result in self.generate_stream(requests):
            results[i] = result
        return results

    def generate_stream(self, requests: Sequence[GenerationRequest], more: Callable[[], list] | None = None
                        ) -> Iterator[tuple[int, GenerationResult]]:
        """(request index, result) as each answer arrives, with `concurrency` requests in flight at all times
        (a new one starts as soon as one finishes); the engine's continuous flow. `more()`, if given, is
        asked for new requests whenever a connection slot is free (they take the next indices), so callers
        sharing this backend (backends/shared_stream.py) keep one window full."""
        requests = list(requests)
        if not requests:
            return
        self._check_listing()
        todo = deque(range(len(requests)))
        running: dict = {}
        with ThreadPoolExecutor(max_workers=self.concurrency if more else min(self.concurrency, len(requests)),
                                thread_name_prefix="openai-backend") as pool:

            def fill() -> None:   # every free slot takes the next request (asking `more` when none is left)
                if more is not None and len(running) + len(todo) < self.concurrency:
                    start = len(requests)
                    requests.extend(more())
                    todo.extend(range(start, len(requests)))
                while todo and len(running) < self.concurrency:
                    i = todo.popleft()
                    running[pool.submit(self._request, requests[i])] = i

            try:
                fill()
                while running:
                    room = more is not None and len(running) < self.concurrency
                    done, _ = wait(running, timeout=MORE_POLL_S if room else None, return_when=FIRST_COMPLETED)
                    finished = []
                    for future in done:
                        i = running.pop(future)
                        result, served = future.result()
                        if served not in (None, self.model_id):
                            raise ModelMismatchError(
                                f"{self.url} answered as model {served!r}, but the pipeline pinned {self.model_id!r}: "
                                f"this answer and those still in flight are not kept (pin the served name, or "
                                f"point base_url at the right server)")
                        finished.append((i, result))
                    fill()        # before handing the answers over: the caller may commit them meanwhile
                    yield from finished
            finally:
                for future in running:
                    future.cancel()

    def close(self) -> None:
        self._client.close()

    def payload(self, req: GenerationRequest) -> dict:
        s = req.sampling
        body = {"model": self.model_id, "messages": list(req.messages), "temperature": s.temperature,
                "top_p": s.top_p, "max_tokens": s.max_tokens, "seed": s.seed + req.sample_index, "n": 1}
        if s.stop:
            body["stop"] = list(s.stop)
        body.update(self.extra_body)
        return body

    # -- internals ------------------------------------------------------------------------------------

    def _check_listing(self) -> None:
        """Once: a server that lists its models must list the pinned one."""
        if self._listing_checked:
            return
        try:
            resp = self._client.get(self.models_url)
            listed = [m.get("id") for m in resp.json().get("data", [])] if resp.status_code == 200 else None
        except (self._httpx.HTTPError, ValueError, AttributeError, TypeError):
            listed = None    # no listing (or not reachable yet: the requests retry and report that)
        if listed is not None and self.model_id not in listed:
            raise ModelMismatchError(f"{self.models_url} serves {listed}, not the pinned model {self.model_id!r}")
        self._listing_checked = True

    def _request(self, req: GenerationRequest) -> tuple[GenerationResult, str | None]:
        httpx = self._httpx
        body = self.payload(req)
        reason = "no attempt made"
        for attempt in range(self.max_retries + 1):
            retry_after = None
            try:
                resp = self._client.post(self.url, json=body)
            except httpx.TimeoutException as exc:
                reason = f"timeout ({type(exc).__name__})"
            except httpx.TransportError as exc:
                reason = f"connection error ({type(exc).__name__}: {exc})"
            else:
                if resp.status_code in RETRY_STATUS:
                    reason = f"HTTP {resp.status_code}: {resp.text[:200]}"
                    retry_after = parse_retry_after(resp.headers.get("retry-after"))
                elif resp.status_code >= 400:
                    return GenerationResult("", "error", error=f"HTTP {resp.status_code} from {self.url} "
                                                               f"(not retried): {resp.text[:300]}"), None
                else:
                    return self.parse_body(resp.content)
            if attempt == self.max_retries:
                break
            delay = self._delay(attempt, retry_after)
            log.warning("%s: %s; retry %d/%d in %.2fs", self.url, reason, attempt + 1, self.max_retries, delay)
            time.sleep(delay)
        return GenerationResult("", "error", error=f"gave up after {self.max_retries + 1} attempt(s): {reason}"), None

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_retry_after)
        ceiling = min(self.backoff_max, self.backoff_base * (2 ** attempt))
        with self._random_lock:
            return self._random.uniform(ceiling / 2, ceiling)

    @staticmethod
    def parse_response(raw: bytes) -> GenerationResult:
        """A chat completion body -> GenerationResult; never raises."""
        return OpenAIBackend.parse_body(raw)[0]

    @staticmethod
    def parse_body(raw: bytes) -> tuple[GenerationResult, str | None]:
        """(result, the model the reply says answered it, or None)."""
        import json

        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            return GenerationResult("", "error", error=f"malformed JSON response ({exc}): {raw[:200]!r}"), None
        if not isinstance(data, dict):
            return GenerationResult("", "error", error=f"response is not a JSON object: {raw[:200]!r}"), None
        served = data.get("model") if isinstance(data.get("model"), str) else None
        return OpenAIBackend._result_of(data, raw), served

    @staticmethod
    def _result_of(data: dict, raw: bytes) -> GenerationResult:
        usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
        tokens = {"prompt_tokens": _int(usage.get("prompt_tokens")),
                  "completion_tokens": _int(usage.get("completion_tokens"))}
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            detail = data.get("error") or raw[:200]
            return GenerationResult("", "error", error=f"response has no choices: {detail!r}", **tokens)
        choice = choices[0]
        message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
        text = message.get("content")
        if text is None:
            text = ""
        if not isinstance(text, str):
            return GenerationResult("", "error", error=f"message content is {type(text).__name__}, not text",
                                    **tokens)
        server_finish = choice.get("finish_reason")
        finish = _FINISH.get(server_finish)
        if finish is None:
            return GenerationResult("", "error", error=f"finish_reason {server_finish!r} from the server", **tokens)
        return GenerationResult(text, finish, **tokens)


def _int(value) -> int:
    return value if isinstance(value, int) and value >= 0 else 0
