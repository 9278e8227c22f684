"""Create model backends and embedders from a pipeline's model spec.

`backend:` is either a name that megascience_build.backends.make_backend / make_embedder understands
(transformers, vllm, openai, scripted; sentence-transformers) or an import path "package.module:factory"
for a backend of your own (the factory is called with the whole spec dict and returns a ModelBackend or an
object with .encode(texts)). Named backends get {backend, model, revision, options}; `batch_size` is the
engine's own setting. The engine never imports a backend until a stage first asks for its model.

Identity (backends/identity.py): `identify_model` gives what a spec would load without loading it. A custom
factory may offer the same as a `factory.identify(spec)` attribute; otherwise the backend is created and its
`.identity` (or `.model_id` and `.revision`) is used.
"""
from __future__ import annotations

import importlib
import inspect
from typing import Any, Mapping

from .stage import StageError


def _from_import_path(target: str, what: str):
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
        return getattr(module, attr)
    except (ImportError, AttributeError) as exc:
        raise StageError(f"{what}: cannot import backend factory {target!r} ({exc})") from None


BACKEND_SPEC_KEYS = ("backend", "model", "revision", "options")


def _backend_table(kind: str) -> dict[str, tuple[str, str]]:
    from .. import backends
    return backends.GENERATION_BACKENDS if kind == "generation" else backends.EMBEDDING_BACKENDS


def check_model_spec(role: str, spec: Mapping[str, Any], kind: str, where: str) -> None:
    """Before any work: the backend exists for this kind of model and accepts the spec's options.
    Imports the backend's module (light: heavy libraries load only when a model is created)."""
    name = str(spec["backend"])
    at = f"{where}: model role {role!r}"
    if ":" in name:
        if not callable(_from_import_path(name, at)):
            raise StageError(f"{at}: backend {name!r} is not callable")
        return
    table = _backend_table(kind)
    if name not in table:
        raise StageError(f"{at}: unknown {kind} backend {name!r}; choices: {', '.join(sorted(table))} "
                         f"or an import path 'package.module:factory'")
    module_name, class_name = table[name]
    cls = getattr(importlib.import_module(f"megascience_build.backends.{module_name}"), class_name)
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self", "model", "revision"}
    bad = set(spec.get("options") or {}) - accepted
    if bad:
        raise StageError(f"{at}: field 'options': backend {name!r} does not accept {sorted(bad)}; "
                         f"accepted: {sorted(accepted)}")


def _backend_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    return {k: spec[k] for k in BACKEND_SPEC_KEYS if k in spec}


def make_backend(spec: Mapping[str, Any], *, role: str = "?"):
    name = str(spec["backend"])
    if ":" in name:
        return _from_import_path(name, f"model role {role!r}")(dict(spec))
    from ..backends import make_backend as factory
    return factory(_backend_spec(spec))


def identify_model(spec: Mapping[str, Any], *, kind: str, role: str = "?"):
    """A ModelIdentity, or None for a custom factory that can only say once its backend exists."""
    name = str(spec["backend"])
    if ":" in name:
        factory = _from_import_path(name, f"model role {role!r}")
        identify = getattr(factory, "identify", None)
        return identify(dict(spec)) if identify else None
    from ..backends import identify
    try:
        return identify(_backend_spec(spec), kind)
    except (ValueError, OSError) as exc:
        raise StageError(f"model role {role!r} ({name} {spec.get('model')}): {exc}") from None


def make_embedder(spec: Mapping[str, Any], *, role: str = "?"):
    name = str(spec["backend"])
    if ":" in name:
        return _from_import_path(name, f"embedder role {role!r}")(dict(spec))
    from ..backends import make_embedder as factory
    return factory(_backend_spec(spec))
