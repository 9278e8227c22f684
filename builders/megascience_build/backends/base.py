"""The backend interface shared by transformers, vLLM, OpenAI-compatible servers and the scripted backend."""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Protocol, Sequence

if TYPE_CHECKING:
    from .identity import ModelIdentity


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 1024
    seed: int = 0
    stop: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, d: dict | None) -> "SamplingParams":
        d = dict(d or {})
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown sampling parameter(s) {sorted(unknown)}; "
                             f"accepted: {sorted(cls.__dataclass_fields__)}")
        if "stop" in d:
            d["stop"] = tuple(d["stop"])
        return cls(**d)


@dataclass(frozen=True)
class GenerationRequest:
    """One chat completion. `sample_index` distinguishes the k samples of one prompt (k=16 for difficulty):
    it is part of the cache key and, with `sampling.seed`, of the sampling seed."""
    messages: tuple[dict, ...]
    sampling: SamplingParams = field(default_factory=SamplingParams)
    sample_index: int = 0

    def cache_key(self, model: "ModelIdentity") -> str:
        """sha256 over the model's resolved identity (weights, dtype, tokenizer, template ...), the sampling
        parameters, the sample index and the rendered messages."""
        payload = {"model": model.digest, "sampling": asdict(self.sampling),
                   "sample_index": self.sample_index, "messages": list(self.messages)}
        blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()


# finish reasons: "stop" (a complete answer), "length" (hit max_tokens: a failure, never an answer),
# "error" (the backend gave up after retries or the response was malformed; `error` says why)
FINISH_REASONS = ("stop", "length", "error")


@dataclass(frozen=True)
class GenerationResult:
    text: str
    finish_reason: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.finish_reason == "stop"


class ModelBackend(Protocol):
    model_id: str
    revision: str
    identity: "ModelIdentity"      # see identity.py: what cache keys and provenance name

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        """Results in request order; never raises for a single bad request (it becomes finish_reason="error")."""
        ...

    def close(self) -> None: ...
