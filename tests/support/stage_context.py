"""A real engine StageContext for unit tests of one stage, without a pipeline file or an executor.

    ctx = stage_context(stage, responder=lambda req: "Decision: NO", tmp_path=tmp_path)
    out = stage.process(batch, ctx)
    ctx.usage.cache_hits, ctx.usage.requests       # the counters the manifest would get

Every ctx.llm(role) is the engine's CachedGenerator in front of a real RequestCache (an SQLite file), so a
test sees the cache keys, the de-duplication of identical prompts and the hit/miss counts of production.
A model is one of:
  - a callable responder (request -> str | (text, finish_reason) | GenerationResult): the scripted backend,
    made by the engine's ModelPool from a `models:` spec, as a pipeline file would name it;
  - a `models:` spec mapping ({"backend": "scripted", "model": ..., "options": {"rules": [...]}});
  - an object with `generate(requests)` (support.models.RecordingModel, or a real model loaded once per session),
    used as the role's backend as is.
Embedders are an object with `encode(texts)` or a spec mapping. The role None is the stage's own role
(its `resources.llm` / `resources.embedder`, else "model" / "embedder").
"""
from __future__ import annotations

import hashlib
import itertools
import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping

from megascience_build.backends.base import SamplingParams
from megascience_build.backends.identity import identity_of
from megascience_build.engine.cache import RequestCache
from megascience_build.engine.context import ModelPool, StageContext
from megascience_build.engine.pipeline_config import InputSpec, PipelineConfig, StageSpec
from megascience_build.engine.prompts import PromptTemplate, load_prompt
from megascience_build.engine.stage import Stage

GIVEN_BACKEND = "test"          # the backend name recorded for a model given as an object
_numbers = itertools.count()
_scratch: tempfile.TemporaryDirectory | None = None


class GivenModels(ModelPool):
    """The engine's ModelPool, except that some roles' models are given objects instead of being made from
    their spec; the pool's identity check on first use still applies to them."""

    def __init__(self, config: PipelineConfig, given: Mapping[str, Any]):
        super().__init__(config)
        self.given = dict(given)

    def identity(self, role: str):
        if role in self.given and role not in self._identities:
            self._identities[role] = identity_of(self.given[role], GIVEN_BACKEND)
        return super().identity(role)

    def backend(self, role: str):
        if role in self.given and role not in self._backends:
            self._backends[role] = self._checked(role, self.given[role])
        return super().backend(role)

    def embedder(self, role: str):
        if role in self.given and role not in self._embedders:
            self._embedders[role] = self._checked(role, self.given[role])
        return super().embedder(role)


def scripted_spec(responder: Callable, model: str = "scripted/test", revision: str = "1") -> dict:
    """The `models:` entry of a scripted backend answering with `responder`."""
    return {"backend": "scripted", "model": model, "revision": revision, "options": {"responder": responder}}


def _model_spec(model: Any, given: dict, role: str) -> dict:
    if isinstance(model, Mapping):
        return dict(model)
    if callable(model) and not hasattr(type(model), "generate"):
        return scripted_spec(model)
    # looked at through its type only: a double may fail on any attribute read ("must not be touched")
    given[role] = model
    return {"backend": GIVEN_BACKEND, "model": type(model).__name__}


def _prompt(file: str | Path | PromptTemplate) -> PromptTemplate:
    return file if isinstance(file, PromptTemplate) else load_prompt(file)


def _cache_file(tmp_path: Path | None) -> Path:
    """A fresh cache file per context (tests that want one shared cache pass `cache=`)."""
    global _scratch
    if tmp_path is None:
        if _scratch is None:          # removed when the test process exits
            _scratch = tempfile.TemporaryDirectory(prefix="stage-context-")
        tmp_path = Path(_scratch.name)
    return Path(tmp_path) / "request-cache" / f"{next(_numbers)}.sqlite"


def stage_context(stage: Stage | None = None, *, responder: Callable | None = None,
                  models: Mapping[str | None, Any] | None = None, embedder: Any = None,
                  prompts: Mapping[str, str | Path | PromptTemplate] | None = None,
                  sampling: SamplingParams | None = None, seed: int = 0, tmp_path: Path | None = None,
                  cache: RequestCache | str | Path | None = None, cache_only: bool = False,
                  llm_role: str | None = None) -> StageContext:
    """The StageContext an executor would hand to `stage` (a bare Stage when None).

    responder   shorthand for models={None: responder}
    models      role -> model (see the module docstring); None is the stage's own generation role
    embedder    the embedding model of the stage's embedder role
    prompts     slot -> prompt file name, path or template, over the files the stage was given, over the
                stage class's `default_prompts` (all of them: a pipeline file gets the required slots' defaults)
    sampling    the stage's sampling parameters (default: the engine's, seeded with `seed`)
    tmp_path    where the request cache file goes (default: a temporary folder of the test process)
    cache       a RequestCache, or its path, to share between contexts (a rerun sees cache hits)
    llm_role    the stage's own generation role, ctx.llm()'s default (else resources.llm, else "model")
    """
    stage = stage if stage is not None else Stage(label="test_stage")
    own_llm = llm_role or stage.resources.llm or "model"
    own_embedder = stage.resources.embedder or "embedder"
    models = dict(models or {})
    if responder is not None:
        models[None] = responder
    given: dict[str, Any] = {}
    specs: dict[str, dict] = {}
    llm_roles = []
    for role, model in models.items():
        name = role or own_llm
        specs[name] = _model_spec(model, given, name)
        llm_roles.append(name)
    llm_roles.sort(key=lambda r: r != own_llm)          # the stage's own role first: ctx.llm()'s default
    if embedder is not None:
        specs[own_embedder] = _model_spec(embedder, given, own_embedder)
    files = {**(getattr(type(stage), "default_prompts", None) or {}), **stage.prompts, **(prompts or {})}
    spec = StageSpec(index=0, stage=stage, llm_roles=tuple(llm_roles),
                     embedder_role=own_embedder if embedder is not None else None,
                     sampling=sampling or SamplingParams(seed=seed),
                     prompts={slot: _prompt(file) for slot, file in files.items()})
    config = PipelineConfig(path=Path(f"<test of stage {stage.label}>"), sha256=hashlib.sha256(b"").hexdigest(),
                            name=f"test_{stage.label}", seed=seed, input=InputSpec("files", ("<none>",)),
                            models=specs, stages=[spec])
    if not isinstance(cache, RequestCache):
        cache = RequestCache(cache or _cache_file(tmp_path))
    return StageContext(config, spec, cache=cache, models=GivenModels(config, given), cache_only=cache_only)
