"""Layout of a work directory, its lock, and the done-markers of finished shards.

    work/.lock                          held (fcntl.flock) by the run writing this directory
    work/plan.json                      stages, their directories and shard counts (for `status`)
    work/input/part-00000.parquet       the input table, cut into shards
    work/stages/NN_label/part-00000.parquet + part-00000.json   one stage's output shard + its sidecar
    work/output/part-00000.parquet      the final shards (the last stage's output), unless `output:` says where
    work/manifest.json, report.md, report.png

A sidecar is written after its parquet file (both atomically) and records the parquet's sha256 and the
stage fingerprint. A shard counts as done only if its sidecar exists, the fingerprint matches the current
configuration and input, and the parquet file on disk has the recorded sha256. Anything else (no sidecar,
a changed parameter, prompt, model or input, a damaged file) is recomputed: model answers come from the
request cache, so a recompute costs CPU only.
"""
from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from typing import Any

from .storage import sha256_bytes


PART_GLOB = "part-*.parquet"


class WorkDirLocked(RuntimeError):
    pass


class WorkDirError(ValueError):
    """A work directory's record is missing or unreadable; the message names the file."""


class WorkDir:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).resolve()
        self._lock_fd: int | None = None

    # -- paths -------------------------------------------------------------------------------
    @property
    def input_dir(self) -> Path:
        return self.root / "input"

    @property
    def plan_path(self) -> Path:
        return self.root / "plan.json"

    @property
    def manifest_path(self) -> Path:
        return self.root / "manifest.json"

    @staticmethod
    def stage_dirname(index: int, label: str) -> str:
        """The folder name of stage #index (0-based position in the pipeline) labelled `label`."""
        return f"{index:02d}_{label}"

    def stage_dir(self, dirname: str) -> Path:
        return self.root / "stages" / dirname

    def stage_path(self, index: int, label: str) -> Path:
        return self.stage_dir(self.stage_dirname(index, label))

    def stage_parts(self, index: int, label: str) -> list[Path]:
        """The parquet shards of one stage's output, in shard order (empty if the stage has not run)."""
        return sorted(self.stage_path(index, label).glob(PART_GLOB))

    def input_parts(self) -> list[Path]:
        return sorted(self.input_dir.glob(PART_GLOB))

    def read_json(self, path: Path, what: str) -> dict[str, Any]:
        """A JSON record of this directory (plan, manifest, sidecar); the error names the file and what it is."""
        try:
            return json.loads(path.read_text())
        except OSError:
            raise WorkDirError(f"{path}: missing ({what}); has a run finished in the work directory {self.root}?") from None
        except json.JSONDecodeError as e:
            raise WorkDirError(f"{path}: not valid JSON ({e})") from None

    def read_manifest(self) -> dict[str, Any]:
        return self.read_json(self.manifest_path, "the run's manifest")

    def read_plan(self) -> dict[str, Any]:
        return self.read_json(self.plan_path, "the run's plan")

    @property
    def output_dir(self) -> Path:
        return self.root / "output"

    @staticmethod
    def part_name(i: int) -> str:
        return f"part-{i:05d}.parquet"

    @staticmethod
    def sidecar_of(part: Path) -> Path:
        return part.with_suffix(".json")

    # -- lock --------------------------------------------------------------------------------
    def lock(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise WorkDirLocked(f"work directory {self.root} is in use by another run (pid {holder}); "
                                f"wait for it to finish or use another --work directory") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    # -- done markers -----------------------------------------------------------------------
    @staticmethod
    def done_sidecar(part: Path, fingerprint: str) -> dict[str, Any] | None:
        """The sidecar of a finished shard whose fingerprint matches, or None (then: recompute)."""
        sidecar = WorkDir.sidecar_of(part)
        try:
            meta = json.loads(sidecar.read_text())
            if meta.get("fingerprint") != fingerprint:
                return None
            if sha256_bytes(part.read_bytes()) != meta["output"]["sha256"]:
                return None
            return meta
        except (OSError, ValueError, KeyError):
            return None
