"""The default executor: one machine, shards in parallel processes, resumable, deterministic.

Plan: the input table is cut into shards of `rows_per_shard` rows. Consecutive CPU map stages form a
segment that runs fused per shard in a process pool (--workers). A map stage with a model (llm or
embedder) runs its shards one after another in the main process: the model is loaded once, and the
backend batches the shard's requests (a model must not be loaded once per worker process; for several
GPUs use the Ray executor). A global stage is a barrier: it reads every shard of its input in the main
process and its output is cut again into shards of `rows_per_shard` rows.

Resume: see workdir.py. Determinism: shards keep the row order the stages give them, and every file is
written by storage.parquet_bytes, so the same inputs and cached answers give byte-identical shards.
"""
from __future__ import annotations

import concurrent.futures as cf
import json
import multiprocessing
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from .cache import RequestCache
from .context import ModelPool, StageContext
from .inputs import read_input, split_rows
from .manifest import build_manifest, write_manifest
from .pipeline_config import PipelineConfig, StageSpec
from .progress import StageBars
from .runner import check_plan, concat, fingerprint, preflight, run_stage, segments
from .storage import (join, parquet_bytes, read_parquet, remove_stale, sha256_bytes, table_from_bytes, unified_empty,
                      write_atomic, write_json_atomic, write_parquet, write_parquet_bytes)
from .workdir import WorkDir

STAGE_DONE = "_SUCCESS.json"


@dataclass
class RunOptions:
    workers: int = 1
    cache_path: str | None = None        # default: <work>/cache.sqlite
    cache_only: bool = False
    progress: bool = True
    output: str | None = None            # where the final shards go; default: the pipeline's `output:` or <work>/output
    executor: str = "local"


def shard_ref(work: WorkDir, path: Path, info: dict[str, Any]) -> dict[str, Any]:
    return {"path": str(path), "file": str(path.relative_to(work.root)), "rows": info["rows"],
            "bytes": info["bytes"], "sha256": info["sha256"]}


# -- one shard through a segment of map stages (main process or pool worker) ---------------------------
def run_map_shard(config: PipelineConfig, specs: list[StageSpec], in_ref: dict, part_name: str, work: WorkDir,
                  cache: RequestCache | None, models: ModelPool, cache_only: bool, bars: StageBars | None = None
                  ) -> list[dict[str, Any]]:
    """Returns one sidecar per stage (with `resumed` true where the shard was already done)."""
    metas, table, ref = [], None, in_ref
    for spec in specs:
        part = work.stage_dir(spec.dirname) / part_name
        fp = fingerprint(config, spec, [ref["sha256"]], models)
        meta = work.done_sidecar(part, fp)
        if meta is not None:
            metas.append({**meta, "resumed": True})
            table, ref = None, {**meta["output"], "path": str(part)}
            continue
        if table is None:
            table = read_parquet(ref["path"])
        progress = bars.requests(spec.label) if bars is not None and spec.llm_roles else None
        ctx = StageContext(config, spec, cache=cache, models=models, cache_only=cache_only, progress=progress)
        kept, stats = run_stage(spec, table, ctx)
        data = parquet_bytes(kept)
        out = shard_ref(work, part, write_parquet_bytes(part, data, kept.num_rows))
        meta = {"fingerprint": fp, "stage": spec.label, "input": {k: ref[k] for k in ("file", "rows", "sha256")},
                "output": {k: out[k] for k in ("file", "rows", "bytes", "sha256")}, "stats": stats}
        write_json_atomic(work.sidecar_of(part), meta)
        metas.append({**meta, "resumed": False})
        table, ref = table_from_bytes(data), out     # what a resumed run would read from the file
    return metas


def _worker_task(args: tuple) -> list[dict[str, Any]]:
    """Pool entry point. The configuration travels pickled (stage classes are imported by name in the worker)."""
    config, stage_indices, in_ref, part_name, root = args
    specs = [config.stages[i] for i in stage_indices]
    return run_map_shard(config, specs, in_ref, part_name, WorkDir(root), None, ModelPool(config), False)


class LocalExecutor:
    def __init__(self, config: PipelineConfig, work: str | Path, options: RunOptions | None = None):
        self.config = config
        self.work = WorkDir(work)
        self.options = options or RunOptions()
        self.cache = RequestCache(self.options.cache_path or self.work.root / "cache.sqlite")
        self.models = ModelPool(config)
        self.stage_metas: dict[str, list[dict[str, Any]]] = {}

    def run(self) -> dict[str, Any]:
        self.work.lock()
        try:
            return self._run()
        finally:
            self.models.close()
            self.cache.close()
            self.work.unlock()

    # -- the run ---------------------------------------------------------------------------------
    def _run(self) -> dict[str, Any]:
        started_at = datetime.now(timezone.utc)
        t0 = time.perf_counter()
        table = read_input(self.config)                 # bad input fails here ...
        check_plan(self.config, table.schema)           # ... and missing columns here, before any work
        shards = self._write_input(split_rows(table, self.config.input.rows_per_shard))
        self._write_plan(len(shards))
        bars = StageBars([s.label for s in self.config.stages], {}, self.options.progress)
        try:
            current = shards
            for group in segments(self.config):
                for pos, spec in enumerate(group):
                    (self.work.stage_dir(spec.dirname) / STAGE_DONE).unlink(missing_ok=True)
                    bars.start(spec.label, sum(r["rows"] for r in current) if pos == 0 else None)
                if group[0].stage.kind == "global":
                    current = self._run_global(group[0], current, bars)
                elif group[0].uses_model:
                    current = self._run_map_in_process(group, current, bars)
                else:
                    current = self._run_map_pool(group, current, bars)
                for spec in group:
                    self._mark_stage_done(spec)
                    bars.finish(spec.label)
        finally:
            bars.close()
        outputs = self._publish(current)
        manifest = build_manifest(self.config, root=self.work.root, executor=self.options.executor, started_at=started_at,
                                  wall_s=time.perf_counter() - t0, input_rows=table.num_rows, input_shards=shards,
                                  stage_metas=self.stage_metas, outputs=outputs, cache=self.cache,
                                  cache_only=self.options.cache_only, workers=self.options.workers,
                                  identities=self.models.identities())
        write_manifest(manifest, self.work.root)
        return manifest

    def _write_input(self, tables: list[pa.Table]) -> list[dict[str, Any]]:
        refs = []
        for i, t in enumerate(tables):
            path = self.work.input_dir / self.work.part_name(i)
            refs.append(shard_ref(self.work, path, write_parquet(path, t)))
        remove_stale(self.work.input_dir, {self.work.part_name(i) for i in range(len(tables))})
        return refs

    def _write_plan(self, n_input_shards: int) -> None:
        plan = {"pipeline": str(self.config.path), "pipeline_sha256": self.config.sha256, "name": self.config.name,
                "input_shards": n_input_shards,
                "stages": [{"label": s.label, "stage": s.stage.name, "kind": s.stage.kind, "dir": f"stages/{s.dirname}",
                            "models": list(s.llm_roles) + ([s.embedder_role] if s.embedder_role else [])}
                           for s in self.config.stages]}
        write_json_atomic(self.work.root / "plan.json", plan)

    def _record(self, spec: StageSpec, metas: list[dict[str, Any]], n_parts: int) -> None:
        self.stage_metas[spec.label] = metas
        remove_stale(self.work.stage_dir(spec.dirname),
                     {n for i in range(n_parts) for n in (self.work.part_name(i), self.work.part_name(i)[:-8] + ".json")})

    def _mark_stage_done(self, spec: StageSpec) -> None:
        metas = self.stage_metas[spec.label]
        write_json_atomic(self.work.stage_dir(spec.dirname) / STAGE_DONE,
                          {"stage": spec.label, "shards": len(metas), "rows_out": sum(m["output"]["rows"] for m in metas)})

    def _collect(self, group: list[StageSpec], per_shard: list[list[dict]]) -> list[dict]:
        for spec_pos, spec in enumerate(group):
            self._record(spec, [metas[spec_pos] for metas in per_shard], len(per_shard))
        last = group[-1]
        return [{**m[-1]["output"], "path": str(self.work.stage_dir(last.dirname) / Path(m[-1]["output"]["file"]).name)}
                for m in per_shard]

    def _update_bars(self, group: list[StageSpec], metas: list[dict], bars: StageBars) -> None:
        for spec, meta in zip(group, metas):
            bars.update(spec.label, meta["input"]["rows"])

    def _run_map_in_process(self, group, inputs, bars) -> list[dict]:
        per_shard = []
        for i, ref in enumerate(inputs):
            metas = run_map_shard(self.config, group, ref, self.work.part_name(i), self.work, self.cache,
                                  self.models, self.options.cache_only, bars)
            self._update_bars(group, metas, bars)
            per_shard.append(metas)
        return self._collect(group, per_shard)

    def _run_map_pool(self, group, inputs, bars) -> list[dict]:
        if self.options.workers <= 1 or len(inputs) == 1:
            return self._run_map_in_process(group, inputs, bars)
        indices = [s.index for s in group]
        tasks = [(self.config, indices, ref, self.work.part_name(i), str(self.work.root)) for i, ref in enumerate(inputs)]
        per_shard: list[list[dict] | None] = [None] * len(tasks)
        # spawn, not fork: the parent may hold a SQLite connection, model threads or a tqdm lock
        ctx = multiprocessing.get_context("spawn")
        with cf.ProcessPoolExecutor(max_workers=min(self.options.workers, len(tasks)), mp_context=ctx) as pool:
            futures = {pool.submit(_worker_task, t): i for i, t in enumerate(tasks)}
            try:
                for fut in cf.as_completed(futures):
                    metas = fut.result()
                    per_shard[futures[fut]] = metas
                    self._update_bars(group, metas, bars)
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)   # finished shards stay done; no new ones start
                raise
        return self._collect(group, per_shard)  # type: ignore[arg-type]

    def _run_global(self, spec: StageSpec, inputs: list[dict], bars: StageBars) -> list[dict]:
        stage_dir = self.work.stage_dir(spec.dirname)
        fp = fingerprint(self.config, spec, [r["sha256"] for r in inputs], self.models)
        done = self._global_done(stage_dir, fp)
        if done is not None:
            bars.update(spec.label, done["stats"]["rows_in"])
            self._record(spec, [{**done, "resumed": True}], len(done["outputs"]))
            return [{**o, "path": str(stage_dir / Path(o["file"]).name)} for o in done["outputs"]]
        table = concat([read_parquet(r["path"]) for r in inputs])
        ctx = StageContext(self.config, spec, cache=self.cache, models=self.models, cache_only=self.options.cache_only,
                           progress=bars.requests(spec.label) if spec.llm_roles else None)
        kept, stats = run_stage(spec, table, ctx)
        outs = []
        for i, part in enumerate(split_rows(kept, self.config.input.rows_per_shard)):
            path = stage_dir / self.work.part_name(i)
            outs.append(shard_ref(self.work, path, write_parquet(path, part)))
        meta = {"fingerprint": fp, "stage": spec.label, "input": {"shards": len(inputs), "rows": table.num_rows},
                "outputs": [{k: o[k] for k in ("file", "rows", "bytes", "sha256")} for o in outs],
                "output": {"rows": kept.num_rows}, "stats": stats}
        write_json_atomic(stage_dir / "_stage.json", meta)
        bars.update(spec.label, table.num_rows)
        self.stage_metas[spec.label] = [{**meta, "resumed": False}]
        remove_stale(stage_dir, {self.work.part_name(i) for i in range(len(outs))})
        return outs

    @staticmethod
    def _global_done(stage_dir: Path, fp: str) -> dict | None:
        try:
            meta = json.loads((stage_dir / "_stage.json").read_text())
            if meta["fingerprint"] != fp:
                return None
            for o in meta["outputs"]:
                if sha256_bytes((stage_dir / Path(o["file"]).name).read_bytes()) != o["sha256"]:
                    return None
            return meta
        except (OSError, ValueError, KeyError):
            return None

    def _publish(self, finals: list[dict]) -> list[dict[str, Any]]:
        """Copy the last stage's shards to the output location (same bytes; an empty shard gets the column
        types of the first shard with rows)."""
        target = self.options.output or self.config.output or str(self.work.output_dir)
        reference = next((pq.read_schema(r["path"]) for r in finals if r["rows"]), None)
        outs = []
        for i, ref in enumerate(finals):
            data = Path(ref["path"]).read_bytes()
            if not ref["rows"]:
                data = parquet_bytes(unified_empty(read_parquet(ref["path"]), reference))
            path = join(target, self.work.part_name(i))
            write_atomic(path, data)
            outs.append({"path": path, "rows": ref["rows"], "bytes": len(data), "sha256": sha256_bytes(data)})
        remove_stale(target, {self.work.part_name(i) for i in range(len(finals))})
        return outs


def run_local(config: PipelineConfig, work: str | Path, options: RunOptions | None = None) -> dict[str, Any]:
    preflight(config)                  # bad registries and files fail here, with nothing written
    return LocalExecutor(config, work, options).run()
