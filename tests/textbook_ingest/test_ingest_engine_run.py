"""Ingest -> book dedup -> book metadata -> chunk through the real engine (local executor), with the
classifier on the scripted backend: bad files are dropped with reasons, counted in the manifest."""
import json
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from megascience_build.engine import records
from megascience_build.engine.executor_local import run_local
from megascience_build.engine.orchestration import RunOptions
from megascience_build.engine.pipeline_config import load_pipeline

from textbook_ingest_testlib import CORPUS


def test_corpus_through_the_engine(tmp_path):
    books = tmp_path / "books"
    shutil.copytree(CORPUS / "books", books)
    shutil.copy(books / "economics.md", books / "zz_economics_copy.md")          # exact duplicate book
    (books / "broken.pdf").write_bytes((CORPUS / "books" / "physics.pdf").read_bytes()[:3000])
    (books / "primer.md").write_text("# Counting with Apples\n\nOne apple and one apple make two apples.\n")
    (books / "lecture_notes.md").write_text("# Notes on Fluids\n\n" + "Pressure rises with depth. " * 300)
    pipeline = tmp_path / "ingest.yaml"
    pipeline.write_text(yaml.safe_dump({
        "name": "textbook-ingest-test", "seed": 0,
        "input": {"files": ["books/*"], "rows_per_shard": 4},
        "models": {"classifier": {"backend": "scripted", "model": "scripted/classifier", "revision": "1",
                                  "options": {"rules": [
                                      {"pattern": "Counting with Apples", "response": "Subject: mathematics\nLevel: primary"},
                                      {"pattern": "Notes on Fluids", "response": "Subject: Physics\nLevel: undergraduate"}]}}},
        "stages": [
            {"stage": "ingest_books"},
            {"stage": "book_dedup"},
            {"stage": "book_metadata", "llm": "classifier", "prompts": {"classify": "classify_book.txt"},
             "sampling": {"temperature": 0.0, "max_tokens": 32}},
            {"stage": "chunk", "params": {"tokenizer": "minilm", "window_tokens": 4096}},
        ]}, sort_keys=False))
    work = tmp_path / "work"
    manifest = run_local(load_pipeline(pipeline), work, RunOptions(progress=False))
    by = {s["label"]: s for s in manifest["stages"]}
    assert by["ingest_books"]["rows_in"] == 11 and by["ingest_books"]["dropped"] == {"unreadable_pdf": 1}
    assert by["book_dedup"]["dropped"] == {"duplicate_book": 1}
    assert by["book_metadata"]["dropped"] == {"below_university_level": 1}
    assert by["book_metadata"]["usage"]["requests"] == 2          # only the two books without declared metadata

    table = pa.concat_tables([pq.read_table(p) for p in sorted((work / "output").glob("part-*.parquet"))])
    rows = table.to_pylist()
    assert len({r[records.ID] for r in rows}) == len(rows)
    assert {r["subject"] for r in rows} == {"mathematics", "physics", "chemistry", "biology", "medicine",
                                            "computer science", "economics"}
    assert max(r["num_tokens"] for r in rows) <= 4096
    files = {json.loads(r[records.PROVENANCE])["origin"]["file"] for r in rows}
    assert "books/economics.md" in files and "books/zz_economics_copy.md" not in files
    notes = [r for r in rows if r["title"] == "Notes on Fluids"][0]
    steps = json.loads(notes[records.PROVENANCE])["steps"]
    assert [s["stage"] for s in steps] == ["ingest_books", "book_dedup", "book_metadata", "chunk"]
    assert steps[2]["model"] == "scripted/classifier" and steps[3]["tokenizer"] == "minilm"
