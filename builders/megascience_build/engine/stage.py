"""The stage contract.

A stage is a small class registered under a name. It declares the columns it reads and writes and the
resources it needs, and transforms a batch (a pyarrow table) into the rows it keeps plus the rows it drops,
each drop with a reason. It never mutates its input and never does I/O beyond its model calls, which go
through `ctx` (and therefore through the shared request cache).

kind = "map":    process(batch) is applied to each batch of each shard independently, in any order.
kind = "global": process(table) sees every row of the stage's input at once (deduplication, selection).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping, Sequence

import pyarrow as pa

from .records import ID, PROVENANCE


@dataclass(frozen=True)
class Resources:
    """What a stage needs: GPUs per replica, and the model roles (keys of the pipeline's `models:`)."""
    gpus: float = 0.0
    llm: str | None = None          # role of a generation model, e.g. "extractor"
    embedder: str | None = None     # role of an embedding model


@dataclass
class StageOutput:
    kept: pa.Table
    # (row position in the input batch, reason) for every row that is not in `kept`
    dropped: list[tuple[int, str]] = field(default_factory=list)
    # per-row extra counters for the manifest, e.g. {"unparseable_judgement": 3}
    counters: dict[str, int] = field(default_factory=dict)


class StageError(ValueError):
    """A configuration or input problem found before work starts; the message names stage and field."""


_REGISTRY: dict[str, type["Stage"]] = {}


def register(cls: type["Stage"]) -> type["Stage"]:
    if not getattr(cls, "name", None):
        raise TypeError(f"{cls.__qualname__} has no `name`")
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise TypeError(f"stage name {cls.name!r} registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def stage_class(name: str) -> type["Stage"]:
    from .. import stages as _  # noqa: F401  (importing the package registers every stage)
    try:
        return _REGISTRY[name]
    except KeyError:
        raise StageError(f"unknown stage {name!r}; known stages: {', '.join(sorted(_REGISTRY))}") from None


class Stage:
    name: ClassVar[str] = ""
    kind: ClassVar[str] = "map"
    inputs: ClassVar[tuple[str, ...]] = (ID, PROVENANCE)
    outputs: ClassVar[tuple[str, ...]] = ()
    # parameter names and defaults this stage accepts from the pipeline file
    defaults: ClassVar[Mapping[str, Any]] = {}
    # optional: prompt slots the pipeline file must fill (checked before any work)
    prompt_slots: ClassVar[tuple[str, ...]] = ()

    def __init__(self, params: Mapping[str, Any] | None = None, *, resources: Resources | None = None,
                 prompts: Mapping[str, str] | None = None, label: str | None = None):
        params = dict(params or {})
        unknown = set(params) - set(self.defaults)
        if unknown:
            raise StageError(f"stage {label or self.name!r}: unknown parameter(s) {sorted(unknown)}; "
                             f"accepted: {sorted(self.defaults)}")
        self.params = {**self.defaults, **params}
        self.resources = resources or Resources()
        self.prompts = dict(prompts or {})   # prompt slot -> template file name
        self.label = label or self.name

    # -- the work ---------------------------------------------------------------------------
    def process(self, batch: pa.Table, ctx: "StageContextProtocol") -> StageOutput:
        raise NotImplementedError

    # -- checks before any work ---------------------------------------------------------------
    def check_schema(self, schema: pa.Schema) -> None:
        missing = [c for c in self.inputs if c not in schema.names]
        if missing:
            raise StageError(f"stage {self.label!r} needs input column(s) {missing}, "
                             f"but its input has only {schema.names}")

    def output_columns(self, input_names: Sequence[str]) -> list[str]:
        return list(dict.fromkeys([*input_names, *self.outputs]))

    def preflight(self) -> None:
        """Checks that read files (a registry's benchmarks, ...), run before any stage of the pipeline does
        work and before anything is written to the work directory; raise StageError naming what is wrong."""

    def side_inputs(self) -> Any:
        """The content (sha256s, commits) of what this stage reads besides its input rows and models, such as
        a registry or benchmark files: part of its shard fingerprint, so an edited file recomputes the
        stage. JSON-serialisable; None when the stage reads nothing else."""
        return None

    def describe(self) -> dict[str, Any]:
        """What goes into the manifest: stage type, parameters, resources."""
        return {"stage": self.name, "label": self.label, "kind": self.kind, "params": self.params,
                "resources": {"gpus": self.resources.gpus, "llm": self.resources.llm,
                              "embedder": self.resources.embedder},
                "prompts": self.prompts}


class StageContextProtocol:
    """What the executor hands to a stage (see engine.context.StageContext for the implementation)."""

    def llm(self, role: str): ...            # -> CachedGenerator with .generate(requests) -> results
    def embedder(self, role: str): ...       # -> object with .encode(texts) -> np.ndarray (normalised)
    def prompt(self, slot: str): ...         # -> PromptTemplate for this stage's prompt slot
    seed: int
