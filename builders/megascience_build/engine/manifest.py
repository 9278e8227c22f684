"""work/manifest.json: what a run did, enough for a third party to check a regenerated shard.

Per stage: rows in/out, drops by reason, rows per subject in/out, counters, models (resolved identities),
prompts (name + sha256), sampling, tokens, cache hits/misses, shards computed vs resumed, wall time.
No absolute path of the building machine appears: files are named by name or relative path and sha256.
Per run: pipeline file + sha256, package version, executor, input, output shards (rows, bytes, sha256).
Counts are summed from the shard sidecars, so a resumed run reports the whole dataset, not just its part;
`usage_this_run` has the model counters of the shards this run computed.
"""
from __future__ import annotations

import os
import platform
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

import pyarrow

from .. import __version__
from ..backends.identity import ModelIdentity
from .cache import RequestCache
from .pipeline_config import PipelineConfig
from .runner import merge_stats
from .storage import is_url, join
from .workdir import WorkDir


def model_entry(config: PipelineConfig, role: str, identity: ModelIdentity) -> dict[str, Any]:
    """A model as it really ran (resolved identity and its digest), with what the pipeline file pinned."""
    spec = config.models[role]
    pinned = str(spec["model"])
    if Path(pinned).is_absolute():     # a local weights path: named relative to the pipeline
        pinned = _relative_to(pinned, config.path.parent)
    return {"role": role, **identity.as_dict(), "digest": identity.digest,
            "pinned": {"model": pinned, "revision": spec.get("revision")}}


def build_manifest(config: PipelineConfig, *, root: str | Path, executor: str, started_at: datetime, wall_s: float, input_rows: int,
                   input_shards: int, stage_metas: dict[str, list[dict]], outputs: list[dict],
                   cache: RequestCache | None, cache_only: bool, workers: int,
                   identities: Mapping[str, ModelIdentity]) -> dict[str, Any]:
    models = {role: model_entry(config, role, ident) for role, ident in sorted(identities.items())}
    stages = []
    for spec in config.stages:
        metas = stage_metas.get(spec.label, [])
        totals = merge_stats([m["stats"] for m in metas])
        roles = [*spec.llm_roles, *([spec.embedder_role] if spec.embedder_role else [])]
        stages.append({
            "index": spec.index, "label": spec.label, "stage": spec.stage.name, "kind": spec.stage.kind,
            "params": _portable(spec.stage.params, config.path.parent), "gpus": spec.stage.resources.gpus,
            "models": [models[r] for r in roles],
            "prompts": [{"slot": slot, "name": t.name, "sha256": t.sha256} for slot, t in sorted(spec.prompts.items())],
            "sampling": asdict(spec.sampling) if spec.llm_roles else None,
            "shards": len(metas), "shards_resumed": sum(1 for m in metas if m.get("resumed")),
            **totals,
            # `usage` covers every shard (resumed ones as recorded when they were computed); this only this run
            "usage_this_run": merge_stats([m["stats"] for m in metas if not m.get("resumed")])["usage"],
        })
    return {
        "name": config.name,
        "pipeline": {"file": config.path.name, "sha256": config.sha256, "seed": config.seed,
                     "overrides": config.overrides},
        "package": {"name": "megascience-build", "version": __version__, "pyarrow": pyarrow.__version__,
                    "python": platform.python_version()},
        "executor": {"name": executor, "workers": workers},
        "started_at": started_at.isoformat(timespec="seconds"),
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "wall_s": round(wall_s, 3),
        "input": {"kind": config.input.kind, "patterns": [_relative_to(p, config.path.parent) for p in config.input.patterns], "rows": input_rows,
                  "limit": config.limit, "rows_per_shard": config.input.rows_per_shard, "shards": input_shards},
        "models": models,
        "cache": {"file": Path(cache.path).name if cache else None, "cache_only": cache_only,
                  "corrupted_entries_seen": sum(s["usage"].get("cache_corrupted", 0) for s in stages)},
        "stages": stages,
        **portable_outputs(outputs, Path(root)),
        "output_rows": sum(o["rows"] for o in outputs),
    }


def _relative_to(location: str, base: Path) -> str:
    """A local path relative to `base` (with `..` where it lies outside it); a URL unchanged."""
    if is_url(location) or not Path(location).is_absolute():
        return location
    return Path(os.path.relpath(Path(location).resolve(), base.resolve())).as_posix()


def _portable(value: Any, base: Path) -> Any:
    """Stage parameters with the absolute paths of this machine made relative to the pipeline's folder."""
    if isinstance(value, dict):
        return {k: _portable(v, base) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_portable(v, base) for v in value]
    if isinstance(value, str) and value.startswith(os.sep) and Path(value).exists():
        return _relative_to(value, base)
    return value


def portable_outputs(outputs: list[dict], root: Path) -> dict[str, Any]:
    """{"output_dir": ..., "outputs": [{file, rows, bytes, sha256}]} from the executor's shard records."""
    dirs = {str(o["path"]).rsplit("/", 1)[0] if is_url(o["path"]) else str(Path(o["path"]).parent) for o in outputs}
    return {"output_dir": _relative_to(dirs.pop(), root) if len(dirs) == 1 else None,
            "outputs": [{"file": str(o["path"]).rsplit("/", 1)[-1], "rows": o["rows"], "bytes": o["bytes"],
                         "sha256": o["sha256"]} for o in outputs]}


def output_paths(manifest: dict[str, Any], root: str | Path) -> list[str]:
    """Where a finished run's output shards are, from its manifest and work directory."""
    base = manifest["output_dir"]
    if not is_url(base) and not Path(base).is_absolute():
        base = str(Path(root) / base)
    return [join(base, o["file"]) for o in manifest["outputs"]]


def write_manifest(manifest: dict[str, Any], root: str | Path) -> None:
    """manifest.json, report.md and report.png of the work directory `root`."""
    from .report import write_report
    WorkDir(root).write_manifest(manifest)
    write_report(manifest, Path(root))


def read_manifest(root: str | Path) -> dict[str, Any]:
    """A finished run's manifest; a missing one raises workdir.MissingRecord (a FileNotFoundError naming the file)."""
    return WorkDir(root).read_manifest()
