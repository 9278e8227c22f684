"""The pipeline's input table, read and checked before any work, then cut into shards.

files:   one row per file: id (content_id of the path relative to the pipeline file and the file's sha256),
         provenance origin {"kind": "file", "path": <relative path>, "sha256": ...}, path (full path or URL).
parquet: the files' rows, in file order then row order. When the rows have no `id` column, two columns
         `source_file` and `source_row` are added so an adapter stage can build ids and provenance.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from . import records
from .pipeline_config import PipelineConfig
from .stage import StageError
from .storage import expand, is_url, read_bytes

FILES_SCHEMA = pa.schema([(records.ID, pa.string()), (records.PROVENANCE, pa.string()), ("path", pa.string())])


def _matching(config: PipelineConfig) -> list[str]:
    where = f"pipeline {config.path}: field 'input.{config.input.kind}'"
    found: list[str] = []
    for pattern in config.input.patterns:
        try:
            matches = expand(pattern)
        except Exception as exc:  # fsspec raises many types for a bad URL or missing filesystem driver
            raise StageError(f"{where}: cannot list {pattern!r} ({exc})") from None
        if not matches:
            raise StageError(f"{where}: pattern {pattern!r} matches no file")
        found.extend(m for m in matches if m not in found)
    return found


def _relative(path: str, base: Path) -> str:
    if is_url(path):
        return path
    try:
        return os.path.relpath(path, base)
    except ValueError:
        return path


def _read_files_table(config: PipelineConfig, files: list[str]) -> pa.Table:
    base = config.path.parent
    ids, provs, paths = [], [], []
    for f in files:
        try:
            data = read_bytes(f)
        except OSError as exc:
            raise StageError(f"input file {f}: unreadable ({exc.strerror or exc})") from None
        if not data:
            raise StageError(f"input file {f}: empty file")
        sha = hashlib.sha256(data).hexdigest()
        rel = _relative(f, base)
        ids.append(records.content_id("file", rel, sha))
        provs.append(records.new_provenance({"kind": "file", "path": rel, "sha256": sha}))
        paths.append(f)
    return pa.table([ids, provs, paths], schema=FILES_SCHEMA)


def _read_parquet_table(config: PipelineConfig, files: list[str]) -> pa.Table:
    base = config.path.parent
    tables, first_schema, first_file = [], None, None
    for f in files:
        try:
            table = pq.read_table(pa.BufferReader(read_bytes(f)))
        except (OSError, pa.ArrowException) as exc:
            raise StageError(f"input file {f}: unreadable as parquet ({exc})") from None
        # A 0-row shard with the right columns is what a filtering stage legitimately writes (the output of one
        # pipeline is often the input of the next); it still has to agree on columns. All-empty input is an error.
        table = table.replace_schema_metadata(None)
        if first_schema is None:
            first_schema, first_file = table.schema, f
        elif table.schema.names != first_schema.names:
            raise StageError(f"input file {f}: columns {table.schema.names} differ from {first_file}'s "
                             f"{first_schema.names}")
        if records.ID not in table.column_names:
            rel = _relative(f, base)
            table = table.append_column("source_file", pa.array([rel] * table.num_rows, pa.string()))
            table = table.append_column("source_row", pa.array(range(table.num_rows), pa.int64()))
        tables.append(table)
    if not any(t.num_rows for t in tables):
        raise StageError(f"input of pipeline {config.path}: every input shard is empty (0 rows): {files}")
    try:
        return pa.concat_tables(tables, promote_options="default")
    except pa.ArrowException as exc:
        raise StageError(f"input files of pipeline {config.path}: column types do not agree ({exc})") from None


def read_input(config: PipelineConfig) -> pa.Table:
    files = _matching(config)
    table = _read_files_table(config, files) if config.input.kind == "files" else _read_parquet_table(config, files)
    if config.limit is not None:
        table = table.slice(0, config.limit)
    if records.ID in table.column_names:
        ids = table.column(records.ID)
        if ids.null_count:
            raise StageError(f"input of pipeline {config.path}: column 'id' has {ids.null_count} null value(s)")
        if pc.count_distinct(ids).as_py() != table.num_rows:
            raise StageError(f"input of pipeline {config.path}: column 'id' has duplicate values")
    return table


def split_rows(table: pa.Table, rows_per_shard: int) -> list[pa.Table]:
    """Consecutive slices of at most rows_per_shard rows; an empty table gives one empty shard."""
    if table.num_rows == 0:
        return [table]
    return [table.slice(i, rows_per_shard).combine_chunks() for i in range(0, table.num_rows, rows_per_shard)]
