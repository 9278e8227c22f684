"""The Ray Data executor: the same stages and the same output bytes as the local executor, on a cluster.

- The driver reads and checks the input (same code as the local executor) and cuts it into the same shards;
  each shard becomes one block in the object store (two helper columns carry its shard number and row order).
- Map stages run through `Dataset.map_batches` with the pyarrow batch format and whole blocks as batches,
  so a stage sees exactly the shard the local executor gives it. CPU stages run as Ray tasks; a stage with
  a model runs in an actor pool (`replicas:` actors, `gpus:` GPUs each), so each replica loads its model
  once. Every replica shares the request cache through one cache actor on the driver's node, which alone
  opens the SQLite file (--cache: a path on the driver's local disk).
- A global stage is a barrier: the driver materialises its input, runs it, and cuts the output into shards.
- The driver writes the final shards itself with the same writer, in shard order, fetching one shard at a
  time from the object store, so the files are byte-identical to the local executor's. Inputs and outputs
  may be any fsspec path (s3://, gs://, ...). The driver holds the whole input once (to cut it) and the
  whole input of each global stage (like the local executor): size its memory for the largest of those.

Resume on Ray is at request level (the cache); stage outputs are not checkpointed per shard.
Connect to a cluster with RAY_ADDRESS (or `ray start --head` on this node); without one a local Ray
instance is started.
"""
from __future__ import annotations

import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from .cache import RequestCache
from .context import ModelPool, StageContext
from .executor_local import RunOptions
from .inputs import read_input, split_rows
from .manifest import build_manifest, write_manifest
from .pipeline_config import PipelineConfig, StageSpec
from .runner import check_plan, concat, preflight, run_stage, segments
from .storage import (join, parquet_bytes, remove_stale, roundtrip, sha256_bytes, unified_empty, write_atomic,
                      write_json_atomic)
from .workdir import WorkDir

SHARD, ROW = "__msb_shard", "__msb_row"


def tag(table: pa.Table, shard: int) -> pa.Table:
    n = table.num_rows
    return table.append_column(SHARD, pa.array([shard] * n, pa.int64())).append_column(ROW, pa.array(range(n), pa.int64()))


def untag(block: pa.Table) -> list[tuple[int, pa.Table]]:
    """Split a block into (shard, rows in their original order) without the helper columns."""
    out = []
    for shard in dict.fromkeys(block.column(SHARD).to_pylist()):
        part = block.filter(pc.equal(block.column(SHARD), shard)).sort_by(ROW)
        out.append((int(shard), part.drop_columns([SHARD, ROW])))
    return out


def _apply(spec: StageSpec, block: pa.Table, make_ctx, collector) -> pa.Table:
    import ray
    outs = []
    for shard, table in untag(block):
        kept, stats = run_stage(spec, table, make_ctx())
        kept = roundtrip(kept)            # the types the local executor's next stage reads back from the file
        # stats, and the schema of an empty result (Ray may drop empty blocks), go to the driver's collector
        ray.get(collector.add.remote(spec.label, shard, stats, kept.schema.serialize().to_pybytes()))
        outs.append(tag(kept, shard))
    return pa.concat_tables(outs) if outs else block.slice(0, 0)


def _cpu_stage(block: pa.Table, *, config: PipelineConfig, index: int, collector) -> pa.Table:
    spec = config.stages[index]
    models = ModelPool(config)
    return _apply(spec, block, lambda: StageContext(config, spec, cache=None, models=models), collector)


class _ModelStage:
    """One replica of a model stage: loads its model once, serves many shards."""

    def __init__(self, *, config: PipelineConfig, index: int, cache: ActorCache, cache_only: bool, collector):
        self.config = config
        self.spec = self.config.stages[index]
        self.models = ModelPool(self.config)
        self.cache = cache
        self.cache_only = cache_only
        self.collector = collector

    def __call__(self, block: pa.Table) -> pa.Table:
        return _apply(self.spec, block, lambda: StageContext(self.config, self.spec, cache=self.cache, models=self.models,
                                                             cache_only=self.cache_only), self.collector)


class ActorCache:
    """The RequestCache interface (get_many, put_many, corrupted, path) over a cache actor.

    SQLite's WAL mode needs every process on one host (it shares memory through the -shm file), so on a
    multi-node cluster the cache file must not be opened from several nodes over a network filesystem.
    One actor, pinned to the driver's node, owns the file; model replicas anywhere send it one lookup and
    one commit per batch of requests."""

    def __init__(self, server, path: str):
        self._server = server
        self.path = path
        self.corrupted = 0

    def get_many(self, keys, *, failures: bool = False):
        import ray
        found, corrupted = ray.get(self._server.get_many.remote(list(keys), failures))
        self.corrupted += corrupted
        return found

    def put_many(self, entries, *, model: str, revision: str) -> int:
        import ray
        return ray.get(self._server.put_many.remote(dict(entries), model, revision))

    def close(self) -> None:
        pass


def _cache_server(path: str):
    """Start the cache actor on this (the driver's) node."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    @ray.remote(num_cpus=0)
    class CacheServer:
        def __init__(self, path: str):
            self.cache = RequestCache(path)

        def get_many(self, keys: list[str], failures: bool):
            before = self.cache.corrupted
            found = self.cache.get_many(keys, failures=failures)
            return found, self.cache.corrupted - before

        def put_many(self, entries: dict, model: str, revision: str) -> int:
            return self.cache.put_many(entries, model=model, revision=revision)

    here = NodeAffinitySchedulingStrategy(node_id=ray.get_runtime_context().get_node_id(), soft=False)
    return CacheServer.options(scheduling_strategy=here).remote(path)


def _collector_class():
    import ray

    @ray.remote(num_cpus=0)
    class StatsCollector:
        def __init__(self):
            self.stats: dict[tuple[str, int], tuple[dict, bytes]] = {}

        def add(self, label: str, shard: int, stats: dict, schema: bytes) -> None:
            self.stats[(label, shard)] = (stats, schema)   # a retried task overwrites, never double-counts

        def get(self, label: str) -> dict[int, tuple[dict, bytes]]:
            return {s: v for (lbl, s), v in self.stats.items() if lbl == label}

    return StatsCollector


class RayExecutor:
    def __init__(self, config: PipelineConfig, work: str | Path, options: RunOptions | None = None):
        self.config = config
        self.work = WorkDir(work)
        self.options = options or RunOptions(executor="ray")
        self.cache_path = str(self.options.cache_path or self.work.root / "cache.sqlite")
        self.stage_metas: dict[str, list[dict[str, Any]]] = {}
        self._driver_models = ModelPool(config)            # for global stages, run on the driver
        self._driver_cache = RequestCache(self.cache_path)

    def run(self) -> dict[str, Any]:
        import ray
        self.work.lock()
        started_here = False
        try:
            table = read_input(self.config)
            check_plan(self.config, table.schema)
            if not ray.is_initialized():
                ray.init(address=os.environ.get("RAY_ADDRESS"), include_dashboard=False, log_to_driver=False)
                started_here = True
            return self._run(table)
        finally:
            self._driver_models.close()
            self._driver_cache.close()
            if started_here:
                ray.shutdown()
            self.work.unlock()

    def _run(self, table: pa.Table) -> dict[str, Any]:
        import ray
        import ray.data

        started_at, t0 = datetime.now(timezone.utc), time.perf_counter()
        ctx = ray.data.DataContext.get_current()
        ctx.execution_options.preserve_order = True
        ctx.enable_progress_bars = self.options.progress
        collector = _collector_class().remote()
        cache_server = _cache_server(self.cache_path)
        cache = ActorCache(cache_server, self.cache_path)
        pipeline = str(self.config.path)

        # the same shards, with the same column types, as the local executor's input files
        ds, empties = self._dataset(split_rows(table, self.config.input.rows_per_shard))
        n_input, input_rows = len(empties), table.num_rows
        write_json_atomic(self.work.root / "plan.json", {
            "pipeline": pipeline, "pipeline_sha256": self.config.sha256, "name": self.config.name, "executor": "ray",
            "input_shards": n_input,
            "stages": [{"label": s.label, "stage": s.stage.name, "kind": s.stage.kind, "dir": None} for s in self.config.stages]})
        pending: list[StageSpec] = []          # map stages added to `ds` and not yet materialised
        for group in segments(self.config):
            spec = group[0]
            if spec.stage.kind == "global":
                inputs = [self._load(src) for src in self._materialise(ds, empties, pending, collector)]
                kept, stats = run_stage(spec, concat(inputs), self._driver_ctx(spec))
                del inputs
                self.stage_metas[spec.label] = [{"stats": stats, "resumed": False}]
                (ds, empties), pending = self._dataset(split_rows(kept, self.config.input.rows_per_shard)), []
                continue
            for spec in group:
                # the configuration travels pickled: worker nodes need the package (and any plugins), not the files
                kwargs = dict(config=self.config, index=spec.index)
                if spec.uses_model:
                    ds = ds.map_batches(_ModelStage, batch_format="pyarrow", batch_size=None, zero_copy_batch=True,
                                        fn_constructor_kwargs=dict(kwargs, cache=cache,
                                                                   cache_only=self.options.cache_only,
                                                                   collector=collector),
                                        concurrency=spec.replicas, num_gpus=spec.stage.resources.gpus or None)
                else:
                    ds = ds.map_batches(_cpu_stage, batch_format="pyarrow", batch_size=None, zero_copy_batch=True,
                                        fn_kwargs=dict(kwargs, collector=collector))
                pending.append(spec)
        finals = self._materialise(ds, empties, pending, collector)
        outputs = self._publish(finals)
        ray.kill(collector)
        ray.kill(cache_server)
        manifest = build_manifest(self.config, root=self.work.root, executor="ray", started_at=started_at, wall_s=time.perf_counter() - t0,
                                  input_rows=input_rows, input_shards=[{}] * n_input, stage_metas=self.stage_metas,
                                  outputs=outputs, cache=self._driver_cache,
                                  cache_only=self.options.cache_only, workers=int(ray.cluster_resources().get("CPU", 0)),
                                  identities=self._driver_models.identities())
        write_manifest(manifest, self.work.root)
        return manifest

    @staticmethod
    def _dataset(shards: list[pa.Table]):
        """A dataset with one block per shard (typed as the local executor's shard files), and each shard's
        empty table (its schema); the rows themselves now live in the object store, not in the driver."""
        import ray
        import ray.data
        shards = [roundtrip(t) for t in shards]
        refs = [ray.put(tag(t, i)) for i, t in enumerate(shards)]
        return ray.data.from_arrow_refs(refs), [t.slice(0, 0) for t in shards]

    def _driver_ctx(self, spec: StageSpec) -> StageContext:
        return StageContext(self.config, spec, cache=self._driver_cache, models=self._driver_models,
                            cache_only=self.options.cache_only)

    def _materialise(self, ds, empties: list[pa.Table], pending: list[StageSpec], collector) -> list:
        """Run `ds`; return, in shard order, where each shard's rows are (a (shard, block refs) pair, or a
        table for a shard without rows), and record the stats of the `pending` map stages.
        Ray may skip empty blocks: a shard that never reached a stage is replayed here on the driver (an empty
        table never reaches Stage.process, so this costs nothing and gives the local executor's result).
        Blocks stay in the object store; the driver fetches one shard at a time (see _load)."""
        import ray

        @ray.remote(num_cpus=0.1)
        def shards_of(block: pa.Table) -> list[int]:
            return list(dict.fromkeys(block.column(SHARD).to_pylist())) if block.num_rows else []

        refs = ds.to_arrow_refs()
        blocks_of: dict[int, list] = {}
        for ref, shard_ids in zip(refs, ray.get([shards_of.remote(r) for r in refs])):
            for shard in shard_ids:
                blocks_of.setdefault(shard, []).append(ref)
        reported = {spec.label: ray.get(collector.get.remote(spec.label)) for spec in pending}
        per_stage: dict[str, list[dict]] = {spec.label: [] for spec in pending}
        sources = []
        for shard, table in enumerate(empties):
            replay = False
            for spec in pending:
                got = reported[spec.label].get(shard)
                if got is None or replay:
                    replay = True
                    table, stats = run_stage(spec, table, self._driver_ctx(spec))
                else:
                    stats = got[0]
                    table = pa.Table.from_batches([], schema=pa.ipc.read_schema(pa.py_buffer(got[1])))
                per_stage[spec.label].append({"stats": stats, "resumed": False})
            sources.append((shard, blocks_of[shard]) if shard in blocks_of else table)
        for spec in pending:
            self.stage_metas[spec.label] = per_stage[spec.label]
        return sources

    @staticmethod
    def _load(source) -> pa.Table:
        """One shard's rows, in order, from its blocks."""
        import ray
        if isinstance(source, pa.Table):
            return source
        shard, refs = source
        return pa.concat_tables([t for ref in refs for s, t in untag(ray.get(ref)) if s == shard])

    def _publish(self, finals: list) -> list[dict[str, Any]]:
        """Write the final shards from the driver, one at a time, with the local executor's writer."""
        target = self.options.output or self.config.output or str(self.work.output_dir)
        first = next((src for src in finals if not isinstance(src, pa.Table)), None)
        reference = self._load(first).schema if first is not None else None
        outs = []
        for i, src in enumerate(finals):
            t = self._load(src)
            data = parquet_bytes(unified_empty(t, reference))
            path = join(target, self.work.part_name(i))
            write_atomic(path, data)
            outs.append({"path": path, "rows": t.num_rows, "bytes": len(data), "sha256": sha256_bytes(data)})
        remove_stale(target, {self.work.part_name(i) for i in range(len(finals))})
        return outs


def run_ray(config: PipelineConfig, work: str | Path, options: RunOptions | None = None) -> dict[str, Any]:
    preflight(config)                  # bad registries and files fail here, with nothing written
    return RayExecutor(config, work, options).run()
