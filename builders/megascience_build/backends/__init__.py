"""Model backends: one small interface (requests in; text, finish reason and token counts out).

    make_backend({"backend": "transformers", "model": "smollm2", "options": {"max_batch_size": 8}})
    make_embedder({"backend": "sentence-transformers", "model": "minilm"})
    identify({"backend": "transformers", "model": "smollm2"})     # what it would load, without loading it

A spec has `backend`, `model`, optional `revision` and optional `options` (keyword arguments of the
backend class, checked here so a typo fails before any model loads). Heavy libraries (torch, transformers,
vllm, httpx) are imported only by the backend that needs them.
"""
from __future__ import annotations

import importlib
import inspect

from .base import GenerationRequest, GenerationResult, ModelBackend, SamplingParams  # noqa: F401
from .identity import ModelIdentity, identity_of

GENERATION_BACKENDS = {
    "transformers": ("transformers_backend", "TransformersBackend"),
    "vllm": ("vllm_backend", "VLLMBackend"),
    "openai": ("openai_backend", "OpenAIBackend"),
    "scripted": ("scripted", "ScriptedBackend"),
}
EMBEDDING_BACKENDS = {
    "sentence-transformers": ("embeddings", "SentenceTransformerEmbedder"),
}
_SPEC_KEYS = {"backend", "model", "revision", "options"}


def _resolve(spec: dict, table: dict[str, tuple[str, str]], what: str):
    """(backend class, constructor arguments) for a spec, checked."""
    if not isinstance(spec, dict):
        raise ValueError(f"{what} spec must be a mapping with 'backend' and 'model', got {spec!r}")
    unknown = set(spec) - _SPEC_KEYS
    if unknown:
        raise ValueError(f"{what} spec has unknown key(s) {sorted(unknown)}; accepted: {sorted(_SPEC_KEYS)} "
                         f"(backend-specific settings go under 'options')")
    name = spec.get("backend")
    if name not in table:
        raise ValueError(f"unknown {what} backend {name!r}; choices: {', '.join(sorted(table))}")
    if not spec.get("model") and name != "scripted":
        raise ValueError(f"{what} spec for backend {name!r} has no 'model'")
    options = dict(spec.get("options") or {})
    module_name, class_name = table[name]
    cls = getattr(importlib.import_module(f"{__name__}.{module_name}"), class_name)
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "model", "revision")]
    bad = set(options) - set(accepted)
    if bad:
        raise ValueError(f"{what} backend {name!r}: unknown option(s) {sorted(bad)}; accepted: {sorted(accepted)}")
    args = {"model": spec["model"]} if spec.get("model") else {}
    if spec.get("revision") is not None:
        args["revision"] = str(spec["revision"])
    return cls, {**args, **options}


def _build(spec: dict, table: dict[str, tuple[str, str]], what: str):
    cls, args = _resolve(spec, table, what)
    return cls(**args)


def identify(spec: dict, kind: str = "generation") -> ModelIdentity:
    """The resolved identity a spec would load, without loading weights (a backend class without an
    `identify` classmethod, like the scripted one, is cheap to construct and is asked directly)."""
    table, what = (GENERATION_BACKENDS, "generation") if kind == "generation" else (EMBEDDING_BACKENDS, "embedding")
    cls, args = _resolve(spec, table, what)
    if hasattr(cls, "identify"):
        return cls.identify(**args)
    return identity_of(cls(**args), str(spec["backend"]))


def make_backend(spec: dict) -> ModelBackend:
    """A generation backend from a pipeline `models:` entry."""
    return _build(spec, GENERATION_BACKENDS, "generation")


def make_embedder(spec: dict):
    """An embedder (.encode(list[str]) -> L2-normalised float32 array, .model_id, .revision, .dim)."""
    return _build(spec, EMBEDDING_BACKENDS, "embedding")
