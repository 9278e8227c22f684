"""An evaluation run is a pipeline of the build engine, in a work directory:

    WORK/questions/questions.parquet   the benchmark rows (question, options, gold, metric ...), loaded here
    WORK/eval_pipeline.yaml            eval_generate (the model) -> eval_score (extraction + judge)
    WORK/cache.sqlite                  the request cache (or --cache): a rerun resumes request by request
    WORK/stages/, WORK/output/         the engine's shards; WORK/manifest.json its manifest
    WORK/instances.parquet             one row per question: prompt, reply, extracted, gold, correct ...
    WORK/scores.json, WORK/eval_report.md, WORK/eval_scores.png   written by megascience_eval.report

So the local executor (resumable, shard by shard) and the Ray executor (actor pools for the model)
run it unchanged, and the request cache, manifest and model identity come from the engine.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from megascience_build.backends.base import SamplingParams
from megascience_build.engine import records
from megascience_build.engine.orchestration import RunOptions, run_pipeline
from megascience_build.engine.pipeline_config import load_pipeline
from megascience_build.engine.storage import write_json_atomic, write_parquet

from .benchmarks import PROMPTS_DIR, EvalSpec, EvalSpecError, question_rows

QUESTIONS = Path("questions") / "questions.parquet"
PIPELINE = "eval_pipeline.yaml"
INSTANCES = "instances.parquet"
# the paper's recommended settings (its §4, Table 5 and the toolkit's config): greedy, one sample, long budget
PAPER_SAMPLING = {"temperature": 0.0, "top_p": 1.0, "max_tokens": 10240}
INSTANCE_COLUMNS = ("id", "benchmark", "paper", "subpart", "group", "qtype", "question", "options", "messages",
                    "reply", "finish_reason", "completion_tokens", "extracted", "method", "gold", "gold_unit",
                    "status", "correct", "note", "source")


def check_loadable(specs: Sequence[EvalSpec]) -> None:
    """Before any download: every entry must have public answers and, from the Hub, a pinned commit. One
    error lists all that fail, so a run of the `paper` set says at once what is left to pin."""
    withheld = [f"{s.name} ({s.withheld})" for s in specs if s.withheld]
    unpinned = [f"{s.name} ({s.source.repo})" for s in specs
                if not s.withheld and s.source.source == "hub" and not s.source.revision]
    problems = ([f"cannot be scored here: {'; '.join(withheld)}"] if withheld else []) + (
        [f"hub source(s) with no pinned revision: {', '.join(unpinned)}; set hub.revision to the dataset "
         f"commit sha you evaluate against (a copy of the registry, --registry)"] if unpinned else [])
    if problems:
        raise EvalSpecError("; ".join(problems))


def questions_table(specs: Sequence[EvalSpec], *, sample: int | None = None, seed: int = 0,
                    snapshot_download=None) -> pa.Table:
    check_loadable(specs)
    rows: list[dict[str, Any]] = []
    for spec in specs:
        rows += question_rows(spec, sample=sample, seed=seed, snapshot_download=snapshot_download)
    provs = [records.new_provenance({"kind": "benchmark", "benchmark": r["benchmark"], "record": r["source"]})
             for r in rows]
    cols = {c: [r[c] for r in rows] for c in rows[0]}
    table = pa.table({"id": cols.pop("id"), "provenance": provs, **cols})
    return table


def write_eval_pipeline(work: Path, model: dict[str, Any], *, templates: Sequence[str], sampling: dict[str, Any],
                        rows_per_shard: int = 64, name: str = "eval") -> Path:
    SamplingParams.from_dict(sampling)             # a bad setting fails here, naming the parameter
    doc = {
        "name": name,
        "seed": int(sampling.get("seed", 0)),
        "plugins": ["megascience_eval.stages"],
        "input": {"parquet": [str(QUESTIONS)], "rows_per_shard": rows_per_shard},
        "models": {"model": model},
        "stages": [
            {"stage": "eval_generate", "label": "generate", "llm": "model", "sampling": dict(sampling),
             "prompts": {t: str(PROMPTS_DIR / f"{t}.txt") for t in sorted(set(templates))}},
            {"stage": "eval_score", "label": "score"},
        ],
    }
    path = work / PIPELINE
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def data_sources(specs: Sequence[EvalSpec]) -> dict[str, dict[str, Any]]:
    """Per entry, the data it was read from: its Hub commit, or each file's sha256 (and the PyPI release
    of a package source), so a score names the exact benchmark revision."""
    from importlib.metadata import PackageNotFoundError, version

    from megascience_build.contamination import registry as br
    out = {}
    for spec in specs:
        entry = br.resolved_sources([spec.source])[0]
        data = {k: entry[k] for k in ("hub", "config", "split", "files") if entry.get(k)}
        if spec.source.source == "package":
            try:
                data["distribution"] = f"{spec.source.distribution}=={version(spec.source.distribution)}"
            except PackageNotFoundError:
                data["distribution"] = spec.source.distribution
        out[spec.name] = data
    return out


def prepare(work: str | Path, specs: Sequence[EvalSpec], model: dict[str, Any], *, sample: int | None = None,
            seed: int = 0, sampling: dict[str, Any] | None = None, rows_per_shard: int = 64,
            snapshot_download=None) -> Path:
    """Load the benchmarks (every error before anything is written) and write the run's input and pipeline."""
    table = questions_table(specs, sample=sample, seed=seed, snapshot_download=snapshot_download)
    work = Path(work)
    (work / QUESTIONS.parent).mkdir(parents=True, exist_ok=True)
    write_parquet(work / QUESTIONS, table)
    sampling = {**PAPER_SAMPLING, **(sampling or {})}
    path = write_eval_pipeline(work, model, templates=table.column("template").to_pylist(), sampling=sampling,
                               rows_per_shard=rows_per_shard)
    write_json_atomic(work / "eval_run.json", {"benchmarks": [s.name for s in specs], "data": data_sources(specs),
                                               "sample": sample,
                                               "seed": seed, "sampling": sampling, "questions": table.num_rows,
                                               "model": {k: v for k, v in model.items() if k != "options"}})
    return path


def execute(work: str | Path, *, executor: str = "local", cache: str | None = None, cache_only: bool = False,
            progress: bool = False, workers: int = 1, shards_in_flight: int = 8) -> dict[str, Any]:
    """Run the prepared pipeline with the engine's executor; then collect the instance table."""
    work = Path(work)
    config = load_pipeline(work / PIPELINE)
    options = RunOptions(workers=workers, shards_in_flight=shards_in_flight, cache_path=cache,
                         cache_only=cache_only, progress=progress, executor=executor)
    manifest = run_pipeline(config, work, options)
    collect(work)
    return manifest


def collect(work: str | Path) -> pa.Table:
    work = Path(work)
    parts = sorted((work / "output").glob("part-*.parquet"))
    if not parts:
        raise FileNotFoundError(f"{work}/output has no shards: run the evaluation first")
    table = pa.concat_tables([pq.read_table(p) for p in parts], promote_options="default")
    table = table.select(list(INSTANCE_COLUMNS))
    write_parquet(work / INSTANCES, table)
    return table


def run_info(work: str | Path) -> dict[str, Any]:
    """What the run was (benchmarks, sampling) and the model as it really ran (from the engine's manifest)."""
    work = Path(work)
    info = json.loads((work / "eval_run.json").read_text()) if (work / "eval_run.json").exists() else {}
    manifest_path = work / "manifest.json"
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        model = (manifest.get("models") or {}).get("model") or {}
        info["identity"] = {k: model.get(k) for k in ("backend", "model", "revision", "dtype", "quantization", "digest")}
        gen = next((s for s in manifest.get("stages", []) if s.get("label") == "generate"), {})
        info["usage"] = gen.get("usage", {})
        info["wall_s"] = manifest.get("wall_s")
    return info
