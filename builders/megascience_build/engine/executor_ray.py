"""The Ray Data executor: the same stages and the same output bytes as the local executor, on a cluster.

- The run around the stages is the local executor's (orchestration.py): the driver reads and checks the
  input, writes the plan, publishes the final shards and writes the manifest with the same code. It cuts the
  input into the same shards; each shard becomes one block in the object store (two helper columns carry
  its shard number and row order).
- Map stages run through `Dataset.map_batches` with the pyarrow batch format and whole blocks as batches,
  so a stage sees exactly the shard the local executor gives it. CPU stages run as Ray tasks; a stage with
  a model runs in an actor pool (`replicas:` actors, `gpus:` GPUs each), so each replica loads its model
  once, and runs up to `--shards-in-flight` shards at once on threads feeding its backend's one request
  window (backends/shared_stream.py), as the local executor does. Every replica shares the request cache through one cache actor on the driver's node, which alone
  opens the SQLite file (--cache: a path on the driver's local disk).
- A global stage is a barrier: the driver materialises its input, runs it, and cuts the output into shards.
- The driver writes the final shards itself with the same writer (Orchestration.publish), in shard order,
  fetching one shard at a time from the object store, so the files are byte-identical to the local
  executor's. Inputs and outputs may be any fsspec path (s3://, gs://, ...). The driver holds the whole
  input once (to cut it) and the whole input of each global stage (like the local executor): size its
  memory for the largest of those.

Resume on Ray is at request level (the cache); stage outputs are not checkpointed per shard.
Connect to a cluster with RAY_ADDRESS (or `ray start --head` on this node); without one a local Ray
instance is started.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.compute as pc

from .cache import RequestCache
from .context import ModelPool, StageContext
from .inputs import split_rows
from .orchestration import Orchestration, RunOptions
from .pipeline_config import PipelineConfig, StageSpec
from .runner import concat, run_stage, segments
from .storage import roundtrip

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


def actor_pool(replicas: int, shards_in_flight: int):
    """`replicas` actors, each running up to `shards_in_flight` shards at once on its own threads (they share
    the replica's model through its shared request stream, as in the local executor). Ray Data runs calls of
    one actor concurrently only with `enable_true_multi_threading` (Ray 2.60 has it); older Ray gets one
    shard at a time per replica."""
    import inspect

    from ray.data import ActorPoolStrategy

    accepted = inspect.signature(ActorPoolStrategy).parameters
    if shards_in_flight > 1 and {"max_concurrent_calls_per_actor", "enable_true_multi_threading"} <= set(accepted):
        return ActorPoolStrategy(size=replicas, max_concurrent_calls_per_actor=shards_in_flight,
                                 enable_true_multi_threading=True)
    return ActorPoolStrategy(size=replicas)


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

    def get_many(self, keys, *, failures: bool = False, tally: dict | None = None):
        import ray
        found, corrupted = ray.get(self._server.get_many.remote(list(keys), failures))
        self.corrupted += corrupted
        if tally is not None:
            tally["corrupted"] = tally.get("corrupted", 0) + corrupted
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
            tally: dict = {}
            found = self.cache.get_many(keys, failures=failures, tally=tally)
            return found, tally.get("corrupted", 0)

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


class RayExecutor(Orchestration):
    name = "ray"
    checkpoints = False       # resume is at request level (the cache): plan.json has no stage folders

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        import ray
        started_here = not ray.is_initialized()
        if started_here:
            ray.init(address=os.environ.get("RAY_ADDRESS"), include_dashboard=False, log_to_driver=False)
        try:
            yield
        finally:
            if started_here:
                ray.shutdown()

    def workers(self) -> int:
        import ray
        return int(ray.cluster_resources().get("CPU", 0))

    def run_stages(self, shards: list[pa.Table]) -> list:
        import ray
        import ray.data

        ctx = ray.data.DataContext.get_current()
        ctx.execution_options.preserve_order = True
        ctx.enable_progress_bars = self.options.progress
        collector = _collector_class().remote()
        cache_server = _cache_server(self.cache_path)
        cache = ActorCache(cache_server, self.cache_path)
        try:
            # the same shards, with the same column types, as the local executor's input files
            ds, empties = self._dataset(shards)
            pending: list[StageSpec] = []          # map stages added to `ds` and not yet materialised
            for group in segments(self.config):
                spec = group[0]
                if spec.stage.kind == "global":
                    inputs = [self._load(src) for src in self._materialise(ds, empties, pending, collector)]
                    kept, stats = run_stage(spec, concat(inputs), self.stage_context(spec))
                    del inputs
                    self.record_stage(spec, [{"stats": stats, "resumed": False}])
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
                                            compute=actor_pool(spec.replicas, self.options.shards_in_flight),
                                            num_gpus=spec.stage.resources.gpus or None)
                    else:
                        ds = ds.map_batches(_cpu_stage, batch_format="pyarrow", batch_size=None, zero_copy_batch=True,
                                            fn_kwargs=dict(kwargs, collector=collector))
                    pending.append(spec)
            return self._materialise(ds, empties, pending, collector)
        finally:
            ray.kill(collector)
            ray.kill(cache_server)

    @staticmethod
    def _dataset(shards: list[pa.Table]):
        """A dataset with one block per shard (typed as the local executor's shard files), and each shard's
        empty table (its schema); the rows themselves now live in the object store, not in the driver."""
        import ray
        import ray.data
        shards = [roundtrip(t) for t in shards]
        refs = [ray.put(tag(t, i)) for i, t in enumerate(shards)]
        return ray.data.from_arrow_refs(refs), [t.slice(0, 0) for t in shards]

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
                    table, stats = run_stage(spec, table, self.stage_context(spec))
                else:
                    stats = got[0]
                    table = pa.Table.from_batches([], schema=pa.ipc.read_schema(pa.py_buffer(got[1])))
                per_stage[spec.label].append({"stats": stats, "resumed": False})
            sources.append((shard, blocks_of[shard]) if shard in blocks_of else table)
        for spec in pending:
            self.record_stage(spec, per_stage[spec.label])
        return sources

    @staticmethod
    def _load(source) -> pa.Table:
        """One shard's rows, in order, from its blocks."""
        import ray
        if isinstance(source, pa.Table):
            return source
        shard, refs = source
        return pa.concat_tables([t for ref in refs for s, t in untag(ray.get(ref)) if s == shard])

    # -- the final shards are blocks in the object store (or an empty table) ---------------------------
    def final_empty(self, final) -> bool:
        return isinstance(final, pa.Table) and not final.num_rows

    def final_table(self, final) -> pa.Table:
        return self._load(final)


def run_ray(config: PipelineConfig, work: str | Path, options: RunOptions | None = None) -> dict[str, Any]:
    return RayExecutor(config, work, options).run()
