"""Generation paths of the transformers backend on one GPU, for benchmarks/gpu_engine.py (see its doc).

Per model (random weights created on the GPU, EOS ignored), each path (`plain` = batched `generate`,
`static` = static-cache continuous batching with CUDA graphs) runs:
  single  one request at a time, 128 new tokens: end-to-end tokens/s and decode tokens/s (a full run minus
          a one-token run of the same prompt), against the bandwidth bound HBM / weight bytes per step;
  a       N prompts of 1,000-2,000 tokens, 128 new tokens each;
  b       N prompts, reply lengths log-normal (median 400, sigma 0.8, capped at 2,048; seeded). Random
          weights never stop on their own, so a request's reply length is its max_tokens. For `plain` that
          would put every length in its own batch, so its batches are cut as the backend cuts them and each
          request gets its batch's longest length as max_tokens, counting only its own length as generated:
          what a batch barrier costs when every reply ends with EOS at its length. For `static` a slot frees
          at the request's length, as it would at EOS.
Reported per run: generated tokens/s, time to the last reply, peak GPU memory, graph captures and their
seconds (inside the timed region), the fraction of the card's bf16 rate (2 x parameters x prompt and
generated tokens) and, for decode, of the weight-read bound (batch x HBM bandwidth / weight bytes).
"""
from __future__ import annotations

import math
import random
import time

import torch

from megascience_build.backends.base import GenerationRequest, SamplingParams

BF16_DENSE = [("H200", 989e12), ("H100", 989e12), ("A100", 312e12), ("L40S", 362e12)]


def reply_lengths(n: int, median: int = 400, sigma: float = 0.8, cap: int = 2048, seed: int = 7) -> list[int]:
    rng = random.Random(seed)
    return [max(1, min(cap, round(math.exp(math.log(median) + sigma * rng.gauss(0, 1))))) for _ in range(n)]


def card_rates(name: str, hbm: float | None) -> dict:
    flops = next((f for key, f in BF16_DENSE if key in name), None)
    return {"bf16_flops": flops, "hbm_bytes_s": hbm}


def measure_copy_bandwidth() -> float:
    """Bytes read plus written per second of a 4 GiB device-to-device copy (median of 10)."""
    a = torch.empty(2 ** 31, dtype=torch.uint8, device="cuda").random_()
    b = torch.empty_like(a)
    times = []
    for _ in range(12):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        b.copy_(a)
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    del a, b
    torch.cuda.empty_cache()
    return 2 * 2 ** 31 / sorted(times[2:])[len(times[2:]) // 2]


CUDA = torch.cuda.is_available()  # on CPU (--smoke) only the script's logic is checked


def _run(backend, path: str, requests, counted_tokens=None):
    backend.generation_path = path
    if CUDA:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    before = dict(backend.static_stats) if path == "static" else {}
    t = time.perf_counter()
    results = backend.generate(requests)
    if CUDA:
        torch.cuda.synchronize()
    secs = time.perf_counter() - t
    errors = [r.error for r in results if r.finish_reason == "error"]
    made = [r.completion_tokens for r in results]
    if counted_tokens is not None:
        made = [min(m, c) for m, c in zip(made, counted_tokens)]
    row = {"path": path, "requests": len(requests), "seconds": round(secs, 2),
           "generated_tokens": sum(made), "prompt_tokens": sum(r.prompt_tokens for r in results),
           "tok_s": round(sum(made) / secs, 1), "peak_mem_gb": round(torch.cuda.max_memory_allocated() / 1e9, 1) if CUDA else None,
           "errors": len(errors)}
    if errors:
        row["first_error"] = errors[0][:300]
    if path != backend.generation_path:
        row["fell_back_to"] = backend.generation_path  # the path failed (logged): these are not its numbers
    if path == "static":
        after = backend.static_stats
        row["graphs"] = bool(backend._static.engine and backend._static.engine.graphs_on)
        for key in ("captures", "capture_s", "prefill_s", "decode_steps", "decode_s"):
            row[key] = round(after.get(key, 0) - before.get(key, 0), 2)
    return row


def _fractions(row, n_params, weight_bytes, rates, slots):
    if rates["bf16_flops"]:
        flops = 2 * n_params * (row["prompt_tokens"] + row["generated_tokens"])
        row["frac_bf16"] = round(flops / row["seconds"] / rates["bf16_flops"], 4)
    if rates["hbm_bytes_s"]:
        row["weight_read_bound_tok_s"] = round(slots * rates["hbm_bytes_s"] / weight_bytes, 1)
        row["frac_weight_read"] = round(row["tok_s"] / row["weight_read_bound_tok_s"], 4)
    return row


def bench_model(preset, args, tokenizer_path, budget, log, prompts_for, rates):
    from megascience_build.backends.transformers_backend import TransformersBackend

    t = time.perf_counter()
    backend = TransformersBackend(preset, dummy=True, config=preset, tokenizer=tokenizer_path,
                                  device="cuda" if CUDA else "cpu",
                                  ignore_eos=True, max_batch_size=1)
    model = backend.model
    n_params = sum(p.numel() for p in model.parameters())
    total = sum(p.numel() * p.element_size() for p in model.parameters())
    emb = model.get_input_embeddings().weight
    tied = emb is getattr(model.get_output_embeddings(), "weight", None)
    weight_bytes = total if tied else total - emb.numel() * emb.element_size()
    out = {"model": preset, "params_b": round(n_params / 1e9, 3), "weight_gb_per_step": round(weight_bytes / 1e9, 3),
           "load_s": round(time.perf_counter() - t, 1), "runs": []}
    prompts = prompts_for(backend.encode_prompt, args.prompts)
    lengths = [len(backend.encode_prompt(p)) for p in prompts]
    out["prompt_tokens_mean"] = round(sum(lengths) / len(lengths))
    log(f"  {preset}: {n_params / 1e9:.2f}B loaded in {out['load_s']}s; {len(prompts)} prompts, "
        f"mean {out['prompt_tokens_mean']} tokens")
    if rates["hbm_bytes_s"]:
        out["bandwidth_bound_single_tok_s"] = round(rates["hbm_bytes_s"] / weight_bytes, 1)

    def record(row, scenario, slots):
        row["scenario"] = scenario
        out["runs"].append(_fractions(row, n_params, weight_bytes, rates, slots))
        log(f"  {preset} {scenario} {row['path']}: {row}")

    greedy = lambda n: SamplingParams(max_tokens=n)  # noqa: E731
    for path in args.paths:  # single stream
        if budget.left() < 60:
            break
        backend.max_batch_size, backend.max_batch_tokens = 1, 1 << 20
        _run(backend, path, [GenerationRequest(prompts[0], greedy(4))])  # warm-up (and capture for static)
        rows, rates1 = [], []
        for p in prompts[:args.single_requests]:
            full = _run(backend, path, [GenerationRequest(p, greedy(args.new_tokens))])
            one = _run(backend, path, [GenerationRequest(p, greedy(1))])
            rows.append(full)
            rates1.append((full["generated_tokens"] - 1) / max(full["seconds"] - one["seconds"], 1e-9))
        row = dict(rows[-1], requests=len(rows), seconds=round(sum(r["seconds"] for r in rows), 2),
                   generated_tokens=sum(r["generated_tokens"] for r in rows),
                   prompt_tokens=sum(r["prompt_tokens"] for r in rows))
        row["tok_s"] = round(row["generated_tokens"] / row["seconds"], 1)
        row["decode_tok_s"] = round(sorted(rates1)[len(rates1) // 2], 1)
        if rates["hbm_bytes_s"]:
            row["decode_frac_bandwidth"] = round(row["decode_tok_s"] / out["bandwidth_bound_single_tok_s"], 3)
        record(row, "single", 1)

    replies = reply_lengths(len(prompts), args.reply_median, args.reply_sigma, args.reply_cap)
    out["reply_tokens_mean"] = round(sum(replies) / len(replies), 1)
    for scenario in args.scenarios:
        for path in args.paths:
            n = args.prompts if path == "static" else min(args.plain_prompts, args.prompts)
            for count in sorted({n, min(args.plain_prompts, n)}, reverse=True) if path == "static" else [n]:
                if budget.left() < (120 if path == "plain" else 45):
                    log(f"  {preset} {scenario} {path} x{count}: skipped, time budget spent")
                    continue
                backend.max_batch_size = args.batch
                backend.max_batch_tokens = args.batch * (max(lengths) + (args.new_tokens if scenario == "a"
                                                                          else args.reply_cap))
                if scenario == "a":
                    reqs = [GenerationRequest(p, greedy(args.new_tokens)) for p in prompts[:count]]
                    record(_run(backend, path, reqs), "a", args.batch)
                    continue
                asked = replies[:count]
                if path == "plain":  # each request asks for its batch's longest reply (see the module doc)
                    order = sorted(range(count), key=lambda i: (lengths[i], i))
                    asked = list(asked)
                    for k in range(0, count, args.batch):
                        batch = order[k:k + args.batch]
                        longest = max(replies[i] for i in batch)
                        for i in batch:
                            asked[i] = longest
                reqs = [GenerationRequest(p, greedy(m)) for p, m in zip(prompts[:count], asked)]
                record(_run(backend, path, reqs, counted_tokens=replies[:count]), "b", args.batch)
    backend.close()
    del backend, model
    if CUDA:
        torch.cuda.empty_cache()
    return out


def print_rows(models):
    print("\n(a/b) transformers backend paths, random weights (tok/s = generated tokens per second, prefill and "
          "graph capture included)")
    print(f"{'model':11} {'scen':5} {'path':6} {'reqs':>5} {'tokens':>8} {'s':>7} {'tok/s':>9} {'peak GB':>7} "
          f"{'capt':>5} {'capt s':>6} {'frac bf16':>9} {'frac wread':>10} {'decode1':>8} {'frac bw1':>8} {'vs plain':>8}")
    for m in models:
        for r in m["runs"]:
            plain = next((p for p in m["runs"] if p["path"] == "plain" and p["scenario"] == r["scenario"]
                          and p["requests"] == r["requests"]), None)
            key = "decode_tok_s" if r["scenario"] == "single" else "tok_s"
            ratio = round(r[key] / plain[key], 2) if plain and plain.get(key) and r.get(key) else "-"
            print(f"{m['model']:11} {r['scenario']:5} {r['path']:6} {r['requests']:>5} {r['generated_tokens']:>8} "
                  f"{r['seconds']:>7} {r['tok_s']:>9} {r['peak_mem_gb']!s:>7} {r.get('captures', '-')!s:>5} "
                  f"{r.get('capture_s', '-')!s:>6} {r.get('frac_bf16', '-')!s:>9} {r.get('frac_weight_read', '-')!s:>10} "
                  f"{r.get('decode_tok_s', '-')!s:>8} {r.get('decode_frac_bandwidth', '-')!s:>8} {ratio!s:>8}"
                  + (f"  ERRORS {r['errors']}: {r.get('first_error')}" if r["errors"] else ""))
        print(f"   {m['model']}: single-stream bandwidth bound {m.get('bandwidth_bound_single_tok_s')} tok/s; "
              f"prompts mean {m['prompt_tokens_mean']} tokens; (b) replies mean {m['reply_tokens_mean']}")
