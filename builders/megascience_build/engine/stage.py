"""The stage contract.

A stage is a small class listed by name in stages/catalogue.py (or in a plugin module's `STAGES`). It declares
the columns it reads and writes, its parameters (a frozen dataclass, see engine/params.py) and the resources
it needs, and transforms a batch (a pyarrow table) into the rows it keeps plus the rows it drops, each drop
with a reason. It never mutates its input and never does I/O beyond its model calls, which go through `ctx`
(and therefore through the shared request cache). Stages that ask a generation model derive from
engine/llm_stage.py's LLMStage.

kind = "map":    process(batch) is applied to each batch of each shard independently, in any order.
kind = "global": process(table) sees every row of the stage's input at once (deduplication, selection).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping, Sequence

import pyarrow as pa

from .params import NoParams, ParamError, params_dict, parse_params
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


def stage_class(name: str, plugins: Sequence[Any] = ()) -> type["Stage"]:
    """The stage class for a `stage:` name: the built-in catalogue (stages/catalogue.py), then the `STAGES` of
    the given plugin modules."""
    from ..stages.catalogue import find_stage
    return find_stage(name, plugins)


class Stage:
    name: ClassVar[str] = ""
    kind: ClassVar[str] = "map"
    inputs: ClassVar[tuple[str, ...]] = (ID, PROVENANCE)
    outputs: ClassVar[tuple[str, ...]] = ()
    # the parameters this stage accepts from the pipeline file: a frozen dataclass (engine/params.py)
    Params: ClassVar[type] = NoParams
    # optional: prompt slots the pipeline file must fill (checked before any work)
    prompt_slots: ClassVar[tuple[str, ...]] = ()
    # one line for `megascience-build stages` and the README's stage table
    summary: ClassVar[str] = ""

    def __init__(self, params: Mapping[str, Any] | None = None, *, resources: Resources | None = None,
                 prompts: Mapping[str, str] | None = None, label: str | None = None):
        self.label = label or self.name
        try:
            self.settings = parse_params(self.Params, params, self.label)   # the typed parameters
        except ParamError as exc:
            raise StageError(str(exc)) from None
        self.resources = resources or Resources()
        self.prompts = dict(prompts or {})   # prompt slot -> template file name

    @property
    def params(self) -> dict[str, Any]:
        """The parameters by name (defaults filled in), as the manifest and the fingerprint record them."""
        return params_dict(self.settings)

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
