"""Source adapter stage: upstream rows (with the engine's source_file/source_row columns) -> our schema."""
from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Literal, Sequence

import pyarrow as pa

from ..engine import records
from ..engine.params import param
from ..engine.stage import Stage, StageError, StageOutput
from ..upstream.adapters import SCP116K, SOURCES, is_commit_sha, source_spec

OUTPUT_COLUMNS = (records.ID, records.PROVENANCE, "question", "answer", "subject", "reference_answer", "source")
SOURCE_NAMES = tuple(sorted(SOURCES))


class AdaptSource(Stage):
    """Map NaturalReasoning / Nemotron-Science / SCP-116K rows to question, answer, subject,
    reference_answer, source with a dataset-row provenance; rows that do not fit are dropped with a reason."""
    name = "adapt_source"
    summary = "NaturalReasoning, Nemotron-Science or SCP-116K rows to question, answer, subject, reference_answer"
    kind = "map"
    inputs = ("source_file", "source_row")
    outputs = OUTPUT_COLUMNS

    @dataclass(frozen=True)
    class Params:
        source: Literal[SOURCE_NAMES] | None = param(None, "the upstream dataset (required)")
        revision: str | None = param(None, "its revision as recorded in provenance (null: the pinned one)")
        answer_field: str = param("r1_response", "SCP-116K: the column holding the answer")

        def __post_init__(self):
            if self.source is None:
                raise ValueError(f"parameter 'source' must be one of {list(SOURCE_NAMES)}, got None")

    def __init__(self, params=None, **kw):
        super().__init__(params, **kw)
        self.spec = source_spec(self.params["source"])
        self.revision = str(self.params["revision"] or self.spec.revision)

    def _upstream_columns(self) -> tuple[str, ...]:
        extra = (self.params["answer_field"],) if self.spec.name == SCP116K else ()
        return (*self.spec.columns, *extra)

    def check_schema(self, schema: pa.Schema) -> None:
        super().check_schema(schema)
        missing = [c for c in self._upstream_columns() if c not in schema.names]
        if missing:
            raise StageError(f"stage {self.label!r}: source {self.spec.name!r} ({self.spec.repo}) needs upstream "
                             f"column(s) {missing}, but the input has only {schema.names}")

    def output_columns(self, input_names: Sequence[str]) -> list[str]:
        return list(OUTPUT_COLUMNS)

    def process(self, batch: pa.Table, ctx) -> StageOutput:
        self.check_schema(batch.schema)
        spec, params = self.spec, self.params
        rows = batch.select(["source_file", "source_row", *self._upstream_columns()]).to_pylist()
        kept: dict[str, list] = {c: [] for c in OUTPUT_COLUMNS}
        dropped: list[tuple[int, str]] = []
        for pos, row in enumerate(rows):
            mapped, reason = spec.adapt(row, params)
            if mapped is None:
                dropped.append((pos, reason))
                continue
            file = posixpath.basename(str(row["source_file"]).replace("\\", "/"))
            index = int(row["source_row"])
            origin = {"kind": "dataset", "repo": spec.repo, "revision": self.revision, "config": spec.config,
                      "split": spec.split, "file": file, "row": index}
            kept[records.ID].append(records.content_id(spec.repo, spec.split, file, index))
            kept[records.PROVENANCE].append(records.new_provenance(origin))
            for column in ("question", "answer", "subject", "reference_answer"):
                kept[column].append(mapped[column])
            kept["source"].append(spec.source_value)
        table = pa.table({c: pa.array(v, pa.string()) for c, v in kept.items()})
        if table.num_rows:
            table = records.add_step(table, {"stage": self.label, "source": spec.name, "repo": spec.repo,
                                             "revision": self.revision})
        counters = {} if is_commit_sha(self.revision) else {"unpinned_revision_rows": table.num_rows}
        return StageOutput(kept=table, dropped=dropped, counters=counters)
