"""Build engine on CPU: what the request cache and the local executor cost, against baselines run here.

1. Request cache: store and look up N results (SQLite WAL, checksum per row, one commit per batch of 64)
   vs the same JSON encoding + sha256 into a Python dict (the work that cannot be avoided).
2. Local executor: a CPU map stage over R rows in S shards (read, process, write shard + sidecar, manifest)
   vs a bare loop doing the same per shard (read parquet, same function, write parquet), in this process.
   With --workers 2 as well: the speed-up of the process pool (bounded by the free cores).

    python benchmarks/engine.py [--results 20000] [--rows 400000] [--shards 16]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml

from megascience_build.backends.base import GenerationRequest, GenerationResult, SamplingParams
from megascience_build.backends.identity import ModelIdentity
from megascience_build.engine import records
from megascience_build.engine.cache import RequestCache, encode_result
from megascience_build.engine.stage import Stage, StageOutput


class BenchLength(Stage):
    """A typical cheap CPU stage: a derived column and a filter with a drop reason."""
    name = "bench_length"
    inputs = ("id", "provenance", "text")
    outputs = ("text_len",)

    def process(self, batch, ctx):
        return StageOutput(*transform(batch))


STAGES = [BenchLength]      # this script is the pipeline's plugin (`plugins: [__main__]`)


def transform(batch: pa.Table):
    lengths = pc.utf8_length(batch.column("text"))
    keep = pc.greater(lengths, 40)
    kept = batch.filter(keep).append_column("text_len", lengths.filter(keep))
    dropped = [(i, "too_short") for i, k in enumerate(keep.to_pylist()) if not k]
    return kept, dropped


def bench_cache(n: int, tmp: Path) -> None:
    results = [(GenerationRequest(({"role": "user", "content": f"question {i} " * 20},), SamplingParams())
                .cache_key(ModelIdentity("bench", "m", "r")), GenerationResult("answer " * 50 + str(i), "stop", 100, 50)) for i in range(n)]
    t0 = time.perf_counter()
    baseline = {}
    for k, r in results:
        blob = encode_result(r)
        baseline[k] = (blob, hashlib.sha256(blob.encode()).hexdigest())
    for k, _ in results:
        blob, _sum = baseline[k]
        json.loads(blob)
    t_base = time.perf_counter() - t0

    cache = RequestCache(tmp / "bench-cache.sqlite")
    t0 = time.perf_counter()
    for start in range(0, n, 64):
        cache.put_many(dict(results[start:start + 64]), model="m", revision="r")
    t_put = time.perf_counter() - t0
    t0 = time.perf_counter()
    found = {}
    for start in range(0, n, 64):
        found.update(cache.get_many([k for k, _ in results[start:start + 64]]))
    t_get = time.perf_counter() - t0
    assert len(found) == n
    print(f"request cache, {n} results: put {n / t_put:,.0f}/s, get {n / t_get:,.0f}/s; "
          f"dict+json+sha256 baseline {n / t_base:,.0f}/s (both ways); "
          f"cache/baseline time ratio {(t_put + t_get) / t_base:.1f}x")


def bench_executor(rows: int, shards: int, tmp: Path) -> None:
    from megascience_build.engine.executor_local import run_local
    from megascience_build.engine.orchestration import RunOptions
    from megascience_build.engine.pipeline_config import load_pipeline

    texts = [("lorem ipsum dolor sit amet " * (1 + i % 5))[: 20 + (i * 7) % 120] for i in range(rows)]
    table = pa.table({"id": [records.content_id("bench", i) for i in range(rows)],
                      "provenance": [records.new_provenance({"kind": "dataset", "row": i}) for i in range(rows)],
                      "text": texts})
    (tmp / "data").mkdir()
    pq.write_table(table, tmp / "data" / "in.parquet")
    per_shard = -(-rows // shards)
    doc = {"name": "bench", "plugins": [__name__],
           "input": {"parquet": ["data/in.parquet"], "rows_per_shard": per_shard},
           "stages": [{"stage": "bench_length"}]}
    (tmp / "pipeline.yaml").write_text(yaml.safe_dump(doc))

    # baseline: the same work with no engine (shards pre-cut, as the executor's input step does)
    base_dir = tmp / "baseline"
    base_dir.mkdir()
    for i in range(shards):
        pq.write_table(table.slice(i * per_shard, per_shard), base_dir / f"in-{i}.parquet")
    t0 = time.perf_counter()
    for i in range(shards):
        kept, _ = transform(pq.read_table(base_dir / f"in-{i}.parquet"))
        pq.write_table(kept, base_dir / f"out-{i}.parquet", compression="zstd")
    t_base = time.perf_counter() - t0

    timings = {}
    for workers in (1, 2):
        t0 = time.perf_counter()
        m = run_local(load_pipeline(tmp / "pipeline.yaml"), tmp / f"work{workers}", RunOptions(workers=workers, progress=False))
        timings[workers] = time.perf_counter() - t0
        assert m["stages"][0]["rows_in"] == rows
    t0 = time.perf_counter()
    run_local(load_pipeline(tmp / "pipeline.yaml"), tmp / "work1", RunOptions(workers=1, progress=False))
    t_resume = time.perf_counter() - t0
    doc["input"]["rows_per_shard"] = 1
    (tmp / "one.yaml").write_text(yaml.safe_dump(doc))
    t0 = time.perf_counter()
    run_local(load_pipeline(tmp / "one.yaml", limit=1), tmp / "work-one", RunOptions(workers=1, progress=False))
    t_fixed = time.perf_counter() - t0
    print(f"local executor, {rows:,} rows in {shards} shards: baseline loop {t_base:.2f} s; "
          f"engine workers=1 {timings[1]:.2f} s ({timings[1] / t_base:.1f}x baseline), "
          f"workers=2 {timings[2]:.2f} s ({timings[1] / timings[2]:.2f}x faster than workers=1); "
          f"rerun with every shard done {t_resume:.2f} s; {rows / timings[1]:,.0f} rows/s; "
          f"fixed cost of a run (1 row: input, manifest, report) {t_fixed:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results", type=int, default=20000)
    parser.add_argument("--rows", type=int, default=400000)
    parser.add_argument("--shards", type=int, default=16)
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, pyarrow {pa.__version__}, cpus {os.cpu_count()}, "
          f"load {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as d:
        bench_cache(args.results, Path(d))
    with tempfile.TemporaryDirectory() as d:
        bench_executor(args.rows, args.shards, Path(d))


if __name__ == "__main__":
    main()
