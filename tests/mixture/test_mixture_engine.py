"""The packaged pipeline files run through the engine's local executor with scripted models: NaturalReasoning
and Nemotron-Science fixtures (upstream schemas) through adaptation, dedup, signals, subsets and annotation,
then the mixture; a replay from the request cache is byte-identical."""
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from mixture_fixtures import NEMOTRON_SCHEMA, NR_SCHEMA, expected_difficulty_n, nemotron_rows, nr_rows
from megascience_build.engine import records
from megascience_build.engine.executor_local import run_local
from megascience_build.engine.orchestration import RunOptions
from megascience_build.engine.pipeline_config import load_pipeline
from megascience_build.release.catalogue_builds import catalogue_columns
from megascience_build.release.configurations import assemble
from megascience_datasets.repo_folder import write_repo_folder

PIPELINES = Path(__file__).resolve().parents[2] / "builders" / "megascience_build" / "pipelines"
SCRIPTED = {role: {"backend": "scripted", "model": f"scripted/{role}",
                   "options": {"responder": f"mixture_fixtures:respond_{role}"}}
            for role in ("reference", "policy", "grader", "annotator")}


def trial_pipeline(name: str, root: Path) -> Path:
    """The packaged pipeline with scripted models, k=4 samples, and without the decontamination stage
    (it needs an embedder and benchmark sets; it has its own tests)."""
    doc = yaml.safe_load((PIPELINES / f"{name}.yaml").read_text())
    doc["models"] = SCRIPTED
    doc["stages"] = [s for s in doc["stages"] if s["stage"] != "decontaminate"]
    for s in doc["stages"]:
        if s["stage"] == "difficulty":
            s["params"]["samples"] = 4
        if s["stage"] in ("response_length", "annotate_solution"):
            s["params"]["tokenizer"] = None        # the scripted models' own token counts
    doc["input"]["rows_per_shard"] = 16
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def stage_table(work: Path, label: str) -> pa.Table:
    (folder,) = [d for d in (work / "stages").glob(f"*_{label}") if d.is_dir()] or \
                [d for d in work.rglob(f"*_{label}") if d.is_dir()]
    return pa.concat_tables([pq.read_table(f) for f in sorted(folder.glob("*.parquet"))])


def run(path: Path, work: Path, output: Path, **kw):
    return run_local(load_pipeline(path), work, RunOptions(progress=False, output=str(output), **kw))


def test_packaged_pipelines_end_to_end_and_replay(tmp_path):
    for name, rows, schema in (("natural_reasoning", nr_rows(40), NR_SCHEMA),
                               ("nemotron_science", nemotron_rows(24), NEMOTRON_SCHEMA)):
        (tmp_path / "sources" / name).mkdir(parents=True)
        pq.write_table(pa.Table.from_pylist(rows, schema), tmp_path / "sources" / name / "part-0.parquet")
        run(trial_pipeline(name, tmp_path), tmp_path / f"work_{name}", tmp_path / "build" / name)

    pool = stage_table(tmp_path / "work_natural_reasoning", "select_subsets")
    n = expected_difficulty_n(range(40), [i % 5 != 4 for i in range(40)])
    assert pool.num_rows == 40
    assert [sum(pool.column(c).to_pylist()) for c in ("selected_difficulty", "selected_length", "selected_random")] \
        == [n] * 3
    nr_out = pq.read_table(tmp_path / "build" / "natural_reasoning")
    assert nr_out.column_names == ["id", "question", "answer", "subject", "reference_answer", "provenance"]
    chosen = [q for q, s in zip(pool.column("question").to_pylist(), pool.column("selected_random").to_pylist()) if s]
    too_long = [q for q in chosen if int(q.split("question ")[1].split(":")[0]) % 7 == 6]
    assert nr_out.num_rows == len(chosen) - len(too_long)

    # TextbookReasoning rows as the textbook pipeline writes them
    book = pa.table({"id": [records.content_id("book", i) for i in range(6)], "question": [f"T{i}?" for i in range(6)],
                     "answer": ["A"] * 6, "subject": ["physics"] * 6, "reference_answer": ["a"] * 6,
                     "provenance": [records.new_provenance({"kind": "book", "book_id": "b", "chunk_id": i})
                                    for i in range(6)]})
    (tmp_path / "build" / "textbook").mkdir(parents=True)
    pq.write_table(book, tmp_path / "build" / "textbook" / "part-0.parquet")
    # the engine writes empty shards where a filter kept nothing, but refuses them as input: the mixture
    # reads the non-empty ones (reported to the engine's owner)
    for name in ("natural_reasoning", "nemotron_science"):
        for f in (tmp_path / "build" / name).glob("*.parquet"):
            if pq.read_metadata(f).num_rows == 0:
                f.rename(f.with_suffix(".empty"))
    doc = yaml.safe_load((PIPELINES / "megascience.yaml").read_text())
    mix_path = tmp_path / "megascience.yaml"
    mix_path.write_text(yaml.safe_dump(doc, sort_keys=False))
    run(mix_path, tmp_path / "work_mix", tmp_path / "build" / "megascience")
    mix = pq.read_table(tmp_path / "build" / "megascience")
    nemo_rows = pq.read_table(tmp_path / "build" / "nemotron_science").num_rows
    counts = {s: mix.column("source").to_pylist().count(s) for s in ("TextbookReasoning", "NaturalReasoning",
                                                                      "Nemotron-Science")}
    assert counts == {"TextbookReasoning": 6, "NaturalReasoning": nr_out.num_rows, "Nemotron-Science": nemo_rows}

    # replay the NaturalReasoning build from its request cache only: the same bytes
    cache = tmp_path / "work_natural_reasoning" / "cache.sqlite"
    run(trial_pipeline("natural_reasoning", tmp_path), tmp_path / "replay", tmp_path / "replay_out",
        cache_path=str(cache), cache_only=True)
    first = sorted([*(tmp_path / "build" / "natural_reasoning").glob("*.parquet"),
                    *(tmp_path / "build" / "natural_reasoning").glob("*.empty")])
    again = sorted((tmp_path / "replay_out").glob("*.parquet"))
    assert [p.stem for p in first] == [p.stem for p in again]
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(first, again))

    # the configurations these runs give, assembled for the dataset repository folder
    wanted = ["natural_reasoning", "natural_reasoning_dc_difficulty", "natural_reasoning_dc_length",
              "natural_reasoning_dc_random", "megascience"]
    columns = {c: cols for c, cols in catalogue_columns().items() if c in wanted}
    configs, extra = assemble({"natural_reasoning": tmp_path / "work_natural_reasoning",
                               "megascience": tmp_path / "work_mix"}, columns)
    assert sorted(configs) == sorted(wanted)
    assert configs["natural_reasoning_dc_random"][0].num_rows == n
    assert configs["natural_reasoning_dc_random"][0].column("source").to_pylist() == ["NaturalReasoning"] * n
    assert extra["natural_reasoning_dc_length"]["subset"]["rule"] == "select_length"
    assert extra["natural_reasoning_dc_length"]["subset"]["parameters"]["n"] == n
    assert extra["natural_reasoning"]["upstream"]["revision"] == "8c9292b8932b86f90360ca6b152c2e23ca9252ab"
    assert {m["role"] for m in extra["natural_reasoning_dc_difficulty"]["models"]} == {"policy", "grader", "reference"}
    assert configs["megascience"][0].column_names == ["question", "answer", "subject", "reference_answer", "source"]
    manifest = write_repo_folder(tmp_path / "repo", configs, extra=extra, default="megascience")
    assert (tmp_path / "repo" / "data" / "natural_reasoning_dc_random").is_dir()
    assert "natural_reasoning_dc_random" in json.dumps(manifest)
