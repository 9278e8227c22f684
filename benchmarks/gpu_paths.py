"""Generation paths of the transformers backend on one GPU, for benchmarks/gpu_engine.py (see its doc).

Per model (random weights created on the GPU, EOS ignored), each path (`plain` = batched `generate`,
`static` = static-cache continuous batching with CUDA graphs, `static-k1` = the same with the host reading
every step's tokens, `static-sdpa` = the same with scaled_dot_product_attention for the decode step's
attention (cuDNN's kernel on an H200) instead of two matrix products, `paged` = transformers' own continuous batching manager with paged attention and its
default options, `paged-graphs` = the same with its CUDA graphs and async batching on, `paged-compile` =
`paged-graphs` with its default compile level 1) runs:
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
seconds (inside the timed region; the paged manager's warm-up, which captures its graphs or compiles, is
timed apart as `warmup_s` and not counted in tok/s), the fraction of the card's bf16 rate (2 x parameters x
prompt and generated tokens) and, for decode, of the weight-read bound (batch x HBM bandwidth / weight
bytes). For paged, every request asks for its own reply length (the manager takes max_new_tokens per
request), EOS disabled.

`profile_single` (--profile): where a single stream's time per token goes on the static path: the GPU time
of one captured decode step replayed back to back (CUDA events), the end-to-end time per token with the
host reading tokens every 1, 4, 16 or 64 steps, and the top kernels of the replayed step (torch.profiler).
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


PAGED_OPTIONS = {"paged": {}, "paged-graphs": {"use_cuda_graph": True, "use_async_batching": True},
                 "paged-compile": {"use_cuda_graph": True, "use_async_batching": True, "default_compile_level": 1}}


class Paged:
    """transformers' continuous batching manager (paged attention) over the backend's model, kept for one
    scenario; its warm-up is timed apart."""

    def __init__(self, backend, variant: str, max_prompt: int, max_new: int, n: int):
        from transformers import GenerationConfig
        from transformers.generation import ContinuousBatchingConfig
        from transformers.generation.continuous_batching.utils import WorkloadHints

        self.model = backend.model
        self.attn_before = self.model.config._attn_implementation
        gen = GenerationConfig(do_sample=False, max_new_tokens=max_new, eos_token_id=-1, pad_token_id=backend.pad_id)
        t = time.perf_counter()
        self.manager = self.model.init_continuous_batching(
            generation_config=gen, continuous_batching_config=ContinuousBatchingConfig(**PAGED_OPTIONS[variant]),
            workload_hints=WorkloadHints(max_prompt_length=max_prompt, max_generated_length=max_new, num_requests=n))
        self.manager.warmup()
        self.manager.start()
        if CUDA:
            torch.cuda.synchronize()
        self.warmup_s = round(time.perf_counter() - t, 2)
        cfg = self.manager.continuous_batching_config if hasattr(self.manager, "continuous_batching_config") else None
        self.options = {k: str(getattr(cfg, k, None)) for k in ("use_cuda_graph", "use_async_batching",
                                                             "max_batch_tokens", "num_blocks",
                                                             "max_requests_per_batch")} if cfg else {}
        self.options["attn"] = self.model.config._attn_implementation

    def generate(self, prompts: list[list[int]], max_tokens: list[int]) -> tuple[list[int], list[str]]:
        ids = [self.manager.add_request(p, max_new_tokens=m, eos_token_id=-1) for p, m in zip(prompts, max_tokens)]
        done: dict[str, object] = {}
        while len(done) < len(ids):
            r = self.manager.get_result(timeout=5)
            if r is None:
                if not self.manager.is_running():
                    break
                continue
            if r.is_finished():
                done[r.request_id] = r
        made = [len(done[i].generated_tokens) if i in done else 0 for i in ids]
        errors = [str(done[i].error) if i in done else "no result" for i in ids
                  if i not in done or done[i].error]
        return made, errors

    def close(self):
        try:
            self.manager.stop(block=True, timeout=30)
            self.manager.destroy()
        finally:
            import gc

            self.model.config._attn_implementation = self.attn_before
            if hasattr(self.model, "_cached_continuous_batching_manager"):
                delattr(self.model, "_cached_continuous_batching_manager")
            self.manager = None
            gc.collect()
            if CUDA:
                torch.cuda.empty_cache()


def _run_paged(backend, paged: Paged, path: str, requests, counted_tokens=None):
    prompts = [backend.encode_prompt(r.messages) for r in requests]
    if CUDA:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    made, errors = paged.generate(prompts, [r.sampling.max_tokens for r in requests])
    if CUDA:
        torch.cuda.synchronize()
    secs = time.perf_counter() - t
    if counted_tokens is not None:
        made = [min(m, c) for m, c in zip(made, counted_tokens)]
    row = {"path": path, "requests": len(requests), "seconds": round(secs, 2), "generated_tokens": sum(made),
           "prompt_tokens": sum(map(len, prompts)), "tok_s": round(sum(made) / secs, 1),
           "peak_mem_gb": round(torch.cuda.max_memory_allocated() / 1e9, 1) if CUDA else None,
           "errors": len(errors), "warmup_s": paged.warmup_s, "paged_options": paged.options}
    if errors:
        row["first_error"] = errors[0][:300]
    return row


def _run(backend, path: str, requests, counted_tokens=None, paged: Paged | None = None):
    if path.startswith("paged"):
        return _run_paged(backend, paged, path, requests, counted_tokens)
    if path.startswith("static"):
        _use_static(backend, path)
        path = "static"
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
        row["path"] = backend._static.label
        row["graphs"] = bool(backend._static.engine and backend._static.engine.graphs_on)
        for key in ("captures", "capture_s", "prefill_s", "decode_steps", "decode_s", "decode_blocks",
                    "wasted_steps"):
            row[key] = round(after.get(key, 0) - before.get(key, 0), 2)
    return row


def paths_for(args, scenario: str) -> list[str]:
    """The paths a scenario runs, in order: --paths-<scenario> if given, else --paths (static-k1, a
    diagnostic, and the paged variants but paged-graphs run single-stream only when named for it)."""
    if scenario not in args.scenarios:
        return []
    named = getattr(args, f"paths_{scenario}", None)
    if named:
        return named.split(",")
    if scenario == "single":
        return [p for p in args.paths if not p.startswith("paged") or p == "paged-graphs"]
    return [p for p in args.paths if p != "static-k1"]  # static-sdpa runs at the plain path's count


def _use_static(backend, label: str):
    """The backend's static path with the host reading tokens every step (static-k1) or every
    STEPS_PER_SYNC steps (static, the default); kept while the label stays the same."""
    from megascience_build.backends.generation_paths import StaticPath

    current = backend._static
    if current is not None and getattr(current, "label", "static") == label:
        current.label = label
        return
    if current is not None:
        current.close()
    backend._static = StaticPath(backend, steps_per_sync=1 if label == "static-k1" else None,
                                 decode_attention="sdpa" if label == "static-sdpa" else None)
    backend._static.label = label


def profile_single(backend, prompt, log, new_tokens: int = 128, blocks=(1, 4, 16, 64)) -> dict:
    """Where one stream's time per token goes on the static path (see the module doc)."""
    from megascience_build.backends.generation_paths import StaticPath

    backend.max_batch_size, backend.max_batch_tokens = 1, 1 << 20
    backend.generation_path = "static"
    full = GenerationRequest(prompt, SamplingParams(max_tokens=new_tokens))
    one = GenerationRequest(prompt, SamplingParams(max_tokens=1))

    def timed(req):
        if CUDA:
            torch.cuda.synchronize()
        t = time.perf_counter()
        backend.generate([req])
        if CUDA:
            torch.cuda.synchronize()
        return time.perf_counter() - t

    out = {"new_tokens": new_tokens, "ms_per_token": {}}
    for k in blocks:
        if backend._static is not None:
            backend._static.close()
        backend._static = StaticPath(backend, steps_per_sync=k)
        timed(full)  # engine, capture
        per = sorted((timed(full) - timed(one)) / (new_tokens - 1) for _ in range(3))
        out["ms_per_token"][k] = round(per[1] * 1e3, 3)
        log(f"  profile: host reads every {k} steps: {out['ms_per_token'][k]} ms/token")
    engine = backend._static.engine
    if not (CUDA and engine.graphs):
        return out
    try:
        _profile_graph(engine, backend, prompt, new_tokens, out, log)
    except Exception as exc:  # a diagnostic: never the reason the benchmark stops
        log(f"  profile: graph timing failed: {type(exc).__name__}: {exc}")
        out["graph_error"] = f"{type(exc).__name__}: {exc}"
    return out


def _profile_graph(engine, backend, prompt, new_tokens, out, log):
    (b, span), (graph, _) = max(engine.graphs.items(), key=lambda kv: kv[0][1])
    c = engine.cache
    saved = c.state.clone()
    saved[engine.slots] = min(len(backend.encode_prompt(prompt)) + new_tokens // 2, span - 1)
    saved[2 * engine.slots] = 0  # the ring row the step writes
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    for _ in range(5):
        c.state.copy_(saved)
        graph.replay()
    start.record()
    n = 100
    for _ in range(n):
        c.state.copy_(saved)
        graph.replay()
    end.record()
    end.synchronize()
    out["graph_step_ms"] = round(start.elapsed_time(end) / n, 3)
    out["graph_bucket"] = [b, span]
    log(f"  profile: one captured step (b={b}, span={span}) replayed back to back: {out['graph_step_ms']} ms")
    try:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            for _ in range(10):
                c.state.copy_(saved)
                graph.replay()
            torch.cuda.synchronize()
        out["kernels"] = prof.key_averages().table(sort_by="cuda_time_total", row_limit=25)
        log("  profile: kernels of 10 replays\n" + out["kernels"])
    except Exception as exc:  # the profiler is a diagnostic only
        out["kernels"] = f"profiler failed: {exc}"
    c.state.copy_(saved)


def _fractions(row, n_params, weight_bytes, rates, slots):
    if rates["bf16_flops"]:
        flops = 2 * n_params * (row["prompt_tokens"] + row["generated_tokens"])
        row["frac_bf16"] = round(flops / row["seconds"] / rates["bf16_flops"], 4)
    if rates["hbm_bytes_s"]:
        row["weight_read_bound_tok_s"] = round(slots * rates["hbm_bytes_s"] / weight_bytes, 1)
        row["frac_weight_read"] = round(row["tok_s"] / row["weight_read_bound_tok_s"], 4)
    return row


def bench_model(preset, args, tokenizer_path, budget, log, prompts_for, rates, sink=None, save=None):
    """One model's runs; with `sink` (a list) the model's entry is put there first and `save` is called
    after every run, so a process killed midway still leaves what it measured."""
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
    if sink is not None:
        sink.append(out)
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
        if save:
            save()

    greedy = lambda n: SamplingParams(max_tokens=n)  # noqa: E731
    if getattr(args, "profile", False):
        out["profile"] = profile_single(backend, prompts[0], log, args.new_tokens)
        backend._static.close()
        backend._static = None
    for path in paths_for(args, "single"):  # single stream
        if budget.left() < 60:
            break
        backend.max_batch_size, backend.max_batch_tokens = 1, 1 << 20
        try:
            paged = Paged(backend, path, max(lengths), args.new_tokens, 1) if path.startswith("paged") else None
        except Exception as exc:  # a variant the installed transformers refuses here: say so
            log(f"  {preset} single {path}: could not start: {type(exc).__name__}: {exc}")
            out["runs"].append({"scenario": "single", "path": path, "requests": 1,
                                "failed": f"{type(exc).__name__}: {exc}"[:500]})
            continue
        try:
            # warm-up: for static every timed request once, so the engine is sized for the longest and each
            # (batch, length) bucket is captured before timing (a capture costs about a fifth of a request)
            warm = ([prompts[i] for i in sorted(range(args.single_requests), key=lambda i: -lengths[i])]
                    if path.startswith("static") else prompts[:1])  # longest first: one engine serves all
            for p in warm:
                _run(backend, path, [GenerationRequest(p, greedy(args.new_tokens if path.startswith("static") else 4))],
                     paged=paged)
            rows, rates1 = [], []
            for p in prompts[:args.single_requests]:
                full = _run(backend, path, [GenerationRequest(p, greedy(args.new_tokens))], paged=paged)
                one = _run(backend, path, [GenerationRequest(p, greedy(1))], paged=paged)
                rows.append(full)
                rates1.append((full["generated_tokens"] - 1) / max(full["seconds"] - one["seconds"], 1e-9))
        finally:
            if paged:
                paged.close()
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
    for scenario in [s for s in args.scenarios if s != "single"]:
        for path in paths_for(args, scenario):
            n = args.prompts if path == "static" else min(args.plain_prompts, args.prompts)
            for count in sorted({n, min(args.plain_prompts, n)}, reverse=True) if path == "static" else [n]:
                if budget.left() < (120 if path == "plain" else 60 if path.startswith("paged") else 45):
                    log(f"  {preset} {scenario} {path} x{count}: skipped, time budget spent")
                    continue
                backend.max_batch_size = args.batch
                backend.max_batch_tokens = args.batch * (max(lengths) + (args.new_tokens if scenario == "a"
                                                                          else args.reply_cap))
                if path.startswith("paged"):
                    new = args.new_tokens if scenario == "a" else max(replies[:count])
                    try:
                        paged = Paged(backend, path, max(lengths), new, count)
                    except Exception as exc:  # a variant the installed transformers refuses: say so
                        log(f"  {preset} {scenario} {path}: could not start: {type(exc).__name__}: {exc}")
                        out["runs"].append({"scenario": scenario, "path": path, "requests": count,
                                            "failed": f"{type(exc).__name__}: {exc}"[:500]})
                        continue
                    try:
                        if scenario == "a":
                            reqs = [GenerationRequest(p, greedy(args.new_tokens)) for p in prompts[:count]]
                        else:
                            reqs = [GenerationRequest(p, greedy(m)) for p, m in zip(prompts[:count], replies)]
                        record(_run(backend, path, reqs, paged=paged), scenario, args.batch)
                    except Exception as exc:
                        log(f"  {preset} {scenario} {path}: failed: {type(exc).__name__}: {exc}")
                        out["runs"].append({"scenario": scenario, "path": path, "requests": count,
                                            "failed": f"{type(exc).__name__}: {exc}"[:500]})
                    finally:
                        paged.close()
                    continue
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
    print(f"{'model':11} {'scen':6} {'path':13} {'reqs':>5} {'tokens':>8} {'s':>7} {'tok/s':>9} {'peak GB':>7} "
          f"{'capt':>5} {'capt s':>6} {'frac bf16':>9} {'frac wread':>10} {'decode1':>8} {'frac bw1':>8} {'vs plain':>8}")
    for m in models:
        for r in m["runs"]:
            if "failed" in r:
                print(f"{m['model']:11} {r['scenario']:5} {r['path']:6} {r['requests']:>5}  FAILED: {r['failed'][:200]}")
                continue
            plain = next((p for p in m["runs"] if p["path"] == "plain" and p.get("scenario") == r["scenario"]
                          and p["requests"] == r["requests"]), None)
            key = "decode_tok_s" if r["scenario"] == "single" else "tok_s"
            ratio = round(r[key] / plain[key], 2) if plain and plain.get(key) and r.get(key) else "-"
            print(f"{m['model']:11} {r['scenario']:6} {r['path']:13} {r['requests']:>5} {r['generated_tokens']:>8} "
                  f"{r['seconds']:>7} {r['tok_s']:>9} {r['peak_mem_gb']!s:>7} {r.get('captures', '-')!s:>5} "
                  f"{r.get('capture_s', r.get('warmup_s', '-'))!s:>6} {r.get('frac_bf16', '-')!s:>9} {r.get('frac_weight_read', '-')!s:>10} "
                  f"{r.get('decode_tok_s', '-')!s:>8} {r.get('decode_frac_bandwidth', '-')!s:>8} {ratio!s:>8}"
                  + (f"  ERRORS {r['errors']}: {r.get('first_error')}" if r["errors"] else ""))
        print(f"   {m['model']}: single-stream bandwidth bound {m.get('bandwidth_bound_single_tok_s')} tok/s; "
              f"prompts mean {m['prompt_tokens_mean']} tokens; (b) replies mean {m['reply_tokens_mean']}")
