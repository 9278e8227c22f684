"""Every selection subset of the paper from stored signals, over a pool of Table 4's size after
decontamination (NaturalReasoning-DC 1,079,000 + Nemotron-Science-DC 447,400 + TextbookReasoning 651,840
= 2,178,240 rows), with realistic signal distributions.

Target (issue 5): all subsets in under 30 s and under 4 GiB peak RSS on 2 cores.
Baseline, measured in the same run: the authors' approach in plain Python (sort a list of records by
length, filter by threshold in a loop, shuffle a list), over the same pools.

    .venv/bin/python benchmarks/selection.py [--scale 1.0]
"""
from __future__ import annotations

import argparse
import random
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "builders"))
from megascience_build.selection import subsets as sel  # noqa: E402

POOLS = {"natural_reasoning_dc": 1_079_000, "nemotron_science_dc": 447_400, "textbook": 651_840}
NO_REFERENCE = {"natural_reasoning_dc": 0.1829, "nemotron_science_dc": 0.0, "textbook": 0.0}


def make_pool(name: str, rows: int, seed: int, rng: np.random.Generator) -> pa.Table:
    ids = [b.hex() for b in np.frombuffer(rng.bytes(16 * rows), dtype="S16")]
    ids = [i.ljust(32, "0") for i in ids]  # 32 hex digits like records.content_id
    # reference-response length: log-normal around ~700 tokens, a thin tail past the 10k limit
    length = np.rint(np.exp(rng.normal(6.4, 0.8, rows))).astype(np.int64)
    excluded = length > 10_000
    # difficulty: mean of 16 integer grades (multiples of 1/16), skewed towards easy; some without reference
    skill = rng.beta(3.0, 0.5, rows)  # ~44% in (1, 9), ~9% below 6, as in Tables 3 and 11
    grades = rng.binomial(10, skill[:, None], (rows, 16)).mean(axis=1)
    difficulty = pa.array(grades, pa.float64(), mask=rng.random(rows) < NO_REFERENCE[name])
    return pa.table({"id": pa.array(ids, pa.string()),
                     "response_length": pa.array(length, pa.int64()),
                     "length_excluded": pa.array(excluded, pa.bool_()),
                     "difficulty": difficulty,
                     "random_u01": pa.array(sel.uniform_u01(seed, ids), pa.float64())})


def baseline(pools: dict[str, pa.Table], seed: int) -> dict[str, int]:
    """The authors' way: Python lists of records, sorted and filtered in loops."""
    sizes = {}
    for name, table in pools.items():
        recs = list(zip(table.column("id").to_pylist(), table.column("response_length").to_pylist(),
                        table.column("difficulty").to_pylist()))
        diff = [r for r in recs if r[2] is not None and 1 < r[2] < 9]
        n = len(diff)
        by_len = sorted((r for r in recs if r[1] <= 10_000), key=lambda r: r[1], reverse=True)[:n]
        shuffled = recs[:]
        random.Random(seed).shuffle(shuffled)
        sizes[name] = len(diff) + len(by_len) + len(shuffled[:n])
        if name == "textbook":
            sizes[name] += len([r for r in recs if r[2] is not None and r[2] < 6])
    return sizes


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=float, default=1.0, help="fraction of the paper-size pool")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-baseline", action="store_true")
    args = ap.parse_args()

    rng = np.random.default_rng(1234)
    t = time.perf_counter()
    pools = {name: make_pool(name, int(rows * args.scale), args.seed, rng) for name, rows in POOLS.items()}
    total = sum(t.num_rows for t in pools.values())
    print(f"pool: {total:,} rows in {len(pools)} sources (built in {time.perf_counter() - t:.1f} s, not timed)")
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20

    t = time.perf_counter()
    subsets = sel.all_subsets(pools, sel.paper_plans(seed=args.seed))
    records = [s.record(pools[s.parent]) for s in subsets]
    ours = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20

    for r in records:
        print(f"  {r['name']:<36} {r['rule']:<24} {r['rows']:>9,} of {r['parent_rows']:>9,}")
    print(f"selection (every subset + records): {ours:.2f} s; peak RSS {peak:.2f} GiB "
          f"(pool alone {rss_before:.2f} GiB); targets < 30 s, < 4 GiB")

    if not args.no_baseline:
        t = time.perf_counter()
        baseline(pools, args.seed)
        base = time.perf_counter() - t
        print(f"baseline (authors' plain-Python approach, same pools): {base:.2f} s; "
              f"speed-up {base / ours:.1f}x")
    ok = ours < 30 and peak < 4
    print("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
