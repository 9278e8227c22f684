"""The local store of verified shards: <root>/<location key>/{refs,snapshots/<sha>}/...

A shard enters a snapshot only after its size and checksum were verified in a temporary directory of
the store, and all shards of a configuration enter together, so a failed load leaves nothing behind.
Each snapshot keeps `.verified.json`: path -> size and sha256 of what was verified.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path

from .safety import FULL_SHA, check_sha, contained
from .sources import Location, quote_ref

RECORD = ".verified.json"


def default_root(cache_dir: str | os.PathLike | None = None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir).expanduser() / "megascience_store"
    import datasets.config
    return Path(datasets.config.HF_DATASETS_CACHE) / "megascience_store"


class Store:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def _loc_dir(self, loc: Location) -> Path:
        return self.root / loc.key

    def snapshot_dir(self, loc: Location, sha: str) -> Path:
        return self._loc_dir(loc) / "snapshots" / check_sha(sha)

    # ------------------------------------------------------------------ refs
    def record_ref(self, loc: Location, revision: str, sha: str) -> None:
        check_sha(sha)
        d = self._loc_dir(loc) / "refs"
        d.mkdir(parents=True, exist_ok=True)
        tmp = d / f".{uuid.uuid4().hex}.tmp"
        tmp.write_text(sha)
        os.replace(tmp, d / quote_ref(revision))

    def ref(self, loc: Location, revision: str) -> str | None:
        try:
            sha = (self._loc_dir(loc) / "refs" / quote_ref(revision)).read_text().strip()
        except OSError:
            return None
        return sha if FULL_SHA.match(sha) else None

    def cached_shas(self, loc: Location) -> list[str]:
        d = self._loc_dir(loc) / "snapshots"
        return sorted(p.name for p in d.iterdir() if FULL_SHA.match(p.name)) if d.is_dir() else []

    # ------------------------------------------------------------------ verified files
    def record(self, loc: Location, sha: str) -> dict[str, dict]:
        try:
            return json.loads((self.snapshot_dir(loc, sha) / RECORD).read_text())
        except (OSError, ValueError):
            return {}

    def cached_file(self, loc: Location, sha: str, relpath: str, size: int | None = None,
                    sha256: str | None = None) -> Path | None:
        """The verified local copy of relpath at sha, if present and matching the given size/sha256."""
        rec = self.record(loc, sha).get(relpath)
        if not rec:
            return None
        p = contained(self.snapshot_dir(loc, sha), relpath)
        if not p.is_file() or p.stat().st_size != rec["size"]:
            return None
        if (size is not None and rec["size"] != size) or (sha256 is not None and rec["sha256"] != sha256):
            return None
        return p

    @contextmanager
    def staging(self):
        """A temporary directory inside the store (same file system, so installing is a rename)."""
        tmp_root = self.root / "tmp"
        tmp_root.mkdir(parents=True, exist_ok=True)
        d = Path(tempfile.mkdtemp(dir=tmp_root))
        try:
            yield d
        finally:
            shutil.rmtree(d, ignore_errors=True)

    def install(self, loc: Location, sha: str, staged: dict[str, tuple[Path, int, str, int]]) -> dict[str, Path]:
        """Move verified staged files {relpath: (tmp path, size, sha256, rows)} into the snapshot; record them."""
        snap = self.snapshot_dir(loc, sha)
        snap.mkdir(parents=True, exist_ok=True)
        out = {}
        for rel, (tmp, *_rest) in staged.items():
            dest = contained(snap, rel)
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, dest)
            out[rel] = dest
        rec = self.record(loc, sha)
        rec.update({rel: {"size": size, "sha256": digest, "rows": rows} for rel, (_, size, digest, rows) in staged.items()})
        tmp = snap / f".{uuid.uuid4().hex}.tmp"
        tmp.write_text(json.dumps(rec, indent=1, sort_keys=True))
        os.replace(tmp, snap / RECORD)
        return out

    # ------------------------------------------------------------------ in-place verification of local folders
    def local_digest(self, path: Path) -> str | None:
        """The sha256 verified earlier for this exact local file (same path, size, mtime, inode), if any."""
        st = path.stat()
        key = f"{path}|{st.st_size}|{st.st_mtime_ns}|{st.st_ino}"
        try:
            return json.loads((self.root / "local-verified.json").read_text()).get(key)
        except (OSError, ValueError):
            return None

    def remember_local_digest(self, path: Path, sha256: str) -> None:
        st = path.stat()
        key = f"{path}|{st.st_size}|{st.st_mtime_ns}|{st.st_ino}"
        f = self.root / "local-verified.json"
        try:
            data = json.loads(f.read_text())
        except (OSError, ValueError):
            data = {}
        data[key] = sha256
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".{uuid.uuid4().hex}.tmp"
        tmp.write_text(json.dumps(data))
        os.replace(tmp, f)
