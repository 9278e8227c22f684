"""Data-selection subsets computed from stored signal columns (paper §3.3, Table 3, Table 10, Table 11).

Pure functions over a pyarrow table that already carries the signals; nothing here calls a model or
recomputes a signal. Every subset is a set of row positions into its parent plus the record that makes it
reproducible: rule, parameters, seed, size, the range of the signal it cut on, and a digest of the selected
ids. Rows of a subset keep the parent's order.

Signal columns (written by stages/signals.py):
    id               stable content id (tie-breaks are by id, ascending)
    response_length  int, tokens of the reference model's response (null: no usable response)
    length_excluded  bool, true for responses over the token limit (or with no usable response)
    difficulty       float, mean 0-10 grade of the policy samples (null: no reference answer / no grade)
    random_u01       float in [0, 1), uniform_u01(seed, id)

The paper's protocol for one source: difficulty selection fixes n; response-length selection (top n by
length among the non-excluded rows) and random selection (the n smallest random numbers) take the same n.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

ID = "id"
DIFFICULTY = "difficulty"
LENGTH = "response_length"
LENGTH_EXCLUDED = "length_excluded"
RANDOM = "random_u01"
CONTAMINATED = "contaminated"

RULE_DIFFICULTY = "select_difficulty"
RULE_LENGTH = "select_length"
RULE_RANDOM = "select_random"
RULE_BELOW = "select_difficulty_below"
RULE_UNFLAGGED = "decontaminate"


class SelectionError(ValueError):
    """A pool lacks a signal column, or a parameter is out of range; the message names both."""


# ---------------------------------------------------------------------------------------------- signals
def uniform_u01(seed: int, ids: Iterable[str]) -> np.ndarray:
    """A uniform number in [0, 1) per id from blake2b(seed, id): independent of row order and of any
    global random state, so a subset is reproducible from the ids and the seed alone."""
    prefix = f"{int(seed)}\x1f".encode()
    words = [int.from_bytes(hashlib.blake2b(prefix + i.encode(), digest_size=8).digest(), "big") >> 11
             for i in ids]
    return np.asarray(words, dtype=np.float64) * (1.0 / (1 << 53))


@dataclass(frozen=True)
class DifficultyBounds:
    """Keep low < mean < high (strict, the authors' code) or low <= mean <= high (the paper's wording:
    drop means above 9 and below 1, so exactly 1 and exactly 9 stay)."""
    low: float = 1.0
    high: float = 9.0
    strict: bool = True

    def __post_init__(self):
        if not (0.0 <= self.low <= self.high <= 10.0):
            raise SelectionError(f"difficulty bounds must satisfy 0 <= low <= high <= 10, got {self.low}, {self.high}")

    def mask(self, values: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            if self.strict:
                keep = (values > self.low) & (values < self.high)
            else:
                keep = (values >= self.low) & (values <= self.high)
        return keep & ~np.isnan(values)

    def as_dict(self) -> dict[str, Any]:
        return {"low": self.low, "high": self.high, "strict": self.strict}


# ---------------------------------------------------------------------------------------------- subsets
@dataclass
class Subset:
    name: str
    parent: str
    rule: str
    parameters: dict[str, Any]
    seed: int | None
    positions: np.ndarray                      # ascending row positions into the parent table
    signal: str | None = None                  # the column the rule cut on
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return int(self.positions.size)

    def take(self, table: pa.Table) -> pa.Table:
        return table.take(pa.array(self.positions, pa.int64()))

    def record(self, table: pa.Table) -> dict[str, Any]:
        """What the manifest stores: enough to recompute the subset and to check a recomputation."""
        rows = self.take(table.select([c for c in (ID, self.signal) if c and c in table.column_names]))
        rec = {"name": self.name, "parent": self.parent, "rule": self.rule, "parameters": dict(self.parameters),
               "seed": self.seed, "rows": self.n, "parent_rows": table.num_rows,
               "ids_sha256": ids_digest(rows.column(ID)), **self.extra}
        if self.signal and self.n:
            values = rows.column(self.signal)
            rec["signal"] = {"column": self.signal, "min": _scalar(pc.min(values)), "max": _scalar(pc.max(values))}
        return rec


def ids_digest(ids: pa.ChunkedArray | pa.Array) -> str:
    """sha256 over the selected ids in order, newline-separated."""
    h = hashlib.sha256()
    for chunk in (ids.chunks if isinstance(ids, pa.ChunkedArray) else [ids]):
        h.update(("\n".join(chunk.to_pylist()) + "\n").encode() if len(chunk) else b"")
    return h.hexdigest()


def select_difficulty(table: pa.Table, bounds: DifficultyBounds = DifficultyBounds(), *,
                      name: str, parent: str) -> Subset:
    values = _float_column(table, DIFFICULTY)
    keep = bounds.mask(values)
    return Subset(name, parent, RULE_DIFFICULTY, {**bounds.as_dict(), "column": DIFFICULTY}, None,
                  np.flatnonzero(keep), signal=DIFFICULTY,
                  extra={"eligible": int(np.count_nonzero(~np.isnan(values)))})


def select_difficulty_below(table: pa.Table, below: float, *, name: str, parent: str) -> Subset:
    """The hardest questions: mean grade strictly below `below` (Table 11: below 6 on TextbookReasoning)."""
    values = _float_column(table, DIFFICULTY)
    with np.errstate(invalid="ignore"):
        keep = (values < below) & ~np.isnan(values)
    return Subset(name, parent, RULE_BELOW, {"below": below, "column": DIFFICULTY}, None,
                  np.flatnonzero(keep), signal=DIFFICULTY)


def select_length(table: pa.Table, n: int, *, name: str, parent: str, n_from: str | None = None) -> Subset:
    """The n rows with the longest reference responses among the rows not excluded (ties: smaller id first)."""
    _need(table, (ID, LENGTH, LENGTH_EXCLUDED), name)
    _check_n(n, name)
    excluded = table.column(LENGTH_EXCLUDED).fill_null(True)
    eligible_mask = pc.and_(pc.invert(excluded), pc.is_valid(table.column(LENGTH)))
    eligible = np.flatnonzero(eligible_mask.to_numpy(zero_copy_only=False))
    order = _sorted_positions(table, eligible, [(LENGTH, "descending"), (ID, "ascending")], n)
    return Subset(name, parent, RULE_LENGTH, {"n": n, "n_from": n_from, "column": LENGTH}, None,
                  np.sort(order), signal=LENGTH,
                  extra={"eligible": int(eligible.size), "shortfall": max(0, n - int(eligible.size))})


def select_random(table: pa.Table, n: int, *, seed: int, name: str, parent: str, n_from: str | None = None,
                  verify_rows: int = 64) -> Subset:
    """The n rows with the smallest stored random numbers (ties: smaller id first). The first `verify_rows`
    rows are checked against uniform_u01(seed, id), so a pool whose random column came from another seed
    is refused instead of silently giving a different subset than the one recorded."""
    _need(table, (ID, RANDOM), name)
    _check_n(n, name)
    head = table.slice(0, verify_rows)
    expected = uniform_u01(seed, head.column(ID).to_pylist())
    stored = head.column(RANDOM).to_numpy(zero_copy_only=False)
    if not np.array_equal(expected, stored):
        raise SelectionError(f"subset {name!r}: column {RANDOM!r} was not computed with seed {seed} "
                             f"(first mismatch at row {int(np.argmax(expected != stored))})")
    valid = np.flatnonzero(pc.is_valid(table.column(RANDOM)).to_numpy(zero_copy_only=False))
    order = _sorted_positions(table, valid, [(RANDOM, "ascending"), (ID, "ascending")], n)
    return Subset(name, parent, RULE_RANDOM, {"n": n, "n_from": n_from, "column": RANDOM}, seed,
                  np.sort(order), signal=RANDOM, extra={"shortfall": max(0, n - int(valid.size))})


def select_unflagged(table: pa.Table, *, name: str, parent: str, column: str = CONTAMINATED) -> Subset:
    """Rows whose flag is false (Table 10: a pool that keeps its contaminated rows flagged)."""
    _need(table, (column,), name)
    flag = table.column(column).fill_null(False).to_numpy(zero_copy_only=False)
    return Subset(name, parent, RULE_UNFLAGGED, {"column": column}, None, np.flatnonzero(~flag))


def table3_subsets(table: pa.Table, parent: str, *, bounds: DifficultyBounds = DifficultyBounds(),
                   seed: int = 0) -> list[Subset]:
    """The paper's protocol for one source: difficulty fixes n, then length and random take n rows each."""
    difficulty = select_difficulty(table, bounds, name=f"{parent}_difficulty", parent=parent)
    n = difficulty.n
    length = select_length(table, n, name=f"{parent}_length", parent=parent, n_from=difficulty.name)
    rand = select_random(table, n, seed=seed, name=f"{parent}_random", parent=parent, n_from=difficulty.name)
    return [difficulty, length, rand]


@dataclass(frozen=True)
class PoolPlan:
    """What to compute for one pool: its Table 3 subsets, optionally the hardest-questions subset
    (Table 11) and optionally the decontaminated view of a flagged pool (Table 10)."""
    parent: str
    bounds: DifficultyBounds = DifficultyBounds()
    seed: int = 0
    table3: bool = True
    distill_below: float | None = None
    unflagged_name: str | None = None


def all_subsets(pools: Mapping[str, pa.Table], plans: Sequence[PoolPlan]) -> list[Subset]:
    """Every subset of every plan, in plan order."""
    out: list[Subset] = []
    for plan in plans:
        if plan.parent not in pools:
            raise SelectionError(f"no pool named {plan.parent!r}; pools: {sorted(pools)}")
        table = pools[plan.parent]
        if plan.unflagged_name:
            out.append(select_unflagged(table, name=plan.unflagged_name, parent=plan.parent))
        if plan.table3:
            out.extend(table3_subsets(table, plan.parent, bounds=plan.bounds, seed=plan.seed))
        if plan.distill_below is not None:
            out.append(select_difficulty_below(table, plan.distill_below,
                                               name=f"{plan.parent}_difficulty_distill", parent=plan.parent))
    return out


def paper_plans(seed: int = 0, bounds: DifficultyBounds = DifficultyBounds()) -> list[PoolPlan]:
    """The paper's configurations over the decontaminated pools (catalogue names)."""
    return [PoolPlan("natural_reasoning_dc", bounds, seed),
            PoolPlan("nemotron_science_dc", bounds, seed),
            PoolPlan("textbook", bounds, seed, distill_below=6.0)]


# ---------------------------------------------------------------------------------------------- helpers
def _need(table: pa.Table, columns: Sequence[str], name: str) -> None:
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise SelectionError(f"subset {name!r} needs signal column(s) {missing}; the pool has {table.column_names}")


def _check_n(n: int, name: str) -> None:
    if not isinstance(n, (int, np.integer)) or n < 0:
        raise SelectionError(f"subset {name!r}: n must be a non-negative integer, got {n!r}")


def _float_column(table: pa.Table, column: str) -> np.ndarray:
    _need(table, (column,), column)
    col = pc.cast(table.column(column), pa.float64()).fill_null(np.nan)
    return col.to_numpy(zero_copy_only=False)


def _sorted_positions(table: pa.Table, candidates: np.ndarray, keys: list[tuple[str, str]], n: int) -> np.ndarray:
    """Positions (into `table`) of the first n candidates in the given sort order. The first key narrows
    the candidates with a partial sort (every row tied with the n-th value stays), so the full multi-key
    sort, with its string tie-break, runs on about n rows instead of the whole pool."""
    if n == 0 or candidates.size == 0:
        return np.empty(0, dtype=np.int64)
    first, order_of_first = keys[0]
    if n < candidates.size:
        values = _float_column(table, first)[candidates]
        key = -values if order_of_first == "descending" else values
        kth = np.partition(key, n - 1)[n - 1]
        candidates = candidates[key <= kth]
    sub = table.select([k for k, _ in keys]).take(pa.array(candidates, pa.int64()))
    order = pc.sort_indices(sub, sort_keys=keys).to_numpy()
    return candidates[order[:n]].astype(np.int64)


def _scalar(s: pa.Scalar):
    return s.as_py() if s is not None else None
