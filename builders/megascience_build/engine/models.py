"""Create model backends and embedders from a pipeline's model spec.

`backend:` is either a name that megascience_build.backends.make_backend / make_embedder understands
(transformers, vllm, openai, scripted, sentence-transformers, ...) or an import path "package.module:factory"
for a backend of your own (the factory is called with the spec dict and returns a ModelBackend or an
object with .encode(texts)). The engine never imports a backend until a stage first asks for its model.
"""
from __future__ import annotations

import importlib
from typing import Any, Mapping

from .stage import StageError


def _from_import_path(target: str, what: str):
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
        return getattr(module, attr)
    except (ImportError, AttributeError) as exc:
        raise StageError(f"{what}: cannot import backend factory {target!r} ({exc})") from None


def make_backend(spec: Mapping[str, Any], *, role: str = "?"):
    name = str(spec["backend"])
    if ":" in name:
        return _from_import_path(name, f"model role {role!r}")(dict(spec))
    try:
        from ..backends import make_backend as factory  # provided by the backends package
    except ImportError:
        raise StageError(f"model role {role!r}: backend {name!r} needs megascience_build.backends.make_backend, "
                         f"which this installation does not provide") from None
    return factory(dict(spec))


def make_embedder(spec: Mapping[str, Any], *, role: str = "?"):
    name = str(spec["backend"])
    if ":" in name:
        return _from_import_path(name, f"embedder role {role!r}")(dict(spec))
    try:
        from ..backends import make_embedder as factory
    except ImportError:
        raise StageError(f"embedder role {role!r}: backend {name!r} needs megascience_build.backends.make_embedder, "
                         f"which this installation does not provide") from None
    return factory(dict(spec))
