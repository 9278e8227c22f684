"""The default executor: one machine, shards in parallel processes, resumable, deterministic.

Plan: the input table is cut into shards of `rows_per_shard` rows. Consecutive CPU map stages form a
segment that runs fused per shard in a process pool (--workers). A map stage with a model (llm or
embedder) runs in the main process, where the model is loaded once (a model must not be loaded once per
worker process; for several GPUs use the Ray executor): up to `--shards-in-flight` of its shards at once,
each on a thread, all feeding the backend through one shared request stream (backends/shared_stream.py),
so a shard's last long replies do not leave the backend idle; a finished shard's thread takes the next
shard. A global stage is a barrier: it reads every shard of its input in the main process and its output is
cut again into shards of `rows_per_shard` rows.

This module only schedules; the run around it (input checks, plan.json, stage records, publishing the
final shards, the manifest) is orchestration.py's, shared with the Ray executor.

Resume: see workdir.py. Determinism: shards keep the row order the stages give them, and every file is
written by storage.parquet_bytes, so the same inputs and cached answers give byte-identical shards.
"""
from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from .cache import RequestCache
from .context import ModelPool, StageContext
from .inputs import split_rows
from .orchestration import Orchestration, RunOptions
from .pipeline_config import PipelineConfig, StageSpec
from .progress import StageBars
from .runner import concat, fingerprint, run_stage, segments
from .storage import parquet_bytes, read_parquet, table_from_bytes, write_parquet, write_parquet_bytes
from .workdir import WorkDir


# -- one shard through a segment of map stages (main process or pool worker) ---------------------------
def run_map_shard(config: PipelineConfig, specs: list[StageSpec], in_ref: dict, shard: int, work: WorkDir,
                  cache: RequestCache | None, models: ModelPool, cache_only: bool, bars: StageBars | None = None
                  ) -> list[dict[str, Any]]:
    """Returns one sidecar per stage (with `resumed` true where the shard was already done)."""
    metas, table, ref = [], None, in_ref
    for spec in specs:
        part = work.stage_part(spec.index, spec.label, shard)
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
        out = work.shard_ref(part, write_parquet_bytes(part, data, kept.num_rows))
        meta = {"fingerprint": fp, "stage": spec.label, "input": {k: ref[k] for k in ("file", "rows", "sha256")},
                "output": {k: out[k] for k in ("file", "rows", "bytes", "sha256")}, "stats": stats}
        work.write_sidecar(part, meta)
        metas.append({**meta, "resumed": False})
        table, ref = table_from_bytes(data), out     # what a resumed run would read from the file
    return metas


def _worker_task(args: tuple) -> list[dict[str, Any]]:
    """Pool entry point. The configuration travels pickled (stage classes are imported by name in the worker)."""
    config, stage_indices, in_ref, shard, root = args
    specs = [config.stages[i] for i in stage_indices]
    return run_map_shard(config, specs, in_ref, shard, WorkDir(root), None, ModelPool(config), False)


class LocalExecutor(Orchestration):
    name = "local"
    checkpoints = True

    # -- scheduling ------------------------------------------------------------------------------
    def run_stages(self, shards: list[pa.Table]) -> list[dict]:
        current = self._write_input(shards)
        bars = StageBars([s.label for s in self.config.stages], {}, self.options.progress)
        try:
            for group in segments(self.config):
                for pos, spec in enumerate(group):
                    self.begin_stage(spec)
                    bars.start(spec.label, sum(r["rows"] for r in current) if pos == 0 else None)
                if group[0].stage.kind == "global":
                    current = self._run_global(group[0], current, bars)
                elif group[0].uses_model:
                    current = self._run_map_in_process(group, current, bars, self.options.shards_in_flight)
                else:
                    current = self._run_map_pool(group, current, bars)
                for spec in group:
                    self.finish_stage(spec)
                    bars.finish(spec.label)
        finally:
            bars.close()
        return current

    def _write_input(self, tables: list[pa.Table]) -> list[dict[str, Any]]:
        refs = []
        for i, t in enumerate(tables):
            path = self.work.input_part(i)
            refs.append(self.work.shard_ref(path, write_parquet(path, t)))
        self.work.prune(self.work.input_dir, len(tables))
        return refs

    def _collect(self, group: list[StageSpec], per_shard: list[list[dict]]) -> list[dict]:
        for spec_pos, spec in enumerate(group):
            self.record_stage(spec, [metas[spec_pos] for metas in per_shard], len(per_shard))
        last = group[-1]
        return [{**m[-1]["output"], "path": str(self.work.stage_part(last.index, last.label, i))}
                for i, m in enumerate(per_shard)]

    def _update_bars(self, group: list[StageSpec], metas: list[dict], bars: StageBars) -> None:
        for spec, meta in zip(group, metas):
            bars.update(spec.label, meta["input"]["rows"])

    def _run_map_in_process(self, group, inputs, bars, in_flight: int = 1) -> list[dict]:
        def one(i: int, ref: dict) -> list[dict]:
            return run_map_shard(self.config, group, ref, i, self.work, self.cache, self.models,
                                 self.options.cache_only, bars)

        in_flight = min(in_flight, len(inputs))
        if in_flight <= 1:
            per_shard = []
            for i, ref in enumerate(inputs):
                per_shard.append(one(i, ref))
                self._update_bars(group, per_shard[-1], bars)
            return self._collect(group, per_shard)
        results: list[list[dict] | None] = [None] * len(inputs)
        with cf.ThreadPoolExecutor(max_workers=in_flight, thread_name_prefix="shard") as pool:
            futures = {pool.submit(one, i, ref): i for i, ref in enumerate(inputs)}
            try:
                for fut in cf.as_completed(futures):
                    results[futures[fut]] = fut.result()
                    self._update_bars(group, results[futures[fut]], bars)
            except BaseException as exc:   # finished shards stay done; the others stop at their next answer
                for fut in futures:
                    fut.cancel()
                self.models.abort(exc)
                raise
        return self._collect(group, results)  # type: ignore[arg-type]

    def _run_map_pool(self, group, inputs, bars) -> list[dict]:
        if self.options.workers <= 1 or len(inputs) == 1:
            return self._run_map_in_process(group, inputs, bars)
        indices = [s.index for s in group]
        tasks = [(self.config, indices, ref, i, str(self.work.root)) for i, ref in enumerate(inputs)]
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
        fp = fingerprint(self.config, spec, [r["sha256"] for r in inputs], self.models)
        done = self.work.done_global(spec.index, spec.label, fp)
        if done is not None:
            bars.update(spec.label, done["stats"]["rows_in"])
            self.record_stage(spec, [{**done, "resumed": True}], len(done["outputs"]))
            return self.work.global_outputs(spec.index, spec.label, done)
        table = concat([read_parquet(r["path"]) for r in inputs])
        progress = bars.requests(spec.label) if spec.llm_roles else None
        kept, stats = run_stage(spec, table, self.stage_context(spec, progress))
        outs = []
        for i, part in enumerate(split_rows(kept, self.config.input.rows_per_shard)):
            path = self.work.stage_part(spec.index, spec.label, i)
            outs.append(self.work.shard_ref(path, write_parquet(path, part)))
        meta = {"fingerprint": fp, "stage": spec.label, "input": {"shards": len(inputs), "rows": table.num_rows},
                "outputs": [{k: o[k] for k in ("file", "rows", "bytes", "sha256")} for o in outs],
                "output": {"rows": kept.num_rows}, "stats": stats}
        self.work.write_global_record(spec.index, spec.label, meta)
        bars.update(spec.label, table.num_rows)
        self.record_stage(spec, [{**meta, "resumed": False}], len(outs))
        return outs

    # -- the final shards are files of the last stage -----------------------------------------------
    def final_empty(self, final: dict) -> bool:
        return not final["rows"]

    def final_table(self, final: dict) -> pa.Table:
        return read_parquet(final["path"])

    def final_schema(self, final: dict) -> pa.Schema:
        return pq.read_schema(final["path"])

    def final_bytes(self, final: dict) -> bytes:
        return Path(final["path"]).read_bytes()


def run_local(config: PipelineConfig, work: str | Path, options: RunOptions | None = None) -> dict[str, Any]:
    return LocalExecutor(config, work, options).run()
