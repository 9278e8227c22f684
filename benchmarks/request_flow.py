"""How busy a model stage keeps a continuous-batching server: the batch-barrier flow vs the continuous flow.

A loopback OpenAI-compatible server models an engine such as vLLM: it runs at most `--capacity` sequences at
once (more requests queue), each reply takes `--ms-per-token` per generated token, and reply lengths come
from a long-tailed log-normal distribution (median `--median` tokens, capped at `--cap`), drawn from the
prompt's hash so both flows see the same work. The engine's CachedGenerator sends the same requests through
the `openai` backend (`concurrency` = capacity) twice, in one run:

- batch flow (`flow: batch`): batches of `batch_size` requests; each waits for its slowest reply;
- continuous flow (the default): `generate_stream` keeps `concurrency` requests in flight, answers are
  committed to the request cache as they arrive.

Then the same requests as the rows of a pipeline run by the local executor (one model stage asking one
request per row, shards of `--shard-rows` rows, as textbook.yaml's 64): the batch flow; the continuous
flow one shard at a time (each shard's call still ends with its slowest reply); the continuous flow with
`--shards-in-flight` shards at once feeding the backend's one window (backends/shared_stream.py).

Capacity used = the server's sequence-seconds / (capacity x the time from the first request's arrival to the
last reply), the share of the server the stage keeps busy while it runs; the wall time of a pipeline run
also holds the engine's own work before and after the stage (input, plan, publishing, report). Target:
>= 90 % continuous.

    .venv/bin/python benchmarks/request_flow.py [--requests 512] [--capacity 64] [--batch-size 64]
                                                [--shard-rows 64] [--shards-in-flight 8]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from megascience_build.backends import make_backend
from megascience_build.backends.base import GenerationRequest, SamplingParams
from megascience_build.backends.identity import identity_of
from megascience_build.engine import records
from megascience_build.engine.cache import RequestCache
from megascience_build.engine.context import CachedGenerator, ModelUsage
from megascience_build.engine.stage import Stage, StageOutput


class BenchAsk(Stage):
    """One request per row (its text as the user message); the reply's token count as a column."""
    name = "bench_ask"
    inputs = ("id", "provenance", "text")
    outputs = ("reply_tokens",)

    def process(self, batch, ctx):
        requests = [GenerationRequest(({"role": "user", "content": t},), ctx.sampling)
                    for t in batch.column("text").to_pylist()]
        results = ctx.llm().generate(requests)
        failed = [r.error for r in results if not r.ok]
        if failed:
            raise RuntimeError(f"{len(failed)} requests failed, e.g. {failed[0]}")
        return StageOutput(kept=records.set_column(batch, "reply_tokens", [r.completion_tokens for r in results],
                                                   pa.int64()))


STAGES = [BenchAsk]      # this script is the pipeline's plugin (`plugins: [__main__]`)


class EngineModel:
    """The server's state: a slot semaphore and the integral of sequences in flight."""

    def __init__(self, capacity: int, ms_per_token: float, median: int, sigma: float, cap: int):
        self.slots = threading.Semaphore(capacity)
        self.ms_per_token, self.median, self.sigma, self.cap = ms_per_token, median, sigma, cap
        self.lock = threading.Lock()
        self.reset()

    def reply_tokens(self, prompt: str) -> int:
        u = int.from_bytes(hashlib.sha256(prompt.encode()).digest()[:8], "big") / 2 ** 64
        z = math.sqrt(2) * _erfinv(2 * min(max(u, 1e-12), 1 - 1e-12) - 1)     # a standard normal from u
        return max(1, min(self.cap, round(self.median * math.exp(self.sigma * z))))

    def run(self, prompt: str) -> int:
        tokens = self.reply_tokens(prompt)
        with self.lock:
            self.first = min(self.first, time.monotonic())
        with self.slots:
            start = time.monotonic()
            time.sleep(tokens * self.ms_per_token / 1000)
            with self.lock:
                self.busy_s += time.monotonic() - start
                self.last = max(self.last, time.monotonic())
        return tokens

    def reset(self) -> None:
        self.busy_s, self.first, self.last = 0.0, math.inf, 0.0

    def used(self, capacity: int) -> float:
        """The share of the server's capacity used from the first arrival to the last reply."""
        return self.busy_s / (capacity * (self.last - self.first))


def _erfinv(y: float) -> float:
    """Inverse error function (Giles' single-precision approximation, refined by two Newton steps)."""
    w = -math.log((1.0 - y) * (1.0 + y))
    if w < 5:
        w -= 2.5
        p = 2.81022636e-08
        for c in (3.43273939e-07, -3.5233877e-06, -4.39150654e-06, 0.00021858087, -0.00125372503,
                  -0.00417768164, 0.246640727, 1.50140941):
            p = c + p * w
    else:
        w = math.sqrt(w) - 3
        p = -0.000200214257
        for c in (0.000100950558, 0.00134934322, -0.00367342844, 0.00573950773, -0.0076224613,
                  0.00943887047, 1.00167406, 2.83297682):
            p = c + p * w
    x = p * y
    for _ in range(2):
        x -= (math.erf(x) - y) / (2 / math.sqrt(math.pi) * math.exp(-x * x))
    return x


def serve(engine: EngineModel) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            prompt = body["messages"][-1]["content"]
            tokens = engine.run(prompt)
            raw = json.dumps({"model": body["model"], "choices": [{"message": {"content": f"{tokens} tokens"},
                              "finish_reason": "stop"}], "usage": {"prompt_tokens": 10, "completion_tokens": tokens}}
                             ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 1024        # the listen backlog: 64 clients connect at once

    httpd = Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def run_flow(flow: str, args, engine: EngineModel, url: str, tmp: Path) -> dict:
    backend = make_backend({"backend": "openai", "model": "engine-model", "options": {
        "base_url": url, "concurrency": args.capacity, "timeout": 600, "max_retries": 0}})
    requests = [GenerationRequest(({"role": "user", "content": f"request {i}"},),
                                  SamplingParams(max_tokens=args.cap)) for i in range(args.requests)]
    cache = RequestCache(tmp / f"{flow}.sqlite")
    gen = CachedGenerator(stage_label=flow, role="gen", identity=identity_of(backend, "openai"),
                          batch_size=args.batch_size, cache=cache, backend_factory=lambda: backend,
                          usage=ModelUsage(), cache_only=False, flow=flow)
    engine.reset()
    t0 = time.monotonic()
    results = gen.generate(requests)
    wall = time.monotonic() - t0
    busy = engine.busy_s
    backend.close()
    cache.close()
    failed = [r.error for r in results if not r.ok]
    if failed:
        raise SystemExit(f"{flow} flow: {len(failed)} requests failed, e.g. {failed[0]}")
    tokens = sum(r.completion_tokens for r in results)
    ideal = busy / args.capacity
    return {"flow": flow, "wall_s": wall, "span_s": engine.last - engine.first, "ideal_s": ideal,
            "used": engine.used(args.capacity), "tokens_per_s": tokens / wall}


def run_pipeline_flow(label: str, flow: str, in_flight: int, args, engine: EngineModel, url: str,
                      tmp: Path) -> dict:
    """The requests as rows of a one-stage pipeline through the local executor."""
    from megascience_build.engine.executor_local import run_local
    from megascience_build.engine.orchestration import RunOptions
    from megascience_build.engine.pipeline_config import load_pipeline

    root = tmp / label.replace(" ", "_").replace(",", "")
    (root / "data").mkdir(parents=True)
    n = args.requests
    pq.write_table(pa.table({"id": [records.content_id("flow", i) for i in range(n)],
                             "provenance": [records.new_provenance({"kind": "dataset", "row": i}) for i in range(n)],
                             "text": [f"request {i}" for i in range(n)]}), root / "data" / "in.parquet")
    doc = {"name": "request-flow", "plugins": ["__main__"],
           "input": {"parquet": ["data/in.parquet"], "rows_per_shard": args.shard_rows},
           "models": {"gen": {"backend": "openai", "model": "engine-model", "batch_size": args.batch_size,
                              "flow": flow, "options": {"base_url": url, "concurrency": args.capacity,
                                                        "timeout": 600, "max_retries": 0}}},
           "stages": [{"stage": "bench_ask", "llm": "gen", "sampling": {"max_tokens": args.cap}}]}
    (root / "pipeline.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    engine.reset()
    t0 = time.monotonic()
    run_local(load_pipeline(root / "pipeline.yaml"), root / "work",
              RunOptions(progress=False, shards_in_flight=in_flight))
    wall = time.monotonic() - t0
    tokens = sum(sum(pq.read_table(p).column("reply_tokens").to_pylist())
                 for p in (root / "work" / "output").glob("*.parquet"))
    return {"flow": label, "wall_s": wall, "span_s": engine.last - engine.first,
            "ideal_s": engine.busy_s / args.capacity, "used": engine.used(args.capacity),
            "tokens_per_s": tokens / wall}


def print_rows(rows: list[dict]) -> None:
    print("| flow | wall (s) | first request to last reply (s) | ideal at full capacity (s) | capacity used | "
          "tokens/s (wall) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['flow']} | {r['wall_s']:.1f} | {r['span_s']:.1f} | {r['ideal_s']:.1f} | {r['used']:.1%} | "
              f"{r['tokens_per_s']:,.0f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=512)
    ap.add_argument("--capacity", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=64, help="the engine's batch_size (requests per batch)")
    ap.add_argument("--ms-per-token", type=float, default=2.0)
    ap.add_argument("--median", type=int, default=400)
    ap.add_argument("--sigma", type=float, default=0.8)
    ap.add_argument("--cap", type=int, default=2048)
    ap.add_argument("--shard-rows", type=int, default=64, help="rows per shard in the pipeline runs")
    ap.add_argument("--shards-in-flight", type=int, default=8)
    ap.add_argument("--skip-direct", action="store_true", help="only the pipeline runs")
    args = ap.parse_args()
    engine = EngineModel(args.capacity, args.ms_per_token, args.median, args.sigma, args.cap)
    httpd = serve(engine)
    url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    tmp = Path(tempfile.mkdtemp())
    lengths = sorted(engine.reply_tokens(f"request {i}") for i in range(args.requests))
    print(f"# {args.requests} requests, server capacity {args.capacity} sequences, {args.ms_per_token} ms/token, "
          f"reply tokens log-normal median {args.median} (sample median {lengths[len(lengths) // 2]}, "
          f"p99 {lengths[int(len(lengths) * 0.99)]}, cap {args.cap}); batch_size {args.batch_size}")
    print(f"# machine: {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}")
    if not args.skip_direct:
        print()
        print("## one call of the cached generator")
        rows = [run_flow(flow, args, engine, url, tmp) for flow in ("batch", "continuous")]
        print_rows(rows)
        print(f"continuous / batch: {rows[0]['wall_s'] / rows[1]['wall_s']:.2f}x faster")
    print()
    print(f"## a pipeline through the local executor, shards of {args.shard_rows} rows")
    k = args.shards_in_flight
    rows = [run_pipeline_flow(label, flow, in_flight, args, engine, url, tmp) for label, flow, in_flight in (
        ("batch", "batch", 1), ("continuous, one shard at a time", "continuous", 1),
        (f"continuous, {k} shards in flight", "continuous", k))]
    print_rows(rows)
    print(f"{k} shards in flight / one at a time: {rows[1]['wall_s'] / rows[2]['wall_s']:.2f}x faster; "
          f"/ batch: {rows[0]['wall_s'] / rows[2]['wall_s']:.2f}x")
    httpd.shutdown()


if __name__ == "__main__":
    main()
