"""Parquet bytes with fixed writer settings, atomic writes, and fsspec paths.

Every shard either executor writes goes through `parquet_bytes`, so the same rows give the same bytes:
schema metadata is dropped, compression and page settings are fixed, and the writer puts no timestamp
in the file (created_by is the pyarrow version, constant for one installation).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

WRITER_OPTIONS = dict(compression="zstd", compression_level=3, version="2.6", data_page_version="1.0",
                      write_statistics=True, use_dictionary=True, row_group_size=64 * 1024)


def parquet_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table.replace_schema_metadata(None), sink, **WRITER_OPTIONS)
    return sink.getvalue().to_pybytes()


def unified_empty(table: pa.Table, reference: pa.Schema | None) -> pa.Table:
    """An empty shard with the column types of the other shards of its stage (when its names agree)."""
    if table.num_rows == 0 and reference is not None and table.schema.names == reference.names:
        return pa.Table.from_batches([], schema=reference)
    return table


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def is_url(path: str | os.PathLike) -> bool:
    return "://" in str(path)


def join(base: str | os.PathLike, *parts: str) -> str:
    if is_url(base):
        return "/".join([str(base).rstrip("/"), *parts])
    return str(Path(base, *parts))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# what open() and mkdir() give under the process umask (mkstemp and mkdtemp alone give 0600 and 0700)
FILE_MODE, DIR_MODE = 0o666 & ~_umask(), 0o777 & ~_umask()


def write_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Local paths: temp file in the same directory, fsync, rename (a reader sees the old file or the new
    one, never half of one). URLs: one fsspec put (object stores publish an object only when complete)."""
    if is_url(path):
        with fsspec.open(str(path), "wb") as fh:
            fh.write(data)
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    write_atomic(path, (json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8"))


def read_bytes(path: str | os.PathLike) -> bytes:
    with fsspec.open(str(path), "rb") as fh:
        return fh.read()


def read_parquet(path: str | os.PathLike) -> pa.Table:
    return pq.read_table(pa.BufferReader(read_bytes(path)))


def write_parquet(path: str | os.PathLike, table: pa.Table) -> dict[str, Any]:
    """Write one shard; returns what the manifest records about it."""
    return write_parquet_bytes(path, parquet_bytes(table), table.num_rows)


def write_parquet_bytes(path: str | os.PathLike, data: bytes, rows: int) -> dict[str, Any]:
    write_atomic(path, data)
    return {"path": str(path), "rows": rows, "bytes": len(data), "sha256": sha256_bytes(data)}


def parquet_rows(data: bytes) -> int:
    """The row count of a parquet file's bytes (from its footer; nothing is decoded)."""
    return pq.read_metadata(pa.BufferReader(data)).num_rows


def table_from_bytes(data: bytes) -> pa.Table:
    return pq.read_table(pa.BufferReader(data))


def roundtrip(table: pa.Table) -> pa.Table:
    """The table as the next stage sees it after the shard file is read back: the same in a fresh run, a
    resumed run and on Ray, whatever array types the stage built (chunking, string views, ...)."""
    return table_from_bytes(parquet_bytes(table))


def expand(pattern: str) -> list[str]:
    """Files matching a glob (local or fsspec URL), as full paths/URLs, sorted."""
    fs, _, paths = fsspec.get_fs_token_paths(pattern)
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    files = sorted(p for p in paths if fs.isfile(p))
    if protocol in ("file", "local"):
        return files
    return [f"{protocol}://{p}" for p in files]


def remove_stale(directory: str | os.PathLike, keep: set[str], prefix: str = "part-") -> None:
    """Delete shard files (and their sidecars) under `directory` that are not in `keep` (file names)."""
    fs, _, (root,) = fsspec.get_fs_token_paths(str(directory))
    if not fs.exists(root):
        return
    for entry in fs.ls(root, detail=False):
        name = entry.rstrip("/").rsplit("/", 1)[-1]
        if name.startswith(prefix) and name not in keep:
            fs.rm(entry)


def artifact_cache_dir() -> Path:
    """Where content-keyed artifacts (benchmark embeddings) persist across work directories:
    $MEGASCIENCE_ARTIFACT_CACHE, else ~/.cache/megascience/artifacts."""
    env = os.environ.get("MEGASCIENCE_ARTIFACT_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "megascience" / "artifacts"


def publish_dir(target: str | os.PathLike, files: dict[str, bytes]) -> None:
    """Write a folder of files under a temporary name, then rename it into place: a reader sees the whole
    folder or none. A copy already there (the caller found it unreadable) is replaced; if another process
    publishes in between, the rename fails and its copy stays (same key, same content)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        for name, data in files.items():
            write_atomic(tmp / name, data)
        os.chmod(tmp, DIR_MODE)
        if target.exists():
            shutil.rmtree(target)        # an unreadable earlier copy: replaced
        os.rename(tmp, target)
    except OSError:
        if not target.is_dir():
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
