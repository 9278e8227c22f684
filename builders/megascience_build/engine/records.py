"""Rows are pyarrow tables. Every row has a stable content-hash `id` and a JSON `provenance` column.

Provenance (one JSON object per row, accumulated stage by stage):
    {"origin": {"kind": "book", "book_id": ..., "file": ..., "chunk_id": ..., "pages": [first, last]}
              | {"kind": "dataset", "repo": ..., "revision": ..., "config": ..., "split": ..., "row": ...},
     "steps": [{"stage": ..., "model": ..., "revision": ..., "prompt": ..., "prompt_sha256": ..., ...}, ...],
     "signals": {"<name>": value, ...}}
"""
from __future__ import annotations

import hashlib
import json
from typing import Any, Iterable, Mapping, Sequence

import pyarrow as pa

ID = "id"
PROVENANCE = "provenance"


def content_id(*parts: Any) -> str:
    """A stable id: sha256 over the canonical JSON of what identifies the row, first 32 hex digits."""
    canonical = json.dumps(parts, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]


def new_provenance(origin: Mapping[str, Any]) -> str:
    return json.dumps({"origin": dict(origin), "steps": [], "signals": {}}, sort_keys=True, ensure_ascii=False)


def _update(prov: str, step: Mapping[str, Any] | None, signals: Mapping[str, Any] | None) -> str:
    data = json.loads(prov)
    if step:
        data.setdefault("steps", []).append(dict(step))
    if signals:
        data.setdefault("signals", {}).update(signals)
    return json.dumps(data, sort_keys=True, ensure_ascii=False)


def add_step(table: pa.Table, step: Mapping[str, Any],
             signals: Sequence[Mapping[str, Any] | None] | None = None) -> pa.Table:
    """Append one step record (and optional per-row signals) to every row's provenance."""
    provs = table.column(PROVENANCE).to_pylist()
    sigs = signals if signals is not None else [None] * len(provs)
    updated = [_update(p, step, s) for p, s in zip(provs, sigs)]
    idx = table.schema.get_field_index(PROVENANCE)
    return table.set_column(idx, PROVENANCE, pa.array(updated, pa.string()))


def origin_of(prov: str) -> dict:
    return json.loads(prov)["origin"]


def set_column(table: pa.Table, name: str, values: Iterable[Any] | pa.Array, type_: pa.DataType | None = None) -> pa.Table:
    """Replace or append a column by name."""
    arr = values if isinstance(values, (pa.Array, pa.ChunkedArray)) else pa.array(list(values), type_)
    i = table.schema.get_field_index(name)
    if i >= 0:
        return table.set_column(i, name, arr)
    return table.append_column(name, arr)
