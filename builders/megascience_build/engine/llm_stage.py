"""LLMStage: the base of every stage that asks a generation model.

It owns what every such stage does the same way:
  requests   `ask(ctx, slot, fields)` renders one request per dict of prompt fields from the stage's prompt
             slot and sends them through ctx.llm(role).generate (the cached generator: cache look-up, backend,
             usage counters);
  failures   `failure(result)`: None for a complete answer, else the drop reason `generation_<finish_reason>`
             (a reply cut off at max_tokens, "length", is a failure, never an answer);
  outcomes   `Outcome`: per input row, dropped with a reason or kept with new column values and signals, plus
             the counters; `finish` turns it into the StageOutput (kept rows in input order, the new columns,
             the provenance step with each row's signals);
  provenance `step(ctx, llm, slot, **extra)`: stage label, model, revision, prompt name and sha256.

A subclass names its prompt slots and their default files once, in `default_prompts` (slot -> file in
megascience_build/prompts/); its required `prompt_slots` are all of them unless it says otherwise.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping, Sequence

import pyarrow as pa

from ..backends.base import GenerationRequest, GenerationResult
from . import records
from .stage import Stage, StageOutput


@dataclass
class Outcome:
    """What a stage decided for the rows of one batch."""
    dropped: list[tuple[int, str]] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)
    values: dict[int, dict[str, Any]] = field(default_factory=dict)     # row -> new column values
    signals: dict[int, dict[str, Any] | None] = field(default_factory=dict)

    def count(self, key: str, n: int = 1) -> None:
        self.counters[key] = self.counters.get(key, 0) + n

    def drop(self, row: int, reason: str, counter: str | None = None) -> None:
        """Drop a row with a reason; `counter` (if given) is bumped too."""
        self.dropped.append((row, reason))
        if counter:
            self.count(counter)

    def keep(self, row: int, signals: Mapping[str, Any] | None = None, **columns: Any) -> None:
        """Keep a row (the default for a row never dropped) with new column values and its step's signals."""
        self.values.setdefault(row, {}).update(columns)
        if signals is not None:
            self.signals[row] = dict(signals)


class LLMStage(Stage):
    default_prompts: ClassVar[Mapping[str, str]] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "prompt_slots" not in cls.__dict__:
            cls.prompt_slots = tuple(cls.default_prompts)

    # -- requests ------------------------------------------------------------------------------------
    @staticmethod
    def request(ctx, slot: str, sampling=None, **fields: Any) -> GenerationRequest:
        return GenerationRequest(messages=ctx.prompt(slot).render(**fields), sampling=sampling or ctx.sampling)

    def ask(self, ctx, slot: str, fields: Sequence[Mapping[str, Any]], *, llm=None, sampling=None
            ) -> list[GenerationResult]:
        """One request per dict of prompt fields, sent through `llm` (default: the stage's first role); no
        call at all when there is nothing to ask."""
        llm = llm or ctx.llm()
        if not fields:
            return []
        return llm.generate([self.request(ctx, slot, sampling, **f) for f in fields])

    @staticmethod
    def failure(result: GenerationResult) -> str | None:
        """None for a complete answer; otherwise the drop reason `generation_<finish_reason>`."""
        return None if result.finish_reason == "stop" else f"generation_{result.finish_reason}"

    # -- provenance ----------------------------------------------------------------------------------
    @staticmethod
    def model_ref(llm, key: str = "") -> dict[str, Any]:
        return {f"{key}model": getattr(llm, "model_id", None), f"{key}revision": getattr(llm, "revision", None)}

    @staticmethod
    def prompt_ref(ctx, slot: str, key: str = "prompt") -> dict[str, str]:
        tmpl = ctx.prompt(slot)
        return {key: tmpl.name, f"{key}_sha256": tmpl.sha256}

    def step(self, ctx, llm, slot: str, **extra: Any) -> dict[str, Any]:
        """The provenance step: stage, model, revision, prompt and its sha256, then `extra`."""
        return {"stage": self.label, **self.model_ref(llm), **self.prompt_ref(ctx, slot), **extra}

    # -- output --------------------------------------------------------------------------------------
    def finish(self, batch: pa.Table, outcome: Outcome, step: Mapping[str, Any] | None,
               columns: Mapping[str, pa.DataType] = {}, *, step_when_empty: bool = False,
               take: bool = True) -> StageOutput:
        """The rows not dropped, in input order, with the `columns` set from the outcome's values (a row
        without a value keeps its own), and the step appended with each row's signals (only when a row is
        kept, unless `step_when_empty`). `take=False`: a stage that never drops works on the batch itself."""
        gone = {i for i, _ in outcome.dropped}
        keep = [i for i in range(batch.num_rows) if i not in gone]
        kept = batch.take(pa.array(keep, pa.int64())) if take else batch
        for name, type_ in columns.items():
            own = kept.column(name).to_pylist() if name in kept.column_names else [None] * len(keep)
            values = [outcome.values.get(i, {}).get(name, mine) for i, mine in zip(keep, own)]
            kept = records.set_column(kept, name, pa.array(values, type_))
        if step is not None and (keep or step_when_empty):
            kept = records.add_step(kept, step, [outcome.signals.get(i) for i in keep])
        return StageOutput(kept=kept, dropped=sorted(outcome.dropped), counters=outcome.counters)
