"""Question dedup: speed and memory at the paper's scale, and precision/recall on labelled pairs, against datasketch.

    .venv/bin/python benchmarks/dedup.py [--rows 945683] [--datasketch-rows 100000] [--threads 2] [--seed 0]
                                         [--skip-labelled] [--skip-stage]

1. A synthetic corpus of --rows questions (tests/dedup/dedup_synthetic.py: log-normal lengths, mean about
   64 words; 12% edited copies, 7% exact copies with surface changes) is written to a parquet cache.
2. Each measurement runs in a fresh subprocess that reads the corpus, so peak RSS (ru_maxrss) and CPU time
   (getrusage, all threads; less noisy than wall time on a shared machine) are its own:
   - ours: megascience_build.near_duplicates.minhash.deduplicate, paper defaults (threshold 0.6, 128 permutations, 23x5
     bands, exact verification), all rows;
   - stage: the dedup_questions stage on an id/provenance/question/subject table (adds provenance JSON);
   - datasketch: MinHash(num_perm=128).update_batch over the same word 3-gram shingles, MinHashLSH with the
     same bands/rows (MinHash.generator, i.e. update_batch on copies of one MinHash), query-then-insert per question, union-find clusters.  It runs on the first
     --datasketch-rows rows and its time is EXTRAPOLATED LINEARLY to --rows (printed as such); ours runs on
     the same subsample too, for a like-for-like ratio.
3. Labelled pairs (5,000: edited copies, shared-stem pairs, same-topic pairs; truth = exact Jaccard of the
   word 3-gram sets >= 0.6): precision and recall of ours and of datasketch MinHashLSH, both with
   datasketch's own banding for (0.6, 128) and with ours.

Targets (issue 4): 945,683 questions in <= 60 s and <= 4 GiB on 2 cores; >= 4x faster than datasketch.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "dedup"))
sys.path.insert(0, str(REPO / "builders"))

PAPER_ROWS = 945_683


# ---------------------------------------------------------------------------------------------------------
# Workers (run in subprocesses)
# ---------------------------------------------------------------------------------------------------------
def _usage() -> tuple[float, float]:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return time.perf_counter(), r.ru_utime + r.ru_stime


def _peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20       # ru_maxrss is in KiB on Linux


def _read(path: str, rows: int | None):
    import pyarrow.parquet as pq
    table = pq.read_table(path)
    return table.slice(0, rows) if rows else table


def worker_ours(path: str, rows: int | None, threads: int) -> dict:
    from megascience_build.near_duplicates import minhash
    table = _read(path, rows)
    rss_before = _peak_rss_gib()
    wall0, cpu0 = _usage()
    result = minhash.deduplicate(table.column("question"), minhash.paper_config(), ids=table.column("id"),
                                 threads=threads)
    wall1, cpu1 = _usage()
    return {"rows": table.num_rows, "wall_s": wall1 - wall0, "cpu_s": cpu1 - cpu0, "peak_rss_gib": _peak_rss_gib(),
            "rss_before_gib": rss_before, "kept": int(result.kept.sum()), "duplicates": int(result.duplicate.sum()),
            "phases": {k: round(v, 2) for k, v in result.timings.items()}, **result.stats}


def worker_stage(path: str, rows: int | None, threads: int) -> dict:
    from megascience_build.engine import records
    from megascience_build.stages.dedup_questions import DedupQuestions
    import pyarrow as pa
    table = _read(path, rows)
    provenance = [records.new_provenance({"kind": "book", "book_id": f"book{i % 5000}", "chunk_id": f"c{i % 90000}"})
                  for i in range(table.num_rows)]
    table = table.append_column("provenance", pa.array(provenance, pa.string()))
    table = table.append_column("subject", pa.array(["physics"] * table.num_rows, pa.string()))
    rss_before = _peak_rss_gib()

    class Ctx:
        seed = 0

    wall0, cpu0 = _usage()
    out = DedupQuestions({"threads": threads}).process(table, Ctx())
    wall1, cpu1 = _usage()
    return {"rows": table.num_rows, "wall_s": wall1 - wall0, "cpu_s": cpu1 - cpu0, "peak_rss_gib": _peak_rss_gib(),
            "rss_before_gib": rss_before, "kept": out.kept.num_rows, "counters": out.counters}


def worker_datasketch(path: str, rows: int | None, bands: int, rows_per_band: int) -> dict:
    from datasketch import MinHash, MinHashLSH
    from megascience_build.near_duplicates import minhash
    texts = _read(path, rows).column("question").to_pylist()
    wall0, cpu0 = _usage()
    tokens = minhash.tokenize(texts)
    wall_tok, cpu_tok = _usage()
    lsh = MinHashLSH(num_perm=128, params=(bands, rows_per_band))
    parent = list(range(len(texts)))

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    shingles = ([" ".join(s).encode("utf-8") for s in minhash.ngrams(words, 3)] for words in tokens)
    # MinHash.generator: update_batch on copies of one initialised MinHash (datasketch's fastest CPU path)
    for i, m in enumerate(MinHash.generator(shingles, num_perm=128)):
        for j in lsh.query(m):
            a, b = find(i), find(j)
            if a != b:
                parent[max(a, b)] = min(a, b)
        lsh.insert(i, m)
    kept = sum(1 for i in range(len(texts)) if find(i) == i)
    wall1, cpu1 = _usage()
    return {"rows": len(texts), "wall_s": wall1 - wall0, "cpu_s": cpu1 - cpu0, "tokenize_wall_s": wall_tok - wall0,
            "peak_rss_gib": _peak_rss_gib(), "kept": kept}


def worker_authors(path: str, rows: int | None, threads: int) -> dict:
    from megascience_build.near_duplicates import minhash
    table = _read(path, rows)
    wall0, cpu0 = _usage()
    result = minhash.deduplicate(table.column("question"), minhash.authors_config(), ids=table.column("id"),
                                 threads=threads)
    wall1, cpu1 = _usage()
    return {"rows": table.num_rows, "wall_s": wall1 - wall0, "cpu_s": cpu1 - cpu0, "peak_rss_gib": _peak_rss_gib(),
            "duplicates": int(result.duplicate.sum()), "too_short": int(result.too_short.sum())}


WORKERS = {"ours": worker_ours, "stage": worker_stage, "datasketch": worker_datasketch, "authors": worker_authors}


def run_worker(name: str, *args) -> dict:
    cmd = [sys.executable, __file__, "--worker", name, "--worker-args", json.dumps(args)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"worker {name} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------------------------------------
def corpus_path(rows: int, seed: int) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq
    from dedup_synthetic import benchmark_corpus
    from megascience_build.engine.records import content_id
    cache = Path(os.environ.get("DEDUP_BENCH_CACHE", "/tmp/megascience-dedup-bench"))
    path = cache / f"corpus-{rows}-{seed}.parquet"
    if not path.exists():
        t0 = time.perf_counter()
        texts = benchmark_corpus(rows, seed=seed)
        ids = [content_id("bench", seed, i, t) for i, t in enumerate(texts)]
        cache.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        pq.write_table(pa.table({"id": ids, "question": texts}), tmp)
        tmp.rename(path)
        print(f"corpus: generated {rows:,} questions in {time.perf_counter() - t0:.1f} s -> {path}")
    return path


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
                 platform.processor())
    mem = next((int(line.split()[1]) / 2**20 for line in open("/proc/meminfo") if line.startswith("MemTotal")), 0)
    cores = len(os.sched_getaffinity(0))
    return (f"{platform.machine()}, {cores} usable cores ({model}), {mem:.0f} GiB RAM, "
            f"load average {os.getloadavg()[0]:.1f} at start, Python {platform.python_version()}")


def labelled(seed: int) -> None:
    from dedup_synthetic import datasketch_predict, labelled_pairs, ours_predict, precision_recall
    from megascience_build.near_duplicates import minhash
    pairs = labelled_pairs(seed=seed)
    print(f"\nlabelled pairs: {len(pairs.first):,} ({int(pairs.duplicate.sum()):,} duplicates at Jaccard >= 0.6; "
          f"kinds: {', '.join(f'{k} {int((pairs.kind == k).sum())}' for k in ('edit', 'stem', 'topic'))})")
    default = minhash.paper_config()
    ds_b, ds_r = minhash.optimal_bands(0.6, 128)                 # datasketch's own choice for (0.6, 128)
    rows = [
        (f"ours, paper default ({default.bands}x{default.rows}, exact verification)", ours_predict(pairs, default)),
        (f"ours, {ds_b}x{ds_r}, exact verification", ours_predict(pairs, minhash.paper_config(bands=ds_b, rows=ds_r))),
        (f"ours, {default.bands}x{default.rows}, estimate verification",
         ours_predict(pairs, minhash.paper_config(verify="estimate"))),
        (f"ours, {default.bands}x{default.rows}, no verification", ours_predict(pairs, minhash.paper_config(verify="none"))),
        ("ours, mode authors (1x10, sha1)", ours_predict(pairs, minhash.authors_config())),
        (f"datasketch MinHashLSH(threshold=0.6, num_perm=128) = {ds_b}x{ds_r}",
         datasketch_predict(pairs, 128, ds_b, ds_r, 0.6)),
        (f"datasketch MinHashLSH, params=({default.bands}, {default.rows})",
         datasketch_predict(pairs, 128, default.bands, default.rows, 0.6)),
    ]
    print(f"  {'method':<62} {'precision':>9} {'recall':>7} {'F1':>6}")
    for name, predicted in rows:
        p, r = precision_recall(predicted, pairs.duplicate)
        print(f"  {name:<62} {p:9.4f} {r:7.4f} {2 * p * r / max(p + r, 1e-12):6.4f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=PAPER_ROWS)
    ap.add_argument("--datasketch-rows", type=int, default=100_000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-labelled", action="store_true")
    ap.add_argument("--skip-stage", action="store_true")
    ap.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    ap.add_argument("--worker-args", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(WORKERS[args.worker](*json.loads(args.worker_args))))
        return

    from megascience_build.near_duplicates import minhash
    config = minhash.paper_config()
    print(f"machine: {machine()}")
    print(f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; command: {' '.join(sys.argv)}")
    print(f"parameters: threshold 0.6, num_perm {config.num_perm}, {config.bands} bands x {config.rows} rows, "
          f"word 3-grams, verify={config.verify}, threads {args.threads}")
    path = str(corpus_path(args.rows, args.seed))

    full = run_worker("ours", path, None, args.threads)
    print(f"\nours, {full['rows']:,} rows: wall {full['wall_s']:.1f} s, CPU {full['cpu_s']:.1f} s, "
          f"peak RSS {full['peak_rss_gib']:.2f} GiB (after reading the input: {full['rss_before_gib']:.2f} GiB); "
          f"kept {full['kept']:,}, duplicates {full['duplicates']:,}, candidate pairs {full['candidate_pairs']:,}, "
          f"verified {full.get('verified_pairs', 0):,}; phases (wall s) {full['phases']}")
    if not args.skip_stage:
        stage = run_worker("stage", path, None, args.threads)
        print(f"stage dedup_questions (with provenance JSON), {stage['rows']:,} rows: wall {stage['wall_s']:.1f} s, "
              f"CPU {stage['cpu_s']:.1f} s, peak RSS {stage['peak_rss_gib']:.2f} GiB; counters {stage['counters']}")

    sub = min(args.datasketch_rows, args.rows)
    ds = run_worker("datasketch", path, sub, config.bands, config.rows)
    ours_sub = run_worker("ours", path, sub, args.threads)
    authors = run_worker("authors", path, sub, args.threads)
    scale = args.rows / sub
    ds_wall, ds_cpu = ds["wall_s"] * scale, ds["cpu_s"] * scale
    print(f"\ndatasketch, {sub:,} rows (MinHash.update_batch + MinHashLSH query/insert + union-find): wall "
          f"{ds['wall_s']:.1f} s, CPU {ds['cpu_s']:.1f} s (of which tokenisation {ds['tokenize_wall_s']:.1f} s), "
          f"kept {ds['kept']:,}")
    print(f"datasketch EXTRAPOLATED LINEARLY to {args.rows:,} rows (x{scale:.2f}): wall {ds_wall:.0f} s, "
          f"CPU {ds_cpu:.0f} s")
    print(f"ours, same {sub:,} rows: wall {ours_sub['wall_s']:.2f} s, CPU {ours_sub['cpu_s']:.2f} s, "
          f"kept {ours_sub['kept']:,}")
    print(f"ours, mode authors, same {sub:,} rows: wall {authors['wall_s']:.1f} s, CPU {authors['cpu_s']:.1f} s, "
          f"duplicates {authors['duplicates']:,}, too_short {authors['too_short']:,}")

    print("\nratios (datasketch / ours):")
    print(f"  same {sub:,} rows:            wall {ds['wall_s'] / ours_sub['wall_s']:6.1f}x   "
          f"CPU {ds['cpu_s'] / ours_sub['cpu_s']:6.1f}x")
    print(f"  {args.rows:,} rows (extrapolated): wall {ds_wall / full['wall_s']:6.1f}x   "
          f"CPU {ds_cpu / full['cpu_s']:6.1f}x")
    if args.rows != PAPER_ROWS:
        print(f"  (the targets are set for {PAPER_ROWS:,} rows; this run has {args.rows:,})")
    checks = [("wall <= 60 s", full["wall_s"] <= 60), ("peak RSS <= 4 GiB", full["peak_rss_gib"] <= 4),
              (">= 4x faster than datasketch (wall, extrapolated)", ds_wall / full["wall_s"] >= 4)]
    for name, ok in checks:
        print(f"  target {name}: {'PASS' if ok else 'FAIL'}")

    if not args.skip_labelled:
        labelled(args.seed)


if __name__ == "__main__":
    main()
