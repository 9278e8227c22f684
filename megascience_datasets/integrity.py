"""Checks of shard files: size, sha256 (or git blob id), parquet footer, schema and row counts."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable

import pyarrow as pa
import pyarrow.parquet as pq

from .errors import IntegrityError

CHUNK = 4 << 20


@dataclass(frozen=True)
class Expected:
    """What a shard must be. `origin` says who vouches for it: lock, manifest, hub-lfs, git-blob."""
    path: str
    size: int | None
    sha256: str | None = None
    git_oid: str | None = None
    rows: int | None = None
    origin: str = "manifest"


@dataclass(frozen=True)
class Digest:
    size: int
    sha256: str
    git_oid: str | None


def copy_and_hash(src: BinaryIO, dst: BinaryIO | None, expected_size: int | None = None,
                  progress: Callable[[int], None] | None = None, git_blob: bool = False) -> Digest:
    """Stream src into dst (if given), hashing as it goes; with git_blob also the git blob id (needs the size)."""
    sha = hashlib.sha256()
    git = hashlib.sha1(f"blob {expected_size}\0".encode()) if git_blob and expected_size is not None else None
    n = 0
    while True:
        buf = src.read(CHUNK)
        if not buf:
            break
        sha.update(buf)
        if git is not None:
            git.update(buf)
        if dst is not None:
            dst.write(buf)
        n += len(buf)
        if progress:
            progress(len(buf))
    return Digest(size=n, sha256=sha.hexdigest(), git_oid=git.hexdigest() if git is not None and n == expected_size else None)


def hash_file(path: str | Path, progress: Callable[[int], None] | None = None) -> Digest:
    p = Path(path)
    with open(p, "rb") as f:
        if progress is None and hasattr(hashlib, "file_digest"):   # one C loop, GIL released
            return Digest(size=p.stat().st_size, sha256=hashlib.file_digest(f, "sha256").hexdigest(), git_oid=None)
        return copy_and_hash(f, None, p.stat().st_size, progress)


def needs_git_blob(exp: Expected) -> bool:
    return exp.sha256 is None and exp.git_oid is not None


def check_digest(digest: Digest, exp: Expected, where: str) -> None:
    """Raise IntegrityError naming the file and the expected and actual values."""
    if exp.size is not None and digest.size != exp.size:
        kind = "truncated" if digest.size < exp.size else "too long"
        raise IntegrityError(f"{where}: shard {exp.path} is {kind}: {digest.size} bytes, expected {exp.size} "
                             f"(per {exp.origin})")
    if exp.sha256 is not None:
        if digest.sha256 != exp.sha256:
            raise IntegrityError(f"{where}: shard {exp.path} has sha256 {digest.sha256}, expected {exp.sha256} "
                                 f"(per {exp.origin}): the file is corrupted or substituted")
    elif exp.git_oid is not None:
        if digest.git_oid != exp.git_oid:
            raise IntegrityError(f"{where}: shard {exp.path} has git blob id {digest.git_oid}, expected {exp.git_oid} "
                                 f"(per {exp.origin}): the file is corrupted or substituted")
    else:
        raise IntegrityError(f"{where}: no checksum known for shard {exp.path}: no lock entry, manifest entry or "
                             f"Hub LFS metadata vouches for it")


def check_parquet(path: str | Path, schema: pa.Schema, exp: Expected | None, where: str) -> int:
    """Open the footer, check the columns and types against the catalogue; return the row count."""
    try:
        meta = pq.read_metadata(path)
        actual = meta.schema.to_arrow_schema()
    except (pa.ArrowInvalid, OSError) as e:
        raise IntegrityError(f"{where}: shard {exp.path if exp else path} is not a readable parquet file: {e}") from None
    check_schema(actual, schema, f"{where}: shard {exp.path if exp else path}")
    if exp is not None and exp.rows is not None and meta.num_rows != exp.rows:
        raise IntegrityError(f"{where}: shard {exp.path} has {meta.num_rows} rows, expected {exp.rows} (per {exp.origin})")
    return meta.num_rows


def check_schema(actual: pa.Schema, expected: pa.Schema, where: str) -> None:
    want = {f.name: f.type for f in expected}
    have = {f.name: f.type for f in actual}
    missing = [c for c in want if c not in have]
    extra = [c for c in have if c not in want]
    wrong = [f"{c}: {have[c]} (expected {want[c]})" for c in want
             if c in have and not _compatible(have[c], want[c])]
    if missing or extra or wrong:
        parts = []
        if missing:
            parts.append(f"missing column(s) {missing}")
        if extra:
            parts.append(f"unexpected column(s) {extra}")
        if wrong:
            parts.append("wrong type(s) " + "; ".join(wrong))
        raise IntegrityError(f"{where}: wrong schema: {', '.join(parts)}; expected columns "
                             f"{[f'{n}: {t}' for n, t in want.items()]}")


def _compatible(have: pa.DataType, want: pa.DataType) -> bool:
    if have == want:
        return True
    strings = (pa.string(), pa.large_string(), pa.string_view())
    return have in strings and want in strings
