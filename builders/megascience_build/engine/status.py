"""What `megascience-build status` shows: per stage, finished shards and rows, read from the work directory."""
from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from typing import Any


def _lock_holder(root: Path) -> str | None:
    path = root / ".lock"
    if not path.exists():
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    except BlockingIOError:
        return os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
    finally:
        os.close(fd)


def work_status(work: str | Path) -> dict[str, Any]:
    root = Path(work).resolve()
    try:
        plan = json.loads((root / "plan.json").read_text())
    except OSError:
        raise FileNotFoundError(f"{root} has no plan.json: no run has started in this work directory") from None
    stages = []
    finished = (root / "manifest.json").exists()
    for st in plan["stages"]:
        if st["dir"] is None:   # the Ray executor keeps no per-shard checkpoints: a stage is done when the run is
            stages.append({"label": st["label"], "stage": st["stage"], "kind": st["kind"],
                           "state": "done" if finished else "unknown", "shards_done": 0, "rows_out": 0})
            continue
        d = root / st["dir"]
        rows, done = 0, 0
        if st["kind"] == "global":
            try:
                meta = json.loads((d / "_stage.json").read_text())
                done, rows = len(meta["outputs"]), meta["output"]["rows"]
            except (OSError, ValueError, KeyError):
                pass
        else:
            for sidecar in sorted(d.glob("part-*.json")):
                try:
                    meta = json.loads(sidecar.read_text())
                except ValueError:
                    continue
                if (d / sidecar.name.replace(".json", ".parquet")).exists():
                    done += 1
                    rows += meta["output"]["rows"]
        complete = (d / "_SUCCESS.json").exists()
        state = "done" if complete else ("partial" if done else "pending")
        stages.append({"label": st["label"], "stage": st["stage"], "kind": st["kind"], "state": state,
                       "shards_done": done, "rows_out": rows})
    return {"work": str(root), "pipeline": plan["pipeline"], "input_shards": plan["input_shards"],
            "executor": plan.get("executor", "local"), "stages": stages, "locked_by": _lock_holder(root)}
