"""Write a dataset repository folder: at once a Hub dataset repository and a local
`datasets.load_dataset` target.

    <dest>/README.md                                   YAML `configs:` (default first), `dataset_info`, card, BibTeX
    <dest>/data/<config>/train-NNNNN-of-NNNNN.parquet  zstd, row groups of ~32 MB, page index, CDC
    <dest>/manifest.json                               per shard rows/bytes/sha256; per config rule, seed, counts

The build's release step calls `write_repo_folder`; `megascience download` calls it too. The same inputs
give byte-identical files (the row order is the caller's; nothing time-dependent is written).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from .cards import render_readme
from .catalogue import Entry, load_catalogue
from .errors import IntegrityError, UsageError
from .integrity import check_schema
from .safety import check_config_name

MAX_SHARD_BYTES = 250 * 1000 * 1000     # uncompressed, like datasets' max_shard_size="250MB"
ROW_GROUP_BYTES = 32 * 1000 * 1000      # uncompressed; far below the Hub viewer's ~286 MiB limit
ZSTD_LEVEL = 3

Input = "pa.Table | str | os.PathLike"


def _batches(inputs: Sequence[Any], schema: pa.Schema, where: str) -> Iterator[pa.RecordBatch]:
    for i, src in enumerate(inputs):
        if isinstance(src, pa.Table):
            table = src
            check_schema(table.schema, schema, f"{where} input {i}")
            for b in table.select(schema.names).cast(schema).to_batches(max_chunksize=65536):
                yield b
        else:
            pf = pq.ParquetFile(src)
            check_schema(pf.schema_arrow, schema, f"{where} input {src}")
            for b in pf.iter_batches(batch_size=65536, columns=schema.names):
                yield from pa.Table.from_batches([b]).select(schema.names).cast(schema).to_batches()


def _size(inputs: Sequence[Any]) -> tuple[int, int]:
    rows = nbytes = 0
    for src in inputs:
        if isinstance(src, pa.Table):
            rows += src.num_rows
            nbytes += src.nbytes
        else:
            md = pq.read_metadata(src)
            rows += md.num_rows
            nbytes += sum(md.row_group(i).total_byte_size for i in range(md.num_row_groups))
    return rows, nbytes


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for buf in iter(lambda: f.read(4 << 20), b""):
            h.update(buf)
    return h.hexdigest()


def write_config_shards(folder: Path, entry: Entry, inputs: Sequence[Any], *,
                        max_shard_bytes: int = MAX_SHARD_BYTES, row_group_bytes: int = ROW_GROUP_BYTES) -> list[dict]:
    """Write data/<config>/train-*.parquet under folder; return the manifest's shard entries."""
    schema = entry.arrow_schema()
    where = f"configuration {entry.name!r}"
    rows, nbytes = _size(inputs)
    if rows == 0:
        raise IntegrityError(f"{where}: no rows to write")
    n_shards = max(1, math.ceil(nbytes / max_shard_bytes))
    rows_per_shard = math.ceil(rows / n_shards)
    n_shards = math.ceil(rows / rows_per_shard)
    row_group_rows = max(1000, min(rows_per_shard, int(row_group_bytes / max(1, nbytes / rows))))
    out_dir = folder / "data" / entry.name
    out_dir.mkdir(parents=True, exist_ok=True)
    shards, batches = [], _batches(inputs, schema, where)
    pending: list[pa.RecordBatch] = []
    pending_rows = 0
    for k in range(n_shards):
        want = min(rows_per_shard, rows - k * rows_per_shard)
        while pending_rows < want:
            b = next(batches)
            pending.append(b)
            pending_rows += b.num_rows
        table = pa.Table.from_batches(pending, schema)
        shard, rest = table.slice(0, want), table.slice(want)
        pending, pending_rows = rest.to_batches(), rest.num_rows
        rel = f"data/{entry.name}/train-{k:05d}-of-{n_shards:05d}.parquet"
        path = folder / rel
        pq.write_table(shard, path, row_group_size=row_group_rows, compression="zstd", compression_level=ZSTD_LEVEL,
                       write_page_index=True, use_content_defined_chunking=True, write_statistics=True)
        shards.append({"path": rel, "rows": shard.num_rows, "bytes": path.stat().st_size, "sha256": _sha256(path),
                       "arrow_bytes": shard.nbytes})
    if pending_rows or next(batches, None) is not None:
        raise IntegrityError(f"{where}: inputs changed while being written (more rows than counted)")
    return shards


def write_repo_folder(dest: str | os.PathLike, configs: Mapping[str, Sequence[Any]], *,
                      entries: Mapping[str, Entry] | None = None, revision: Mapping[str, Any] | None = None,
                      cards: Mapping[str, str] | None = None, default: str | None = None,
                      extra: Mapping[str, Mapping[str, Any]] | None = None, overwrite: bool = False,
                      sample_note: str | None = None, max_shard_bytes: int = MAX_SHARD_BYTES,
                      row_group_bytes: int = ROW_GROUP_BYTES) -> dict:
    """Write the folder and return its manifest.

    configs   {config name: [pyarrow tables and/or parquet file paths, in row order]}
    entries   catalogue entries by name (default: the package catalogue); each input must have its schema
    revision  what the citation and manifest name: {"tag": ..., "sha": <full sha or None>, "url": ...,
              "sources": {...upstream revisions...}}
    cards     optional prose per configuration group ("released", "selection", ...) replacing the default
    default   the default configuration (default: "textbook" if present, else the first given)
    extra     per configuration extra manifest fields (source revisions, model ids, prompt hashes, counts)
    overwrite replace an existing folder; the new one is assembled beside it and swapped in at the end
    """
    dest = Path(dest)
    if dest.exists() and not overwrite and any(dest.iterdir()):
        raise UsageError(f"{dest} exists and is not empty; pass overwrite=True (--overwrite) to replace it")
    if not configs:
        raise UsageError("no configurations to write")
    cat = load_catalogue()
    entries = dict(entries) if entries is not None else {e.name: e for e in cat}
    for name in configs:
        check_config_name(name)
        if name not in entries:
            raise UsageError(f"configuration {name!r} is not in the catalogue")
    order = list(configs)
    default = default or ("textbook" if "textbook" in configs else order[0])
    if default not in configs:
        raise UsageError(f"default configuration {default!r} is not among {order}")
    order = [default] + [n for n in order if n != default]
    revision = dict(revision or {})
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    try:
        manifest = {"format_version": 1, "dataset": "megascience", "revision": revision, "default": default,
                    "configs": {}}
        for name in order:
            e = entries[name]
            shards = write_config_shards(work, e, configs[name], max_shard_bytes=max_shard_bytes,
                                         row_group_bytes=row_group_bytes)
            d = e.derived
            manifest["configs"][name] = {
                "rows": sum(s["rows"] for s in shards), "bytes": sum(s["bytes"] for s in shards),
                "num_bytes": sum(s.pop("arrow_bytes") for s in shards),
                "features": dict(e.features), "group": e.group,
                "parent": d.parent if d else None, "rule": d.rule if d else "released",
                "parameters": dict(d.parameters) if d else {}, "seed": d.seed if d else None,
                **dict((extra or {}).get(name, {})), "shards": shards}
        (work / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n", encoding="utf-8")
        readme = render_readme([entries[n] for n in order], manifest, cat.citations.get("paper", ""), cards=cards,
                               sample_note=sample_note)
        (work / "README.md").write_text(readme, encoding="utf-8")
        if dest.exists():
            old = dest.with_name(f".{dest.name}-old-{os.getpid()}")
            os.replace(dest, old)
            os.replace(work, dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(work, dest)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return manifest


def configs_from_folder(folder: str | os.PathLike, names: Iterable[str] | None = None) -> dict[str, list[Path]]:
    """{config: shard paths} of an existing repository folder, from its manifest (for re-writing it)."""
    folder = Path(folder)
    m = json.loads((folder / "manifest.json").read_text())
    return {n: [folder / s["path"] for s in c["shards"]] for n, c in m["configs"].items()
            if names is None or n in names}
