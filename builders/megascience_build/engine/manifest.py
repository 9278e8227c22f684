"""work/manifest.json: what a run did, enough for a third party to check a regenerated shard.

Per stage: rows in/out, drops by reason, rows per subject in/out, counters, models (id + revision),
prompts (name + sha256), sampling, tokens, cache hits/misses, shards computed vs resumed, wall time.
Per run: pipeline file + sha256, package version, executor, input, output shards (rows, bytes, sha256).
Counts are summed from the shard sidecars, so a resumed run reports the whole dataset, not just its part;
`usage_this_run` has the model counters of the shards this run computed.
"""
from __future__ import annotations

import json
import platform
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow

from .. import __version__
from .cache import RequestCache
from .pipeline_config import PipelineConfig
from .runner import merge_stats
from .storage import write_json_atomic

MANIFEST = "manifest.json"


def build_manifest(config: PipelineConfig, *, executor: str, started_at: datetime, wall_s: float, input_rows: int,
                   input_shards: list[dict], stage_metas: dict[str, list[dict]], outputs: list[dict],
                   cache: RequestCache | None, cache_only: bool, workers: int) -> dict[str, Any]:
    stages = []
    for spec in config.stages:
        metas = stage_metas.get(spec.label, [])
        totals = merge_stats([m["stats"] for m in metas])
        roles = [*spec.llm_roles, *([spec.embedder_role] if spec.embedder_role else [])]
        stages.append({
            "index": spec.index, "label": spec.label, "stage": spec.stage.name, "kind": spec.stage.kind,
            "params": spec.stage.params, "gpus": spec.stage.resources.gpus,
            "models": [config.model_ref(r) for r in roles],
            "prompts": [{"slot": slot, "name": t.name, "sha256": t.sha256} for slot, t in sorted(spec.prompts.items())],
            "sampling": asdict(spec.sampling) if spec.llm_roles else None,
            "shards": len(metas), "shards_resumed": sum(1 for m in metas if m.get("resumed")),
            **totals,
            # `usage` covers every shard (resumed ones as recorded when they were computed); this only this run
            "usage_this_run": merge_stats([m["stats"] for m in metas if not m.get("resumed")])["usage"],
        })
    return {
        "name": config.name,
        "pipeline": {"path": str(config.path), "sha256": config.sha256, "seed": config.seed,
                     "overrides": config.overrides},
        "package": {"name": "megascience-build", "version": __version__, "pyarrow": pyarrow.__version__,
                    "python": platform.python_version()},
        "executor": {"name": executor, "workers": workers},
        "started_at": started_at.isoformat(timespec="seconds"),
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "wall_s": round(wall_s, 3),
        "input": {"kind": config.input.kind, "patterns": list(config.input.patterns), "rows": input_rows,
                  "limit": config.limit, "rows_per_shard": config.input.rows_per_shard, "shards": len(input_shards)},
        "models": {role: config.model_ref(role) for role in sorted(config.models)},
        "cache": {"path": str(cache.path) if cache else None, "cache_only": cache_only,
                  "corrupted_entries_seen": sum(s["usage"].get("cache_corrupted", 0) for s in stages)},
        "stages": stages,
        "outputs": outputs,
        "output_rows": sum(o["rows"] for o in outputs),
    }


def write_manifest(manifest: dict[str, Any], root: Path) -> None:
    from .report import write_report
    write_json_atomic(Path(root) / MANIFEST, manifest)
    write_report(manifest, Path(root))


def read_manifest(root: str | Path) -> dict[str, Any]:
    path = Path(root) / MANIFEST
    try:
        return json.loads(path.read_text())
    except OSError:
        raise FileNotFoundError(f"no manifest at {path}: has a run finished in this work directory?") from None
