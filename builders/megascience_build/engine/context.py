"""StageContext: what a stage's process(batch, ctx) can use (the contract: engine/stage.py).

ctx.llm(role) returns a CachedGenerator: it looks every request up in the shared cache and sends only the
misses to the backend, through the role's shared request stream (backends/shared_stream.py): one
dispatcher thread per backend that every shard in flight feeds. A backend that can take requests while it
runs (openai keeps `concurrency` requests in flight; transformers' static path gives a freed slot to the next
request) gets the misses of every shard in flight as one continuous stream, so the window stays full across
shards and calls; the others get one call per submission (the transformers plain path answers sub-batch by
sub-batch, vLLM in-process batches with its own scheduler). Answers are committed to the cache as they
arrive, every `batch_size` answers (default 64) or COMMIT_EVERY_S seconds, whichever comes first.
`flow: batch` in the model spec sends batches of `batch_size`, each a call of its own, committed before the
next is sent. Either way a kill loses at most the uncommitted answers, and the stage sees its results in
request order, so its output does not depend on the flow or on how shards interleave. Backends and embedders
are created on first use and kept for the life of the process, so a stage that never calls a model never
loads one; an embedder shared by shards in flight encodes one call at a time.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

from ..backends.base import GenerationRequest, GenerationResult
from ..backends.identity import ModelIdentity, identity_of
from ..backends.shared_stream import SharedStream
from .cache import CacheMissError, RequestCache
from .models import identify_model, make_backend, make_embedder
from .pipeline_config import PipelineConfig, StageSpec
from .stage import StageError

log = logging.getLogger(__name__)
DEFAULT_BATCH_SIZE = 64
COMMIT_EVERY_S = 5.0
CLOSE_WAIT_S = 30.0   # how long closing waits for a backend call in progress (it runs on a daemon thread)


@dataclass
class ModelUsage:
    """Counters for one stage (summed over shards into the manifest)."""
    requests: int = 0
    cache_hits: int = 0           # answered without a backend request of their own: from the cache, or by an
    cache_misses: int = 0         # equal request another shard in flight had sent (backends/shared_stream.py)
    cache_corrupted: int = 0
    tokens_in: int = 0            # over every result the stage used (cached or not)
    tokens_out: int = 0
    backend_tokens_in: int = 0    # over the requests this run actually sent to a backend
    backend_tokens_out: int = 0
    failures: dict[str, int] = field(default_factory=dict)   # finish_reason -> count (not cached)

    def as_dict(self) -> dict[str, Any]:
        return {k: (dict(v) if isinstance(v, dict) else v) for k, v in self.__dict__.items()}


class ModelPool:
    """Backends and embedders of one process, created lazily and shared by every stage that runs there,
    and their identities, resolved without loading weights where the backend can."""

    def __init__(self, config: PipelineConfig):
        self.config = config
        self._backends: dict[str, Any] = {}
        self._embedders: dict[str, Any] = {}
        self._streams: dict[str, SharedStream] = {}
        self._identities: dict[str, ModelIdentity] = {}
        self._lock = threading.RLock()   # shards in flight share this pool: one model per role

    def kind(self, role: str) -> str:
        embedders = {s.embedder_role for s in self.config.stages}
        return "embedding" if role in embedders else "generation"

    def identity(self, role: str) -> ModelIdentity:
        with self._lock:
            if role not in self._identities:
                spec = self.config.models[role]
                ident = identify_model(spec, kind=self.kind(role), role=role)
                if ident is None:    # a custom backend that only knows once it exists
                    made = self.embedder(role) if self.kind(role) == "embedding" else self.backend(role)
                    ident = identity_of(made, str(spec["backend"]))
                self._identities[role] = ident
            return self._identities[role]

    def identities(self) -> dict[str, ModelIdentity]:
        """Every role a stage of the pipeline uses."""
        roles = {r for s in self.config.stages for r in (*s.llm_roles, s.embedder_role) if r}
        return {role: self.identity(role) for role in sorted(roles)}

    def backend(self, role: str):
        with self._lock:
            if role not in self._backends:
                log.info("loading model %s for role %s", self.config.models[role]["model"], role)
                self._backends[role] = self._checked(role, make_backend(self.config.models[role], role=role))
            return self._backends[role]

    def stream(self, role: str) -> SharedStream:
        """The role's shared request stream: one dispatcher thread feeding the backend for every caller."""
        with self._lock:
            if role not in self._streams:
                self._streams[role] = SharedStream(self.backend(role), name=f"model role {role!r}")
            return self._streams[role]

    def embedder(self, role: str):
        with self._lock:
            if role not in self._embedders:
                self._embedders[role] = _OneCallAtATime(
                    self._checked(role, make_embedder(self.config.models[role], role=role)))
            return self._embedders[role]

    def _checked(self, role: str, made):
        """A loaded model must be the one its identity promised (else cached answers would be misfiled)."""
        ident = identity_of(made, str(self.config.models[role]["backend"]))
        expected = self._identities.setdefault(role, ident)
        if expected != ident:
            raise StageError(f"model role {role!r}: the loaded backend reports identity {ident.as_dict()}, "
                             f"but {expected.as_dict()} was resolved before loading")
        return made

    def abort(self, reason: BaseException | str) -> None:
        """End every caller waiting on a shared stream (a shard failed, or the run was interrupted); the
        streams are dropped, so a later call starts a fresh one."""
        with self._lock:
            streams, self._streams = list(self._streams.values()), {}
        for stream in streams:
            stream.abort(reason)
            stream.close(timeout=0)     # the call running stops at its next answer; nobody waits for it

    def close(self) -> None:
        with self._lock:
            streams, self._streams = list(self._streams.values()), {}
        for stream in streams:
            stream.close(timeout=CLOSE_WAIT_S)
        for backend in self._backends.values():
            close = getattr(backend, "close", None)
            if close:
                close()
        self._backends.clear()
        self._embedders.clear()


class _OneCallAtATime:
    """An embedder shared by shards in flight: one encode at a time (models are not made for concurrent
    calls), everything else passed through."""

    def __init__(self, embedder):
        self._embedder = embedder
        self._lock = threading.Lock()

    def encode(self, texts):
        with self._lock:
            return self._embedder.encode(texts)

    def __getattr__(self, name):
        return getattr(self._embedder, name)


class CachedGenerator:
    def __init__(self, *, stage_label: str, role: str, identity: ModelIdentity, batch_size: int,
                 cache: RequestCache, backend_factory: Callable[[], Any], usage: ModelUsage, cache_only: bool,
                 progress: Any = None, flow: str = "continuous",
                 stream_factory: Callable[[], SharedStream] | None = None):
        self.flow = flow
        self._stream_factory = stream_factory   # the role's shared stream; None: call the backend directly
        self.stage_label = stage_label
        self.role = role
        self.identity = identity
        self.model_id = identity.model          # what provenance steps name
        self.revision = identity.revision
        self.batch_size = batch_size
        self._cache = cache
        self._backend_factory = backend_factory
        self._usage = usage
        self._cache_only = cache_only
        self._progress = progress       # optional: .add_total(n) and .update(n), in requests

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        keys = [r.cache_key(self.identity) for r in requests]
        tally: dict = {}
        results: dict[str, GenerationResult] = self._cache.get_many(keys, failures=self._cache_only, tally=tally)
        self._usage.cache_corrupted += tally.get("corrupted", 0)
        hits = sum(1 for k in keys if k in results)
        for key in dict.fromkeys(k for k in keys if k in results and not results[k].ok):   # replayed failures
            self._usage.failures[results[key].finish_reason] = self._usage.failures.get(results[key].finish_reason, 0) + 1
        missing = list(dict.fromkeys(k for k in keys if k not in results))   # one backend call per distinct prompt
        if self._progress is not None:
            self._progress.add_total(len(keys))
            self._progress.update(len(keys) - len(missing))
        if missing and self._cache_only:
            raise CacheMissError(f"stage {self.stage_label!r}: --cache-only, but the request with cache key "
                                 f"{missing[0]} for model {self.identity} (role {self.role!r}) "
                                 f"is not in the cache {self._cache.path} ({len(missing)} missing in this batch)")
        # misses that an equal request of another shard in flight answered (no request of their own)
        answered_elsewhere: set[str] = set()
        if missing:
            by_key = {k: r for k, r in zip(keys, requests)}
            if self._stream_factory is not None:
                shared = self._stream_factory()
                parts = (self._streamed(lambda ks: shared.stream([by_key[k] for k in ks], keys=ks,
                                                                 shared=answered_elsewhere), missing)
                         if self.flow == "continuous" else
                         self._batched(lambda ks: shared.generate([by_key[k] for k in ks], keys=ks, live=False,
                                                                  shared=answered_elsewhere), missing))
            else:
                backend = self._backend_factory()
                stream = getattr(backend, "generate_stream", None) if self.flow == "continuous" else None
                parts = (self._streamed(lambda ks: stream([by_key[k] for k in ks]), missing) if stream else
                         self._batched(lambda ks: backend.generate([by_key[k] for k in ks]), missing))
            for fresh in parts:
                self._cache.put_many(fresh, model=self.model_id, revision=self.identity.revision)
                results.update(fresh)
                if self._progress is not None:
                    self._progress.update(len(fresh))
                for key, res in fresh.items():
                    if key not in answered_elsewhere:
                        self._usage.backend_tokens_in += res.prompt_tokens
                        self._usage.backend_tokens_out += res.completion_tokens
                    if not res.ok:
                        self._usage.failures[res.finish_reason] = self._usage.failures.get(res.finish_reason, 0) + 1
        out = [results[k] for k in keys]
        hits += sum(1 for k in keys if k in answered_elsewhere)
        self._usage.requests += len(keys)
        self._usage.cache_hits += hits
        self._usage.cache_misses += len(keys) - hits
        for res in out:
            self._usage.tokens_in += res.prompt_tokens
            self._usage.tokens_out += res.completion_tokens
        return out


    def _batched(self, generate, missing: list[str]) -> Iterator[dict[str, GenerationResult]]:
        """Batch by batch: each batch's answers (generate(keys) -> results), to commit before the next
        batch is sent."""
        for start in range(0, len(missing), self.batch_size):
            chunk = missing[start:start + self.batch_size]
            answers = generate(chunk)
            if len(answers) != len(chunk):
                raise RuntimeError(f"stage {self.stage_label!r}: backend for {self.model_id} returned "
                                   f"{len(answers)} results for {len(chunk)} requests")
            yield dict(zip(chunk, answers))

    def _streamed(self, stream, missing: list[str]) -> Iterator[dict[str, GenerationResult]]:
        """As answers arrive (in completion order; stream(keys) -> (index, result)): groups of up to
        batch_size, or what arrived within COMMIT_EVERY_S, to commit while the backend keeps working."""
        pending: dict[str, GenerationResult] = {}
        last = time.monotonic()
        seen: set[int] = set()
        try:
            for i, result in stream(missing):
                if not (isinstance(i, int) and 0 <= i < len(missing)) or i in seen:
                    raise RuntimeError(f"stage {self.stage_label!r}: backend for {self.model_id} streamed a result "
                                       f"for request #{i!r} (of {len(missing)}) twice or out of range")
                seen.add(i)
                pending[missing[i]] = result
                if len(pending) >= self.batch_size or time.monotonic() - last >= COMMIT_EVERY_S:
                    yield pending
                    pending, last = {}, time.monotonic()
        except BaseException:   # the answers that did arrive are committed before the failure goes on
            if pending:
                yield pending
            raise
        if pending:
            yield pending
        if len(seen) != len(missing):
            raise RuntimeError(f"stage {self.stage_label!r}: backend for {self.model_id} streamed {len(seen)} "
                               f"results for {len(missing)} requests")


class StageContext:
    """The context of one stage in one process. `usage` collects model counters for the manifest."""

    def __init__(self, config: PipelineConfig, spec: StageSpec, *, cache: RequestCache | None,
                 models: ModelPool, cache_only: bool = False, progress: Any = None):
        self.config = config
        self.spec = spec
        self.seed = config.seed
        self.sampling = spec.sampling
        self.usage = ModelUsage()
        self._cache = cache
        self._models = models
        self._cache_only = cache_only
        self._progress = progress
        self._generators: dict[str, CachedGenerator] = {}

    def llm(self, role: str | None = None) -> CachedGenerator:
        role = role or (self.spec.llm_roles[0] if self.spec.llm_roles else None)
        if role is None or role not in self.spec.llm_roles:
            raise StageError(f"stage {self.spec.label!r} asked for model role {role!r}, but its `llm:` in the "
                             f"pipeline file declares {list(self.spec.llm_roles) or 'none'}")
        if self._cache is None:
            raise StageError(f"stage {self.spec.label!r}: no request cache configured")
        if role not in self._generators:
            spec = self.config.models[role]
            self._generators[role] = CachedGenerator(
                stage_label=self.spec.label, role=role, identity=self._models.identity(role),
                batch_size=int(spec.get("batch_size", DEFAULT_BATCH_SIZE)), flow=str(spec.get("flow", "continuous")),
                cache=self._cache, backend_factory=lambda: self._models.backend(role), usage=self.usage,
                cache_only=self._cache_only, progress=self._progress,
                stream_factory=lambda: self._models.stream(role))
        return self._generators[role]

    def embedder(self, role: str | None = None):
        role = role or self.spec.embedder_role
        if role is None or role != self.spec.embedder_role:
            raise StageError(f"stage {self.spec.label!r} asked for embedder role {role!r}, but its `embedder:` "
                             f"in the pipeline file is {self.spec.embedder_role!r}")
        return self._models.embedder(role)

    def identity(self, role: str | None = None) -> ModelIdentity:
        """The resolved identity of one of this stage's models (default: its embedder, else its first llm)."""
        role = role or self.spec.embedder_role or (self.spec.llm_roles[0] if self.spec.llm_roles else None)
        if role is None or role not in (*self.spec.llm_roles, self.spec.embedder_role):
            raise StageError(f"stage {self.spec.label!r} asked for the identity of model role {role!r}, which "
                             f"its pipeline entry does not use")
        return self._models.identity(role)

    def prompt(self, slot: str):
        try:
            return self.spec.prompts[slot]
        except KeyError:
            raise StageError(f"stage {self.spec.label!r} asked for prompt slot {slot!r}; the pipeline file gives "
                             f"{sorted(self.spec.prompts) or 'none'}") from None
