"""One run of a pipeline into a work directory, whatever executor schedules it.

An executor subclasses `Orchestration` and only schedules: `run_stages` takes the input shards through
every stage and returns the final shards in shard order, and `final_table` (and, where a final shard is a
file, `final_bytes`) says how to read one. This class does the rest, the same for every executor:

- reads and checks the input before any work: the stages' file checks (preflight) before the work
  directory is touched, then the input table (read_input) and the columns every stage needs (check_plan);
- writes plan.json, one shape for every executor: pipeline, pipeline_sha256, name, executor, input_shards
  and per stage its label, stage, kind, models and dir (the stage's folder, None for an executor that keeps
  no per-shard checkpoints: then `status` knows a stage is done only when the run is);
- keeps the stage records: what each stage's shards report (summed into the manifest) and, for an
  executor with checkpoints, the stage done markers and the pruning of stale shards (the paths and record
  names are WorkDir's);
- publishes the final shards to the output location and writes the manifest and the report.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ContextManager, Sequence

import pyarrow as pa

from .cache import RequestCache
from .context import ModelPool, StageContext
from .inputs import read_input, split_rows
from .manifest import build_manifest, write_manifest
from .pipeline_config import PipelineConfig, StageSpec
from .runner import check_plan, preflight
from .storage import parquet_bytes, parquet_rows, sha256_bytes, unified_empty, write_atomic
from .workdir import WorkDir

EXECUTORS = ("local", "ray")


@dataclass
class RunOptions:
    workers: int = 1
    shards_in_flight: int = 8            # shards of a model stage run at once (threads sharing its backend)
    cache_path: str | None = None        # default: <work>/cache.sqlite
    cache_only: bool = False
    progress: bool = True
    output: str | None = None            # where the final shards go; default: the pipeline's `output:` or <work>/output
    executor: str = "local"              # the executor run_pipeline picks: one of EXECUTORS


class Orchestration:
    """The run around an executor's scheduling (see the module docstring)."""

    name = "local"            # the executor's name in plan.json and the manifest
    checkpoints = True        # stage shards and records in the work directory: a rerun resumes shard by shard

    def __init__(self, config: PipelineConfig, work: str | Path, options: RunOptions | None = None):
        self.config = config
        self.work = WorkDir(work)
        self.options = options or RunOptions(executor=self.name)
        self.cache_path = str(self.options.cache_path or self.work.cache_path)
        self.models = ModelPool(config)           # this process's models (the stages the driver runs)
        self.cache: RequestCache | None = None    # opened by run(), once the preflight passed
        self.stage_metas: dict[str, list[dict[str, Any]]] = {}

    # -- what an executor implements ---------------------------------------------------------------
    def run_stages(self, shards: list[pa.Table]) -> list:
        """The input shards through every stage; the final shards, in shard order (any handle the
        final_* methods read)."""
        raise NotImplementedError

    def final_table(self, final) -> pa.Table:
        raise NotImplementedError

    def final_bytes(self, final) -> bytes:
        """A final shard with rows as published (a file's own bytes where the shard is a file)."""
        return parquet_bytes(self.final_table(final))

    def final_schema(self, final) -> pa.Schema:
        return self.final_table(final).schema

    def final_empty(self, final) -> bool:
        raise NotImplementedError

    def session(self) -> ContextManager:
        """Held from the plan to the manifest (e.g. a connection to a cluster)."""
        return contextlib.nullcontext()

    def workers(self) -> int:
        """The parallelism the manifest records."""
        return self.options.workers

    # -- the run ----------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        preflight(self.config)                          # bad registries and files fail here, with nothing written
        self.work.lock()
        try:
            self.cache = RequestCache(self.cache_path)
            started_at, t0 = datetime.now(timezone.utc), time.perf_counter()
            table = read_input(self.config)             # bad input fails here ...
            check_plan(self.config, table.schema)       # ... and missing columns here, before any work
            input_rows, shards = table.num_rows, split_rows(table, self.config.input.rows_per_shard)
            del table                                   # the shards hold the rows from here on
            with self.session():
                self.work.write_plan(self.plan(len(shards)))
                outputs = self.publish(self.run_stages(shards))
                manifest = build_manifest(self.config, root=self.work.root, executor=self.name, started_at=started_at,
                                          wall_s=time.perf_counter() - t0, input_rows=input_rows,
                                          input_shards=len(shards), stage_metas=self.stage_metas, outputs=outputs,
                                          cache=self.cache, cache_only=self.options.cache_only,
                                          workers=self.workers(), identities=self.models.identities())
            write_manifest(manifest, self.work.root)
            return manifest
        finally:
            self.models.close()
            if self.cache is not None:
                self.cache.close()
            self.work.unlock()

    def plan(self, input_shards: int) -> dict[str, Any]:
        """plan.json: what `status` reads, the same shape for every executor."""
        return {"pipeline": str(self.config.path), "pipeline_sha256": self.config.sha256, "name": self.config.name,
                "executor": self.name, "input_shards": input_shards,
                "stages": [{"label": s.label, "stage": s.stage.name, "kind": s.stage.kind,
                            "dir": self.work.stage_relpath(s.index, s.label) if self.checkpoints else None,
                            "models": [*s.llm_roles, *([s.embedder_role] if s.embedder_role else [])]}
                           for s in self.config.stages]}

    def stage_context(self, spec: StageSpec, progress=None) -> StageContext:
        """The context of a stage run in this process (with its models and request cache)."""
        return StageContext(self.config, spec, cache=self.cache, models=self.models,
                            cache_only=self.options.cache_only, progress=progress)

    # -- stage records ------------------------------------------------------------------------------
    def begin_stage(self, spec: StageSpec) -> None:
        """A stage starts: it is not done until finish_stage (a killed run leaves no done marker)."""
        if self.checkpoints:
            self.work.clear_stage_done(spec.index, spec.label)

    def record_stage(self, spec: StageSpec, metas: list[dict[str, Any]], n_parts: int = 0) -> None:
        """What the stage's shards report (one meta a shard, `resumed` true for a shard found done); with
        checkpoints, the stage's files beyond its n_parts shards (an earlier run's) are removed."""
        self.stage_metas[spec.label] = metas
        if self.checkpoints:
            self.work.prune_stage(spec.index, spec.label, n_parts)

    def finish_stage(self, spec: StageSpec) -> None:
        if self.checkpoints:
            metas = self.stage_metas[spec.label]
            self.work.mark_stage_done(spec.index, spec.label, {"stage": spec.label, "shards": len(metas),
                                                               "rows_out": sum(m["output"]["rows"] for m in metas)})

    # -- the output -----------------------------------------------------------------------------------
    def publish(self, finals: Sequence) -> list[dict[str, Any]]:
        """Write the final shards to the output location, one at a time in shard order: a shard's bytes as
        the last stage wrote them, an empty shard with the column types of the first shard with rows.
        Shards of an earlier run beyond these are removed."""
        target = self.work.output_target(self.options.output, self.config.output)
        first = next((f for f in finals if not self.final_empty(f)), None)
        reference = self.final_schema(first) if first is not None else None
        outs = []
        for i, final in enumerate(finals):
            if self.final_empty(final):
                data = parquet_bytes(unified_empty(self.final_table(final), reference))
            else:
                data = self.final_bytes(final)
            path = self.work.output_part(target, i)
            write_atomic(path, data)
            outs.append({"path": path, "rows": parquet_rows(data), "bytes": len(data), "sha256": sha256_bytes(data)})
        self.work.prune(target, len(finals))
        return outs


def run_pipeline(config: PipelineConfig, work: str | Path, options: RunOptions | None = None) -> dict[str, Any]:
    """Run with the executor options.executor names; returns the manifest."""
    options = options or RunOptions()
    if options.executor == "ray":
        from .executor_ray import RayExecutor as executor
    elif options.executor == "local":
        from .executor_local import LocalExecutor as executor
    else:
        raise ValueError(f"unknown executor {options.executor!r}; expected one of {', '.join(EXECUTORS)}")
    return executor(config, work, options).run()
