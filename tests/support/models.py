"""A recording test model: the one double behind every area's scripted models (a stage context puts the
engine's request cache in front of it, so it sees only the requests the cache does not answer)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from megascience_build.backends.base import GenerationRequest, GenerationResult


def as_result(reply: Any, prompt_tokens: int = 0) -> GenerationResult:
    """A reply as a result: a GenerationResult as is, a (text, finish_reason) pair, or a str (a complete
    answer of as many tokens as words, at least one)."""
    if isinstance(reply, GenerationResult):
        return reply
    text, finish = reply if isinstance(reply, tuple) else (reply, "stop")
    return GenerationResult(text, finish, prompt_tokens, max(1, len(text.split())))


@dataclass
class RecordingModel:
    """A backend answering each request with reply(request) (see as_result); `calls` lists every request
    that reached it, in order."""
    reply: Callable[[GenerationRequest], Any]
    model_id: str = "scripted/test"
    revision: str = "1"
    prompt_tokens: int = 0           # reported with every str or pair answer
    calls: list[GenerationRequest] = field(default_factory=list)

    def generate(self, requests):
        self.calls.extend(requests)
        return [as_result(self.reply(r), self.prompt_tokens) for r in requests]
