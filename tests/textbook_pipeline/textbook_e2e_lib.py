"""Helpers for the TextbookReasoning end-to-end tests: a test corpus (the embedded books plus planted ones),
pipeline files that extend the packaged ones with scripted models, and readers for the work directory."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "builders" / "megascience_build"
PIPELINES = PACKAGE / "pipelines"
CORPUS = PACKAGE / "corpus" / "books"
HERE = Path(__file__).resolve().parent
ROLES = ("classifier", "extractor", "refiner", "judge")
VARIANTS = ("no_decontam", "no_cot", "no_refine", "refined_by_extractor")


def shared_benchmarks() -> Path:
    """The team's benchmark files (read in place, never copied into the repository)."""
    env = os.environ.get("MEGASCIENCE_SHARED_BENCHMARKS")
    folder = Path(env) if env else REPO.parent / "shared" / "benchmarks"
    if not (folder / "gsm8k.jsonl").is_file():
        raise FileNotFoundError(f"no gsm8k.jsonl in {folder}: set MEGASCIENCE_SHARED_BENCHMARKS to the folder of "
                                f"the shared benchmark files")
    return folder


def gsm8k_questions(n: int) -> list[str]:
    with open(shared_benchmarks() / "gsm8k.jsonl", encoding="utf-8") as f:
        return [json.loads(next(f))["question"] for _ in range(n)]


ROBE_EDITED = "A robe needs 2 bolts of blue fibre and half that much white fibre. How many bolts does it need in total?"


def make_corpus(root: Path) -> dict:
    """The embedded books, an exact copy of one of them, and planted books (see textbook_e2e_script)."""
    books = root / "books"
    books.mkdir(parents=True)
    for src in sorted(CORPUS.iterdir()):
        shutil.copy(src, books / src.name)
    shutil.copy(CORPUS / "chemistry.md", books / "chemistry_second_printing.md")       # duplicate_book
    verbatim, robe = gsm8k_questions(2)
    assert robe.startswith("A robe takes 2 bolts"), robe
    (books / "everyday_rates.md").write_text(                       # no front matter: the classifier decides
        "# Rates and Proportions for University Entrance\n\nThis workbook reviews rates, ratios and proportional "
        "reasoning through short problems with full solutions.\n\f"
        f"Exercise: {verbatim}\nSolution: She sells 16 - 3 - 4 = 9 eggs a day for 9 * 2 = 18 dollars. "
        "The answer is 18.\n\f"
        f"Exercise: {ROBE_EDITED}\nSolution: White fibre is 2 / 2 = 1 bolt, so 2 + 1 = 3 bolts. The answer is 3.\n"
        "Exercise: A cyclist rides 45 km in 1.5 hours at a constant speed. What is the speed in kilometres per "
        "hour?\nSolution: Speed is distance over time, 45 / 1.5 = 30 km/h. The answer is 30.\n", encoding="utf-8")
    (books / "counting_fun.txt").write_text(                        # classified primary level: dropped
        "# Counting Fun\n\nLet us practise counting apples, pears and plums in the basket together.\n"
        "Exercise: Tom has 3 apples and finds 2 more. How many apples does Tom have now?\n"
        "Solution: 3 + 2 = 5. The answer is 5.\n", encoding="utf-8")
    (books / "physics_outline.md").write_text(
        "---\ntitle: Course Outline for Mechanics\nsubject: physics\nlevel: undergraduate\n---\n"
        "# Course Outline for Mechanics\n\nWeek 1 kinematics; week 2 forces; week 3 energy. [[no questions]]\n",
        encoding="utf-8")
    (books / "lab_notes.md").write_text(
        "---\ntitle: Laboratory Notes in Biochemistry\nsubject: biology\nlevel: graduate\n---\n"
        "# Laboratory Notes in Biochemistry\n\nSession plan, safety rules and equipment list. [[garbled]]\n",
        encoding="utf-8")
    return {"books": books, "verbatim": verbatim, "edited": ROBE_EDITED}


def scripted_models(log_path: Path, refiner_delay: float = 0.0) -> dict:
    models = {}
    for role in ROLES:
        options = {"responder": f"textbook_e2e_script:respond_{role}", "log_path": str(log_path)}
        if role == "refiner" and refiner_delay:
            options["delay"] = refiner_delay
        models[role] = {"backend": "scripted", "model": f"scripted/{role}", "revision": "1", "options": options}
    models["embedder"] = {"backend": "sentence-transformers", "model": "minilm"}
    return models


def write_registry(root: Path) -> Path:
    path = root / "benchmarks.yaml"
    path.write_text(yaml.safe_dump({"sets": {"e2e": ["gsm8k_shared"]}, "benchmarks": {
        "gsm8k_shared": {"file": {"path": str(shared_benchmarks() / "gsm8k.jsonl")}, "question": "question"}}}))
    return path


def write_pipeline(root: Path, packaged: str, books: Path, log_path: Path, *, refiner_delay: float = 0.0) -> Path:
    """A pipeline file extending the packaged `packaged`.yaml with scripted models, the test corpus and the
    test benchmark registry (the embedder is the real MiniLM)."""
    root.mkdir(parents=True, exist_ok=True)
    base = yaml.safe_load((PIPELINES / f"{packaged}.yaml").read_text())
    overrides = {}
    stages_of_base = yaml.safe_load((PIPELINES / "textbook.yaml").read_text())["stages"]
    removed = set(base.get("remove_stages") or [])
    labels = [s.get("label") or s["stage"] for s in stages_of_base if (s.get("label") or s["stage"]) not in removed]
    if "decontaminate" in labels:
        overrides["decontaminate"] = {"params": {"registry": str(write_registry(root)), "benchmarks": "e2e",
                                                 "index_cache_dir": str(root.parent / "index_cache")}}
    doc = {"extends": str(PIPELINES / f"{packaged}.yaml"), "name": packaged,
           "input": {"files": [f"{books}/*"], "rows_per_shard": 8},
           "models": scripted_models(log_path, refiner_delay)}
    if overrides:
        doc["override_stages"] = overrides
    path = root / f"{packaged}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def stage_table(work: Path, label: str) -> pa.Table:
    (folder,) = [d for d in (work / "stages").iterdir() if d.is_dir() and d.name.split("_", 1)[1] == label]
    parts = sorted(folder.glob("*.parquet"))
    return pa.concat_tables([pq.read_table(p) for p in parts]) if parts else pa.table({})


def output_table(out_dir: Path) -> pa.Table:
    return pa.concat_tables([pq.read_table(p) for p in sorted(out_dir.glob("*.parquet"))])


def calls(log_path: Path) -> list[dict]:
    if not log_path.exists():
        return []
    return [json.loads(line) for line in log_path.read_text(encoding="utf-8").splitlines()]
