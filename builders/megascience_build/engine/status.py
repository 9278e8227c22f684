"""What `megascience-build status` shows: per stage, finished shards and rows, read from the work directory."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .workdir import WorkDir


def work_status(work: str | Path) -> dict[str, Any]:
    """Raises workdir.MissingRecord (a FileNotFoundError naming plan.json) where no run has started."""
    wd = WorkDir(work)
    plan = wd.read_plan()
    finished = wd.finished()
    stages = []
    for index, st in enumerate(plan["stages"]):
        entry = {"label": st["label"], "stage": st["stage"], "kind": st["kind"]}
        if st["dir"] is None:   # an executor without per-shard checkpoints (Ray): a stage is done when the run is
            stages.append({**entry, "state": "done" if finished else "unknown", "shards_done": 0, "rows_out": 0})
            continue
        if st["kind"] == "global":
            record = wd.global_record(index, st["label"])
            done, rows = (len(record["outputs"]), record["output"]["rows"]) if record else (0, 0)
        else:
            metas = wd.finished_sidecars(index, st["label"])
            done, rows = len(metas), sum(m["output"]["rows"] for m in metas)
        state = "done" if wd.stage_done(index, st["label"]) else ("partial" if done else "pending")
        stages.append({**entry, "state": state, "shards_done": done, "rows_out": rows})
    return {"work": str(wd.root), "pipeline": plan["pipeline"], "input_shards": plan["input_shards"],
            "executor": plan.get("executor", "local"), "stages": stages, "locked_by": wd.lock_holder()}
