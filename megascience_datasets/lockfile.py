"""The lock file: per configuration, the source, the resolved commit sha and every shard's size and sha256.

    {"format_version": 1, "package": "megascience-datasets 0.1.0",
     "configs": {"textbook": {"source": "hub:MegaScience/TextbookReasoning", "revision": "c1729...",
                              "sha": "c1729...", "rows": 651840,
                              "files": [{"path": "data/train-00000-of-00004.parquet", "size": 1, "sha256": "..."}]}}}

Everything read from a lock is validated (names, shas, relative paths) before it is used.
"""
from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .errors import UsageError
from .safety import check_config_name, check_relpath, check_revision, check_sha

SHA256 = re.compile(r"^[0-9a-f]{64}$")
FORMAT_VERSION = 1


@dataclass(frozen=True)
class LockedFile:
    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class LockedConfig:
    source: str
    revision: str
    sha: str
    files: tuple[LockedFile, ...]
    rows: int | None = None
    # a configuration derived locally: source/revision/sha/files are its parent's, `derivation` the record
    # (parent, parent_sha, rule, parameters, seed, rows, ids_sha256) the derived rows must reproduce
    derivation: dict | None = None


@dataclass
class Lock:
    configs: dict[str, LockedConfig] = field(default_factory=dict)

    def to_json(self) -> str:
        from . import __version__
        body = {"format_version": FORMAT_VERSION, "package": f"megascience-datasets {__version__}",
                "configs": {name: {"source": c.source, "revision": c.revision, "sha": c.sha, "rows": c.rows,
                                   "files": [{"path": f.path, "size": f.size, "sha256": f.sha256} for f in c.files],
                                   **({"derivation": c.derivation} if c.derivation is not None else {})}
                            for name, c in sorted(self.configs.items())}}
        return json.dumps(body, indent=2) + "\n"

    def save(self, path: str | os.PathLike) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".lock-", suffix=".tmp")
        mask = os.umask(0)
        os.umask(mask)
        os.fchmod(fd, 0o666 & ~mask)      # a lock file is committed and shared: not mkstemp's 0600
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(self.to_json())
        os.replace(tmp, path)


def _bad(origin: str, msg: str):
    raise UsageError(f"lock file {origin}: {msg}")


def parse_lock(data: object, origin: str = "<lock>") -> Lock:
    if not isinstance(data, dict):
        _bad(origin, "top level must be an object")
    if data.get("format_version") != FORMAT_VERSION:
        _bad(origin, f"format_version is {data.get('format_version')!r}; this package reads {FORMAT_VERSION}")
    configs = data.get("configs")
    if not isinstance(configs, dict):
        _bad(origin, "`configs` must be an object")
    lock = Lock()
    for name, c in configs.items():
        try:
            check_config_name(name)
            if not isinstance(c, dict):
                raise UsageError("entry must be an object")
            source = c.get("source")
            if not isinstance(source, str) or not source.startswith(("hub:", "path:", "sample:")):
                raise UsageError(f"source {source!r} must start with hub:, path: or sample:")
            check_revision(c.get("revision"))
            sha = c.get("sha")
            if not (isinstance(sha, str) and re.match(r"^[0-9a-f]{40}$", sha)):
                check_sha(sha)
            files = []
            for f in c.get("files") or []:
                if not isinstance(f, dict):
                    raise UsageError(f"file entry {f!r} must be an object")
                check_relpath(f.get("path"), "locked file")
                size, digest = f.get("size"), f.get("sha256")
                if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                    raise UsageError(f"file {f.get('path')!r}: size {size!r} must be a non-negative integer")
                if not isinstance(digest, str) or not SHA256.match(digest):
                    raise UsageError(f"file {f.get('path')!r}: sha256 {digest!r} must be 64 lower-case hex digits")
                files.append(LockedFile(f["path"], size, digest))
            if not files:
                raise UsageError("no files")
            rows = c.get("rows")
            if rows is not None and (not isinstance(rows, int) or isinstance(rows, bool)):
                raise UsageError(f"rows {rows!r} must be an integer")
            derivation = c.get("derivation")
            if derivation is not None:
                if not isinstance(derivation, dict):
                    raise UsageError("`derivation` must be an object")
                check_config_name(derivation.get("parent"))
                if not (isinstance(derivation.get("ids_sha256"), str) and SHA256.match(derivation["ids_sha256"])):
                    raise UsageError(f"derivation ids_sha256 {derivation.get('ids_sha256')!r} must be 64 hex digits")
                if not isinstance(derivation.get("rows"), int) or not isinstance(derivation.get("rule"), str):
                    raise UsageError("derivation needs integer `rows` and a `rule`")
        except UsageError as e:
            _bad(origin, f"configuration {name!r}: {e}")
        lock.configs[name] = LockedConfig(source=source, revision=c["revision"], sha=sha, files=tuple(files), rows=rows,
                                          derivation=derivation)
    return lock


def read_lock(path: str | os.PathLike) -> Lock:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise UsageError(f"cannot read lock file {path}: {e}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise UsageError(f"lock file {path} is not valid JSON: {e}") from None
    return parse_lock(data, str(path))


def as_lock(lock: "Lock | str | os.PathLike | None") -> Lock | None:
    if lock is None or isinstance(lock, Lock):
        return lock
    return read_lock(lock)
