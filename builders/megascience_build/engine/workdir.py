"""Layout of a work directory, its lock, and its records: every path and record name lives here.

    work/.lock                          held (fcntl.flock) by the run writing this directory
    work/plan.json                      stages, their directories and shard counts (for `status`)
    work/cache.sqlite                   the request cache (unless --cache names another file)
    work/input/part-00000.parquet       the input table, cut into shards
    work/stages/NN_label/part-00000.parquet + part-00000.json   one map stage's output shard + its sidecar
    work/stages/NN_label/_stage.json    a global stage's record (fingerprint, input, output shards, stats)
    work/stages/NN_label/_SUCCESS.json  the stage's done marker: every shard of it finished in one run
    work/output/part-00000.parquet      the final shards (the last stage's output), unless `output:` says where
    work/manifest.json, report.md, report.png

A sidecar is written after its parquet file (both atomically) and records the parquet's sha256 and the
stage fingerprint. A shard counts as done only if its sidecar exists, the fingerprint matches the current
configuration and input, and the parquet file on disk has the recorded sha256. Anything else (no sidecar,
a changed parameter, prompt, model or input, a damaged file) is recomputed: model answers come from the
request cache, so a recompute costs CPU only. A global stage is done on the same terms, with its record
`_stage.json` in place of the sidecars (one sha256 per output shard).
"""
from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from typing import Any

from .storage import join, remove_stale, sha256_bytes, write_json_atomic

PLAN, MANIFEST, CACHE, LOCK = "plan.json", "manifest.json", "cache.sqlite", ".lock"
REPORT_MD, REPORT_PNG = "report.md", "report.png"
INPUT, STAGES, OUTPUT = "input", "stages", "output"
STAGE_DONE = "_SUCCESS.json"          # a stage's done marker
GLOBAL_RECORD = "_stage.json"         # a global stage's record
PART_PREFIX, PART_SUFFIX, SIDECAR_SUFFIX = "part-", ".parquet", ".json"
PART_GLOB = f"{PART_PREFIX}*{PART_SUFFIX}"
SIDECAR_GLOB = f"{PART_PREFIX}*{SIDECAR_SUFFIX}"


class WorkDirLocked(RuntimeError):
    pass


class WorkDirError(ValueError):
    """A work directory's record is missing or unreadable; the message names the file."""


class MissingRecord(WorkDirError, FileNotFoundError):
    """A record that is not there (yet): the run that writes it has not started or not finished."""


def _under_root(name: str) -> property:
    """A fixed file or folder of every work directory, as a read-only attribute (work.plan_path, ...)."""
    def path(self: WorkDir) -> Path:
        return self.root / name
    return property(path, doc=f"work/{name}")


class WorkDir:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).resolve()
        self._lock_fd: int | None = None

    # -- paths -------------------------------------------------------------------------------
    input_dir = _under_root(INPUT)
    output_dir = _under_root(OUTPUT)
    plan_path = _under_root(PLAN)
    manifest_path = _under_root(MANIFEST)
    cache_path = _under_root(CACHE)              # the request cache's default file
    lock_path = _under_root(LOCK)
    report_path = _under_root(REPORT_MD)
    report_png_path = _under_root(REPORT_PNG)

    @staticmethod
    def stage_dirname(index: int, label: str) -> str:
        """The folder name of stage #index (0-based position in the pipeline) labelled `label`."""
        return f"{index:02d}_{label}"

    @classmethod
    def stage_relpath(cls, index: int, label: str) -> str:
        """A stage's folder relative to the work directory (as plan.json records it)."""
        return f"{STAGES}/{cls.stage_dirname(index, label)}"

    def stage_path(self, index: int, label: str) -> Path:
        return self.root / self.stage_relpath(index, label)

    def stage_part(self, index: int, label: str, i: int) -> Path:
        """Shard i of a stage's output."""
        return self.stage_path(index, label) / self.part_name(i)

    def stage_parts(self, index: int, label: str) -> list[Path]:
        """The parquet shards of one stage's output, in shard order (empty if the stage has not run)."""
        return sorted(self.stage_path(index, label).glob(PART_GLOB))

    def input_part(self, i: int) -> Path:
        return self.input_dir / self.part_name(i)

    def input_parts(self) -> list[Path]:
        return sorted(self.input_dir.glob(PART_GLOB))

    def output_target(self, *choices: str | None) -> str:
        """Where the final shards go: the first of `choices` given (a path or URL), else work/output."""
        return next((c for c in choices if c), str(self.output_dir))

    def output_part(self, target: str, i: int) -> str:
        """Shard i of the final output under `target` (a path or URL)."""
        return join(target, self.part_name(i))

    @staticmethod
    def part_name(i: int) -> str:
        return f"{PART_PREFIX}{i:05d}{PART_SUFFIX}"

    @staticmethod
    def sidecar_name(i: int) -> str:
        return f"{PART_PREFIX}{i:05d}{SIDECAR_SUFFIX}"

    @staticmethod
    def sidecar_of(part: Path) -> Path:
        return part.with_suffix(SIDECAR_SUFFIX)

    @staticmethod
    def part_of(sidecar: Path) -> Path:
        return sidecar.with_suffix(PART_SUFFIX)

    def shard_ref(self, path: Path, info: dict[str, Any]) -> dict[str, Any]:
        """A shard file of this directory as the executors pass it on: where it is (absolute, and relative to
        the work directory as records name it), its rows, bytes and sha256."""
        return {"path": str(path), "file": str(path.relative_to(self.root)), "rows": info["rows"],
                "bytes": info["bytes"], "sha256": info["sha256"]}

    def prune(self, directory: str | os.PathLike, n: int, *, sidecars: bool = False) -> None:
        """Delete the shard files of `directory` (a path or URL) beyond the first n (and their sidecars)."""
        keep = {self.part_name(i) for i in range(n)}
        if sidecars:
            keep |= {self.sidecar_name(i) for i in range(n)}
        remove_stale(directory, keep, prefix=PART_PREFIX)

    def prune_stage(self, index: int, label: str, n: int) -> None:
        self.prune(self.stage_path(index, label), n, sidecars=True)

    # -- records ------------------------------------------------------------------------------
    def read_json(self, path: Path, what: str, *,
                  missing: str = "has a run finished in the work directory") -> dict[str, Any]:
        """A JSON record of this directory (plan, manifest, sidecar); the error names the file and what it is."""
        try:
            return json.loads(path.read_text())
        except OSError:
            raise MissingRecord(f"{path}: missing ({what}); {missing} {self.root}?") from None
        except json.JSONDecodeError as e:
            raise WorkDirError(f"{path}: not valid JSON ({e})") from None

    def read_manifest(self) -> dict[str, Any]:
        return self.read_json(self.manifest_path, "the run's manifest")

    def read_plan(self) -> dict[str, Any]:
        return self.read_json(self.plan_path, "the run's plan", missing="has a run started in the work directory")

    def write_plan(self, plan: dict[str, Any]) -> None:
        write_json_atomic(self.plan_path, plan)

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        write_json_atomic(self.manifest_path, manifest)

    def finished(self) -> bool:
        """A run has finished here (its manifest is written)."""
        return self.manifest_path.exists()

    # map stages: one sidecar per shard
    @staticmethod
    def done_sidecar(part: Path, fingerprint: str) -> dict[str, Any] | None:
        """The sidecar of a finished shard whose fingerprint matches, or None (then: recompute)."""
        try:
            meta = json.loads(WorkDir.sidecar_of(part).read_text())
            if meta.get("fingerprint") != fingerprint:
                return None
            if sha256_bytes(part.read_bytes()) != meta["output"]["sha256"]:
                return None
            return meta
        except (OSError, ValueError, KeyError):
            return None

    @staticmethod
    def write_sidecar(part: Path, meta: dict[str, Any]) -> None:
        """Record a finished shard (after its parquet file is written)."""
        write_json_atomic(WorkDir.sidecar_of(part), meta)

    def finished_sidecars(self, index: int, label: str) -> list[dict[str, Any]]:
        """The readable sidecars of a map stage whose parquet file is there, in shard order (what `status`
        counts; the fingerprint is not checked: that needs the configuration)."""
        metas = []
        for sidecar in sorted(self.stage_path(index, label).glob(SIDECAR_GLOB)):
            meta = _record_or_none(sidecar, "output")
            if meta is not None and self.part_of(sidecar).exists():
                metas.append(meta)
        return metas

    # global stages: one record for the stage
    def global_record_path(self, index: int, label: str) -> Path:
        return self.stage_path(index, label) / GLOBAL_RECORD

    def global_record(self, index: int, label: str) -> dict[str, Any] | None:
        """A global stage's record as written, or None where there is none (or it is unreadable)."""
        meta = _record_or_none(self.global_record_path(index, label), "output")
        return meta if meta is not None and isinstance(meta.get("outputs"), list) else None

    def done_global(self, index: int, label: str, fingerprint: str) -> dict[str, Any] | None:
        """The record of a finished global stage whose fingerprint matches and whose output shards have the
        recorded sha256, or None (then: recompute)."""
        meta = self.global_record(index, label)
        if meta is None or meta.get("fingerprint") != fingerprint:
            return None
        try:
            for out, path in zip(meta["outputs"], self.global_outputs(index, label, meta)):
                if sha256_bytes(Path(path["path"]).read_bytes()) != out["sha256"]:
                    return None
        except (OSError, KeyError, TypeError):
            return None
        return meta

    def global_outputs(self, index: int, label: str, meta: dict[str, Any]) -> list[dict[str, Any]]:
        """A global stage's output shards (from its record) with their paths in this directory."""
        stage = self.stage_path(index, label)
        return [{**o, "path": str(stage / Path(o["file"]).name)} for o in meta["outputs"]]

    def write_global_record(self, index: int, label: str, meta: dict[str, Any]) -> None:
        write_json_atomic(self.global_record_path(index, label), meta)

    # every stage: the done marker
    def stage_done_path(self, index: int, label: str) -> Path:
        return self.stage_path(index, label) / STAGE_DONE

    def stage_done(self, index: int, label: str) -> bool:
        return self.stage_done_path(index, label).exists()

    def mark_stage_done(self, index: int, label: str, record: dict[str, Any]) -> None:
        write_json_atomic(self.stage_done_path(index, label), record)

    def clear_stage_done(self, index: int, label: str) -> None:
        self.stage_done_path(index, label).unlink(missing_ok=True)

    # -- lock --------------------------------------------------------------------------------
    def lock(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
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

    def lock_holder(self) -> str | None:
        """The pid of the run holding the lock, or None when no run does."""
        if not self.lock_path.exists():
            return None
        fd = os.open(self.lock_path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        except BlockingIOError:
            return os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
        finally:
            os.close(fd)


def _record_or_none(path: Path, counted: str) -> dict[str, Any] | None:
    """A record that names its rows under `counted` (e.g. {"output": {"rows": ...}}), or None where the file is
    missing, unreadable or of another shape (a reader that only counts, like `status`, skips it)."""
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    ok = isinstance(meta, dict) and isinstance(meta.get(counted), dict) and isinstance(meta[counted].get("rows"), int)
    return meta if ok else None
