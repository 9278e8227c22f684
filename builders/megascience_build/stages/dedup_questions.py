"""dedup_questions (global): near-duplicate questions removed with MinHash LSH on word 3-grams.

The algorithm, its normalisation and both modes are described in `megascience_build.near_duplicates.minhash`:

    mode: paper     (default) Jaccard threshold 0.6, bands and rows derived from it, candidates verified by
                    exact Jaccard (`verify: exact`), 128 permutations.
    mode: authors   the authors' text-dedup run: 1 band x 10 rows, SHA-1, no verification, questions under 5
                    tokens dropped ("too_short").  Takes no other algorithm parameter.

Kept rows are one per cluster, the row with the smallest id; they get `dedup_cluster` (the cluster id: the
kept row's own id) and `dedup_cluster_size` (rows in the cluster, itself included), and the same values plus
the ids of the rows removed as their duplicates (`dedup_duplicates`) in their provenance signals.  Dropped
rows: "duplicate", "too_short" (authors mode, or `min_tokens`), "no_words" (paper mode: nothing left after
normalisation).  Parameters:

    column                  the text column (default "question")
    threshold, num_perm, bands, rows, ngram, verify, min_tokens, false_positive_weight, false_negative_weight
                            paper mode only (see minhash.paper_config); bands and rows go together
    seed                    seed of the permutations (default: the pipeline seed); paper mode only
    threads                 worker threads for hashing (default: all CPUs)
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from ..near_duplicates import minhash
from ..engine import records
from ..engine.params import param
from ..engine.stage import Stage, StageError, StageOutput

CLUSTER = "dedup_cluster"
CLUSTER_SIZE = "dedup_cluster_size"
PAPER_PARAMS = ("threshold", "num_perm", "bands", "rows", "ngram", "verify", "min_tokens",
                "false_positive_weight", "false_negative_weight", "seed")


class DedupQuestions(Stage):
    name = "dedup_questions"
    summary = "near-duplicate questions removed: MinHash LSH on word 3-grams, Jaccard 0.6 (paper §2.3)"
    kind = "global"
    inputs = (records.ID, records.PROVENANCE)          # plus the text column, see check_schema
    outputs = (CLUSTER, CLUSTER_SIZE)

    @dataclass(frozen=True)
    class Params:
        mode: Literal[minhash.MODES] = param("paper", "paper: threshold, derived bands, verified candidates; "
                                                           "authors: the authors' text-dedup run")
        column: str = param("question", "the text column")
        threshold: float = param(0.6, "Jaccard threshold (paper mode)")
        num_perm: int = param(128, "MinHash permutations (paper mode)")
        bands: int | None = param(None, "LSH bands (null: derived from the threshold; with `rows`)")
        rows: int | None = param(None, "rows per band (null: derived; with `bands`)")
        ngram: int = param(3, "words per shingle (paper mode)")
        verify: str = param("exact", "candidates verified by exact Jaccard (exact), estimated, or not (none)")
        min_tokens: int = param(0, "questions with fewer tokens are dropped as too_short (paper mode)")
        false_positive_weight: float = param(0.2, "weight of false positives when deriving bands and rows")
        false_negative_weight: float = param(0.8, "weight of false negatives when deriving bands and rows")
        seed: int | None = param(None, "seed of the permutations (null: the pipeline seed; paper mode)")
        threads: int | None = param(None, "worker threads for hashing (null: all CPUs)", min=1)

        def __post_init__(self):
            if not self.column:
                raise ValueError("parameter 'column' must be a column name")

    def __init__(self, params=None, **kw):
        super().__init__(params, **kw)
        if self.settings.mode == "authors":
            fixed = sorted(set(params or {}) & set(PAPER_PARAMS))
            if fixed:
                raise StageError(f"stage {self.label!r}: mode 'authors' reproduces the authors' run and takes no "
                                 f"algorithm parameter, got {fixed}")
        self.config(seed=0)                              # every parameter problem surfaces before any work

    def config(self, seed: int) -> minhash.DedupConfig:
        p = self.settings
        if p.mode == "authors":
            return minhash.authors_config()
        try:
            return minhash.paper_config(
                threshold=p.threshold, num_perm=p.num_perm, bands=p.bands, rows=p.rows, ngram=p.ngram,
                verify=p.verify, seed=seed if p.seed is None else p.seed, min_tokens=p.min_tokens,
                false_positive_weight=p.false_positive_weight, false_negative_weight=p.false_negative_weight)
        except (TypeError, ValueError) as exc:
            raise StageError(f"stage {self.label!r}: {exc}") from None

    def check_schema(self, schema: pa.Schema) -> None:
        super().check_schema(schema)
        column = self.settings.column
        if column not in schema.names:
            raise StageError(f"stage {self.label!r} needs the text column {column!r}, "
                             f"but its input has only {schema.names}")
        kind = schema.field(column).type
        if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
            raise StageError(f"stage {self.label!r}: column {column!r} must hold strings, found {kind}")

    def describe(self) -> dict[str, Any]:
        described = super().describe()
        config = self.config(seed=0)
        described["algorithm"] = {k: v for k, v in dataclasses.asdict(config).items() if k != "seed"}
        return described

    def process(self, batch: pa.Table, ctx) -> StageOutput:
        self.check_schema(batch.schema)
        column = self.settings.column
        texts, ids = batch.column(column), batch.column(records.ID)
        if texts.null_count:
            nulls = np.flatnonzero(texts.is_null().to_numpy(zero_copy_only=False))
            shown = [ids[int(i)].as_py() for i in nulls[:5]]
            raise StageError(f"stage {self.label!r}: column {column!r} is null in {len(nulls)} row(s), "
                             f"ids {shown}{' ...' if len(nulls) > 5 else ''}; expected a question text")
        config = self.config(seed=int(getattr(ctx, "seed", 0) or 0))
        result = minhash.deduplicate(texts, config, ids=ids, threads=self.settings.threads)

        dropped = ([(int(i), "duplicate") for i in np.flatnonzero(result.duplicate)]
                   + [(int(i), "too_short") for i in np.flatnonzero(result.too_short)]
                   + [(int(i), "no_words") for i in np.flatnonzero(result.no_words)])
        dropped.sort()
        kept_rows = np.flatnonzero(result.kept)
        kept = batch.take(pa.array(kept_rows, pa.int64()))
        kept_ids = kept.column(records.ID)
        sizes = result.cluster_size[kept_rows]
        kept = records.set_column(kept, CLUSTER, kept_ids.combine_chunks() if kept.num_rows else pa.array([], pa.string()))
        kept = records.set_column(kept, CLUSTER_SIZE, pa.array(sizes, pa.int64()))
        kept = records.add_step(kept, self._step(config), self._signals(result, ids, kept_rows))
        counters = {"duplicate": int(result.duplicate.sum()), "too_short": int(result.too_short.sum()),
                    "no_words": int(result.no_words.sum()),
                    **{k: int(v) for k, v in result.stats.items() if k in ("candidate_pairs", "verified_pairs",
                                                                            "clusters_with_duplicates")}}
        return StageOutput(kept=kept, dropped=dropped, counters=counters)

    def _step(self, config: minhash.DedupConfig) -> dict[str, Any]:
        return {"stage": self.label, "method": "minhash_lsh", "column": self.settings.column, "mode": config.mode,
                "threshold": config.threshold, "num_perm": config.num_perm, "bands": config.bands,
                "rows": config.rows, "ngram": config.ngram, "verify": config.verify,
                "min_tokens": config.min_tokens, "seed": config.seed}

    @staticmethod
    def _signals(result: minhash.DedupResult, ids: pa.ChunkedArray, kept_rows: np.ndarray) -> list[dict]:
        """Per kept row: cluster id, size, and the ids of the rows dropped as its duplicates (sorted)."""
        id_list = ids.to_pylist()
        duplicates = np.flatnonzero(result.duplicate)
        absorbed: dict[int, list[str]] = {}
        for row, rep in zip(duplicates.tolist(), result.representative[duplicates].tolist()):
            absorbed.setdefault(rep, []).append(id_list[row])
        signals = []
        for row, size in zip(kept_rows.tolist(), result.cluster_size[kept_rows].tolist()):
            signal = {CLUSTER: id_list[row], CLUSTER_SIZE: size}
            if row in absorbed:
                signal["dedup_duplicates"] = sorted(absorbed[row])
            signals.append(signal)
        return signals

