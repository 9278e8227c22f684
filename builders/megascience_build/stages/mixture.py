"""Selection subsets as columns, subset filtering, and the MegaScience mixture.

select_subsets (global): the paper's protocol on one pool (selection.table3_subsets, plus optionally the
    hardest-questions subset of Table 11). Adds one boolean membership column per subset
    (selected_difficulty, selected_length, selected_random, selected_difficulty_distill), so every Table 3
    configuration is a filter on this stage's output. Rule parameters and seed are the stage's params (in
    the manifest), subset sizes its counters, and each row's provenance lists the subsets it is in;
    verified_subset_records() recomputes the subsets from the stored signals and checks the columns.
keep_subset (map): keeps the rows of one membership column (dropped rows: "not_selected").
mixture (global): TextbookReasoning in full + NaturalReasoning random subset + Nemotron-Science difficulty
    subset (each annotated), with a `source` column; released columns plus id and provenance, rows ordered
    by source then id.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..selection import subsets as sel
from ..engine import records
from ..engine.params import param
from ..engine.stage import Stage, StageError, StageOutput
from ..upstream.adapters import SOURCE_TEXTBOOK, SOURCES

SUBSET_COLUMNS = {"difficulty": "selected_difficulty", "length": "selected_length", "random": "selected_random",
                  "difficulty_distill": "selected_difficulty_distill"}
SUBSET_COLUMN_NAMES = tuple(sorted(SUBSET_COLUMNS.values()))
MIXTURE_COLUMNS = (records.ID, "question", "answer", "subject", "reference_answer", "source", records.PROVENANCE)
SOURCE_ORDER = (SOURCE_TEXTBOOK, *(s.source_value for s in SOURCES.values()))


class SelectSubsets(Stage):
    name = "select_subsets"
    summary = "the paper's difficulty, length and random subsets of a pool as membership columns (paper §3.3)"
    kind = "global"
    inputs = (records.ID, records.PROVENANCE, sel.DIFFICULTY, sel.LENGTH, sel.LENGTH_EXCLUDED, sel.RANDOM)
    outputs = tuple(SUBSET_COLUMNS.values())

    @dataclass(frozen=True)
    class Params:
        parent: str | None = param(None, "the pool's configuration name (required); subsets are "
                                         "<parent>_difficulty, ...")
        low: float = param(1.0, "difficulty subset: grades above this bound")
        high: float = param(9.0, "difficulty subset: grades below this bound")
        strict: bool = param(True, "the bounds are exclusive (the authors' code) or inclusive (the paper's wording)")
        seed: int | None = param(None, "seed of the random subset (null: the pipeline seed)")
        distill_below: float | None = param(None, "also mark the hardest questions, mean grade below this "
                                                  "(selected_difficulty_distill)")

        def __post_init__(self):
            if not self.parent:
                raise ValueError("parameter 'parent' (the pool's configuration name) is required")

    def __init__(self, params=None, **kw):
        super().__init__(params, **kw)
        try:
            self.bounds = sel.DifficultyBounds(float(self.settings.low), float(self.settings.high),
                                               bool(self.settings.strict))
        except sel.SelectionError as exc:
            raise StageError(f"stage {self.label!r}: {exc}") from None

    def output_columns(self, input_names):
        cols = [c for c in self.outputs if c != SUBSET_COLUMNS["difficulty_distill"] or self.settings.distill_below is not None]
        return list(dict.fromkeys([*input_names, *cols]))

    def plan(self, seed: int) -> sel.PoolPlan:
        return sel.PoolPlan(self.settings.parent, self.bounds, seed, distill_below=self.settings.distill_below)

    def process(self, batch: pa.Table, ctx) -> StageOutput:
        seed = ctx.seed if self.settings.seed is None else int(self.settings.seed)
        subsets = sel.all_subsets({self.settings.parent: batch}, [self.plan(seed)])
        table = batch
        member_of: list[list[str]] = [[] for _ in range(batch.num_rows)]
        for subset in subsets:
            table = records.set_column(table, column_of(subset, self.settings.parent),
                                       pa.array(_mask(subset, batch.num_rows), pa.bool_()))
            for pos in subset.positions.tolist():
                member_of[pos].append(subset.name)
        # every row records the subsets it belongs to; rule, parameters and seed are the stage's params
        table = records.add_step(table, {"stage": self.label, "parent": self.settings.parent, "seed": seed,
                                         **self.bounds.as_dict()},
                                 [{"subsets": names} for names in member_of])
        return StageOutput(kept=table, counters={f"{s.name}_rows": s.n for s in subsets})


def column_of(subset: sel.Subset, parent: str) -> str:
    return SUBSET_COLUMNS[subset.name[len(parent) + 1:]]


def _mask(subset: sel.Subset, rows: int) -> np.ndarray:
    mask = np.zeros(rows, dtype=bool)
    mask[subset.positions] = True
    return mask


def verified_subset_records(table: pa.Table, plan: sel.PoolPlan) -> list[dict]:
    """Recompute the subsets of a select_subsets output from its stored signals and check that its
    membership columns agree; returns the subset records (rule, parameters, seed, rows, ids digest).
    A release calls this so that every published subset is known to be reproducible."""
    records_out = []
    for subset in sel.all_subsets({plan.parent: table}, [plan]):
        column = column_of(subset, plan.parent)
        if column not in table.column_names:
            raise sel.SelectionError(f"subset {subset.name!r}: the table has no membership column {column!r}")
        stored = np.flatnonzero(table.column(column).fill_null(False).to_numpy(zero_copy_only=False))
        if not np.array_equal(stored, subset.positions):
            raise sel.SelectionError(f"subset {subset.name!r}: column {column!r} marks {stored.size} rows, but "
                                     f"recomputing from the stored signals gives {subset.n} (or other rows)")
        records_out.append({**subset.record(table), "column": column})
    return records_out


class KeepSubset(Stage):
    name = "keep_subset"
    summary = "keep the rows of one membership column (others: not_selected)"
    kind = "map"
    inputs = (records.ID, records.PROVENANCE)

    @dataclass(frozen=True)
    class Params:
        column: Literal[SUBSET_COLUMN_NAMES] | None = param(None, "the membership column (required)")

        def __post_init__(self):
            if self.column is None:
                raise ValueError(f"parameter 'column' must be one of {list(SUBSET_COLUMN_NAMES)}, got None")

    def check_schema(self, schema: pa.Schema) -> None:
        super().check_schema(schema)
        if self.settings.column not in schema.names:
            raise StageError(f"stage {self.label!r} keeps rows by column {self.settings.column!r}, "
                             f"which its input lacks (run select_subsets first); columns: {schema.names}")

    def process(self, batch: pa.Table, ctx) -> StageOutput:
        self.check_schema(batch.schema)
        member = batch.column(self.settings.column).fill_null(False)
        keep = pc.filter(pa.array(range(batch.num_rows), pa.int64()), member)
        dropped = [(i, "not_selected") for i, m in enumerate(member.to_pylist()) if not m]
        return StageOutput(kept=batch.take(keep), dropped=dropped)


def source_of(provenance: str, repo_sources: dict[str, str]) -> str | None:
    origin = records.origin_of(provenance)
    if origin.get("kind") == "book":
        return SOURCE_TEXTBOOK
    return repo_sources.get(origin.get("repo")) if origin.get("kind") == "dataset" else None


class Mixture(Stage):
    name = "mixture"
    summary = "TextbookReasoning + NaturalReasoning random + Nemotron-Science difficulty subsets, with `source`"
    kind = "global"
    inputs = (records.ID, records.PROVENANCE, "question", "answer", "subject", "reference_answer")
    outputs = ("source",)

    @dataclass(frozen=True)
    class Params:
        sources: list[str] = param([SOURCE_TEXTBOOK, SOURCES["natural_reasoning"].source_value,
                                    SOURCES["nemotron_science"].source_value], "the sources the mixture takes")
        expect: dict[str, int] | None = param(None, "rows per source the mixture must contain (null: no check)")

    def output_columns(self, input_names):
        return list(MIXTURE_COLUMNS)

    def process(self, batch: pa.Table, ctx) -> StageOutput:
        allowed = list(self.settings.sources)
        repo_sources = {s.repo: s.source_value for s in SOURCES.values()}
        given = batch.column("source").to_pylist() if "source" in batch.column_names else [None] * batch.num_rows
        provs = batch.column(records.PROVENANCE).to_pylist()
        ids = batch.column(records.ID).to_pylist()
        sources, dropped, seen = [], [], set()
        for i, (src, prov, row_id) in enumerate(zip(given, provs, ids)):
            src = src or source_of(prov, repo_sources)
            if src not in allowed:
                dropped.append((i, "unknown_source"))
            elif row_id in seen:
                dropped.append((i, "duplicate_id"))
            else:
                seen.add(row_id)
                sources.append((i, src))
        order = sorted(sources, key=lambda p: (SOURCE_ORDER.index(p[1]) if p[1] in SOURCE_ORDER else len(SOURCE_ORDER),
                                               p[1], ids[p[0]]))
        table = batch.take(pa.array([i for i, _ in order], pa.int64()))
        table = records.set_column(table, "source", pa.array([s for _, s in order], pa.string()))
        table = table.select(list(MIXTURE_COLUMNS))
        table = records.add_step(table, {"stage": self.label, "sources": allowed})
        counts = {s: sum(1 for _, x in order if x == s) for s in allowed}
        expect = self.settings.expect
        if expect:
            wrong = {s: (counts.get(s, 0), n) for s, n in expect.items() if counts.get(s, 0) != n}
            if wrong:
                raise StageError(f"stage {self.label!r}: rows per source (got, expected) differ: {wrong}")
        return StageOutput(kept=table, dropped=dropped, counters={f"rows_{s}": n for s, n in counts.items()})
