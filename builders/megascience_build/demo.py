"""`make demo`: the whole TextbookReasoning pipeline on the embedded corpus, on a CPU, then loading the result.

1. runs pipelines/textbook_demo.yaml (SmolLM2-135M-Instruct in every model role, MiniLM embeddings, offline
   benchmarks) into ./work/demo; a second run resumes from its finished shards and request cache;
2. writes ./megascience/, a dataset repository folder holding the `textbook` configuration it built;
3. loads it with plain `datasets.load_dataset("megascience", "textbook")` and with the package, prints the rows
   and the run report;
4. shows the catalogue and the three loading spellings on the package's embedded sample.

    python -m megascience_build.demo [--work work/demo] [--dest megascience] [--skip-loader-demo]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

PIPELINE = Path(__file__).resolve().parent / "pipelines" / "textbook_demo.yaml"


def build(work: Path) -> dict:
    from .engine.executor_local import run_local
    from .engine.orchestration import RunOptions
    from .engine.pipeline_config import load_pipeline

    config = load_pipeline(PIPELINE)
    return run_local(config, work, RunOptions(progress=True))   # bars on a terminal, plain lines in a log


def write_folder(manifest: dict, dest: Path, work: Path) -> dict:
    """The built `textbook` configuration as a dataset repository folder (released columns + id + provenance)."""
    from megascience_datasets.catalogue import load_catalogue
    from megascience_datasets.repo_folder import write_repo_folder

    from .engine.manifest import output_paths

    catalogue = load_catalogue()
    built_features = {"id": "string", "question": "string", "answer": "string", "subject": "string",
                      "reference_answer": "string", "provenance": "string"}
    entry = dataclasses.replace(catalogue["textbook"], features=built_features, feature_set="textbook_built",
                                description="TextbookReasoning rebuilt by `make demo` from the embedded corpus "
                                            "with SmolLM2-135M-Instruct: plumbing, not training data.")
    shards = output_paths(manifest, work)
    extra = {"textbook": {"pipeline": manifest.get("pipeline", {}), "stages": [
        {k: s.get(k) for k in ("label", "rows_in", "rows_out", "dropped", "models", "prompts")}
        for s in manifest.get("stages", [])]}}
    return write_repo_folder(dest, {"textbook": shards}, entries={"textbook": entry},
                             revision={"tag": "demo", "sha": None, "url": str(dest.resolve())},
                             extra=extra, overwrite=True)


def show(dest: Path, work: Path) -> None:
    import datasets

    datasets.disable_progress_bars()
    here = os.getcwd()
    os.chdir(dest.resolve().parent)           # the bare name resolves to ./megascience
    try:
        ds = datasets.load_dataset(dest.name, "textbook", split="train", cache_dir=str(work / "hf-cache"))
    finally:
        os.chdir(here)
    print(f"\n== datasets.load_dataset({dest.name!r}, 'textbook'): {ds.num_rows} rows, columns {ds.column_names} ==")
    for row in ds.select(range(min(3, ds.num_rows))):
        origin = json.loads(row["provenance"])["origin"]
        print(f"- [{row['subject']}] Q: {row['question'][:110]!r}")
        print(f"    A: {row['answer'][:110]!r}")
        print(f"    reference: {row['reference_answer'][:60]!r}; from {origin.get('file')} "
              f"pages {origin.get('pages')}")
    report = work / "report.md"
    if report.is_file():
        print("\n== the run report (" + str(report) + ") ==")
        print(report.read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m megascience_build.demo", description=__doc__.split("\n")[0])
    parser.add_argument("--work", default="work/demo", help="work directory (resumable)")
    parser.add_argument("--dest", default="megascience", help="dataset repository folder to write")
    parser.add_argument("--skip-loader-demo", action="store_true", help="skip the sample's three spellings")
    args = parser.parse_args(argv)
    work, dest = Path(args.work), Path(args.dest)
    start = time.time()
    print(f"== building `textbook` from the embedded corpus: {PIPELINE.name} -> {work} ==", flush=True)
    manifest = build(work)
    folder = write_folder(manifest, dest, work)
    print(f"wrote {dest}/ ({folder['configs']['textbook']['rows']} rows) in {time.time() - start:.0f} s")
    show(dest, work)
    if not args.skip_loader_demo:
        import importlib
        print("\n== the loader on its embedded sample ==")
        importlib.import_module("megascience_datasets.demo").main()
    print(f"\ndemo finished in {time.time() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
