import json

from megascience_build.engine import records
from megascience_build.stages.ingest import DedupBooks, IngestBooks

from textbook_ingest_testlib import file_table

TEXT = "# Optics\n\nLight travels in straight lines.\n\nSnell's law: n1 sin a = n2 sin b.\n"


def test_exact_duplicates_collapse_keeping_first_sorted_path(tmp_path):
    (tmp_path / "b_copy.md").write_text(TEXT.replace("\n\n", "\n  \n"))     # same text, other whitespace
    (tmp_path / "a_orig.md").write_text(TEXT)
    (tmp_path / "c_other.md").write_text(TEXT + "\nA different last line.\n")
    (tmp_path / "d_copy.txt").write_text(TEXT)
    paths = [tmp_path / n for n in ("b_copy.md", "c_other.md", "d_copy.txt", "a_orig.md")]
    books = IngestBooks(params={"root": str(tmp_path)}).process(file_table(paths), None).kept
    ids = books.column(records.ID).to_pylist()
    assert ids[0] == ids[2] == ids[3] != ids[1]

    out = DedupBooks().process(books, None)
    assert sorted(out.kept.column("source_file").to_pylist()) == ["a_orig.md", "c_other.md"]
    assert sorted(out.dropped) == [(0, "duplicate_book"), (2, "duplicate_book")]
    assert out.counters == {"duplicate_book": 2}
    kept = {r["source_file"]: json.loads(r[records.PROVENANCE]) for r in out.kept.to_pylist()}
    assert kept["a_orig.md"]["signals"]["duplicate_book_files"] == ["b_copy.md", "d_copy.txt"]
    assert "duplicate_book_files" not in kept["c_other.md"]["signals"]
    assert kept["a_orig.md"]["steps"][-1]["stage"] == "book_dedup"


def test_no_duplicates_is_identity(corpus_dir):
    paths = sorted((corpus_dir / "books").iterdir())
    books = IngestBooks().process(file_table(paths), None).kept
    out = DedupBooks().process(books, None)
    assert out.dropped == [] and out.kept.num_rows == books.num_rows == 7
    assert out.kept.column(records.ID).to_pylist() == books.column(records.ID).to_pylist()
