"""Helpers of the release tests: small pipelines run through the real engine with scripted models."""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from megascience_build.engine import records
from megascience_build.engine.executor_local import run_local
from megascience_build.engine.orchestration import RunOptions
from megascience_build.engine.pipeline_config import load_pipeline

PIPELINES = Path(__file__).resolve().parents[2] / "builders" / "megascience_build" / "pipelines"
SUBJECTS = ["physics", "chemistry", "biology", "mathematics", "medicine", "computer science"]


def respond_annotator(request) -> str:
    """A step-by-step solution whose final answer depends on the question (so the data is checkable)."""
    question = request.messages[-1]["content"]
    n = re.search(r"textbook question (\d+)", question)
    digest = hashlib.sha1(question.encode()).hexdigest()[:6]
    return f"Step 1. Read the problem.\nStep 2. Work it out.\n\\boxed{{{n.group(1) if n else digest}}}"


def book_rows(n: int, distill_every: int | None = None) -> pa.Table:
    """TextbookReasoning rows as the textbook pipeline carries them before `finalize`, with realistic lengths."""
    rows = []
    for i in range(n):
        q = (f"textbook question {i}: A body of mass {i + 1} kg rests on an incline of {10 + i % 60} degrees. "
             "Find the friction force needed to keep it at rest, and explain each step of the reasoning. " * 2)
        a = (f"The component of gravity along the incline is m g sin(theta) = {i + 1} * 9.81 * sin({10 + i % 60}). "
             "Friction must balance it exactly, so it has the same magnitude and points up the incline. " * 4)
        row = {"id": records.content_id("release-test", i), "question": q.strip(), "answer": a.strip(),
               "subject": SUBJECTS[i % len(SUBJECTS)], "reference_answer": f"{(i + 1) * 9.81:.2f} sin({10 + i % 60})",
               "provenance": records.new_provenance({"kind": "book", "book_id": f"book-{i % 3}", "chunk_id": i})}
        if distill_every:
            row["selected_difficulty_distill"] = i % distill_every == 0
        rows.append(row)
    return pa.Table.from_pylist(rows)


def textbook_pipeline(root: Path, input_glob: str) -> Path:
    """A pipeline named `textbook` holding only the final stage of textbook.yaml (the upstream stages need PDFs
    and five model roles; they have their own tests): rows -> the released schema plus id and provenance."""
    doc = {"name": "textbook", "seed": 0, "input": {"parquet": [input_glob], "rows_per_shard": 16},
           "stages": [{"stage": "finalize"}]}
    path = root / "textbook.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def distill_pipeline(root: Path, input_glob: str) -> Path:
    """The packaged textbook_difficulty_distill.yaml with a scripted annotator."""
    doc = yaml.safe_load((PIPELINES / "textbook_difficulty_distill.yaml").read_text())
    doc["input"] = {"parquet": [input_glob], "rows_per_shard": 16}
    doc["models"] = {"annotator": {"backend": "scripted", "model": "scripted/annotator",
                                   "options": {"responder": "release_fixtures:respond_annotator"}}}
    path = root / "textbook_difficulty_distill.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def natural_reasoning_pipeline(root: Path, input_glob: str) -> Path:
    """The packaged natural_reasoning.yaml with scripted models (tests/mixture's), k=4, without decontamination."""
    doc = yaml.safe_load((PIPELINES / "natural_reasoning.yaml").read_text())
    doc["models"] = {role: {"backend": "scripted", "model": f"scripted/{role}",
                            "options": {"responder": f"mixture_fixtures:respond_{role}"}}
                     for role in ("reference", "policy", "grader", "annotator")}
    doc["stages"] = [s for s in doc["stages"] if s["stage"] != "decontaminate"]
    for s in doc["stages"]:
        if s["stage"] == "difficulty":
            s["params"]["samples"] = 4
        if s["stage"] in ("response_length", "annotate_solution"):
            s["params"]["tokenizer"] = None
    doc["input"] = {"parquet": [input_glob], "rows_per_shard": 16}
    path = root / "natural_reasoning.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def run(pipeline: Path, work: Path, **options) -> dict:
    return run_local(load_pipeline(pipeline), work, RunOptions(progress=False, workers=1, **options))


def build_all(root: Path, *, cache_from: dict[str, Path] | None = None) -> dict[str, Path]:
    """Run the three small pipelines into root/work_<name>; with cache_from {name: cache.sqlite}, replay each
    from that request cache only (no model may be asked). Returns {pipeline name: work directory}."""
    from mixture_fixtures import NR_SCHEMA, nr_rows

    src = root / "sources"
    if not src.exists():
        (src / "nr").mkdir(parents=True)
        (src / "book").mkdir()
        (src / "distill").mkdir()
        pq.write_table(pa.Table.from_pylist(nr_rows(40), NR_SCHEMA), src / "nr" / "part-0.parquet")
        pq.write_table(book_rows(48), src / "book" / "part-0.parquet")
        pq.write_table(book_rows(30, distill_every=3), src / "distill" / "part-0.parquet")
    # input globs relative to the pipeline file: the same pipeline bytes (and sha256) wherever root is
    pipelines = {"textbook": textbook_pipeline(root, "sources/book/*.parquet"),
                 "textbook_difficulty_distill": distill_pipeline(root, "sources/distill/*.parquet"),
                 "natural_reasoning": natural_reasoning_pipeline(root, "sources/nr/*.parquet")}
    works = {}
    for name, path in pipelines.items():
        work = root / f"work_{name}"
        opts = {"cache_path": str(cache_from[name]), "cache_only": True} if cache_from else {}
        run(path, work, **opts)
        works[name] = work
    return works
