import json
import logging

import pytest
import zstandard

from megascience_build.stages.ingest import IngestBooks
from megascience_build.textbooks.book import BookReadError
from megascience_build.textbooks.olmocr import parse_document, read_olmocr

from textbook_ingest_testlib import file_table


def dolma(pages, source="pdfs/book.pdf", **meta):
    """A document the way olmOCR's pipeline writes it: page texts joined by "\\n", spans per page."""
    text, spans = "", []
    for i, page in enumerate(pages):
        start = len(text)
        text += page + ("\n" if i < len(pages) - 1 else "")
        spans.append([start, len(text), i + 1])
    return {"id": "x", "text": text, "source": "olmocr",
            "metadata": {"Source-File": source, "pdf-total-pages": len(pages), **meta},
            "attributes": {"pdf_page_numbers": spans}}


GOOD_1 = dolma(["Chapter 1. Vectors\n\nA vector has magnitude and direction.", "Its length is |v|.",
                "Exercises follow."], source="pdfs/vectors.pdf", subject="mathematics", level="undergraduate")
GOOD_2 = dolma(["Cells are the units of life.", "", "Mitochondria make ATP."], source="pdfs/cells.pdf")
MALFORMED = [
    '{"id": "broken", "text": "unterminated',                                         # not JSON
    json.dumps(["a", "list"]),                                                          # not an object
    json.dumps({"id": "no-text", "attributes": {"pdf_page_numbers": [[0, 1, 1]]}}),     # no text
    json.dumps({**GOOD_1, "attributes": {"pdf_page_numbers": [[10, 20, 2], [0, 10, 1]]}}),  # out of order
    json.dumps({**GOOD_1, "attributes": {"pdf_page_numbers": [[0, 99999, 1]]}}),         # outside the text
    json.dumps({**GOOD_1, "attributes": {}}),                                           # no spans
]


def jsonl(lines):
    return ("\n".join(lines) + "\n").encode()


def test_page_spans_become_page_offsets():
    book = parse_document(json.dumps(GOOD_1), 1)
    assert book.page_numbers == [1, 2, 3]
    ends = book.page_offsets[1:] + [len(book.text)]
    pages = [book.text[s:e] for s, e in zip(book.page_offsets, ends)]
    assert pages == ["Chapter 1. Vectors\n\nA vector has magnitude and direction.\n", "Its length is |v|.\n",
                     "Exercises follow."]
    assert (book.title, book.declared_subject, book.declared_level) == ("vectors", "mathematics", "undergraduate")
    assert book.extra_origin == {"line": 1, "olmocr_id": "x", "source_file": "pdfs/vectors.pdf"}


def test_malformed_lines_are_reported_with_line_numbers():
    data = jsonl([json.dumps(GOOD_1), *MALFORMED, "", json.dumps(GOOD_2)])
    books, bad = read_olmocr(data, "results/output_1.jsonl")
    assert [b.extra_origin["line"] for b in books] == [1, 9]
    assert [line for line, _ in bad] == [2, 3, 4, 5, 6, 7]
    reasons = dict(bad)
    assert "not valid JSON" in reasons[2]
    assert "expected a JSON object" in reasons[3]
    assert "'text'" in reasons[4]
    assert "pdf_page_numbers[1]" in reasons[5]
    assert "outside the text" in reasons[6]
    assert "missing or empty" in reasons[7]


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.zst", ".jsonl.zstd"])
def test_stage_reads_plain_and_zstd(tmp_path, suffix, caplog):
    data = jsonl([json.dumps(GOOD_1), *MALFORMED, json.dumps(GOOD_2)])
    if suffix != ".jsonl":
        data = zstandard.ZstdCompressor().compress(data)
    path = tmp_path / f"output_abc{suffix}"
    path.write_bytes(data)
    with caplog.at_level(logging.WARNING):
        out = IngestBooks().process(file_table([path]), None)
    assert out.kept.num_rows == 2 and out.dropped == []
    assert out.counters["malformed_olmocr_line"] == len(MALFORMED)
    assert out.kept.column("num_pages").to_pylist() == [3, 3]
    assert f"output_abc{suffix} line 4" in caplog.text        # file and line of each malformed document


def test_multi_frame_zstd(tmp_path):
    c = zstandard.ZstdCompressor()
    data = c.compress(jsonl([json.dumps(GOOD_1)])) + c.compress(jsonl([json.dumps(GOOD_2)]))
    books, bad = read_olmocr(data, "two_frames.jsonl.zst")
    assert len(books) == 2 and bad == []


def test_file_without_valid_documents_is_dropped(tmp_path):
    (tmp_path / "bad.jsonl").write_bytes(jsonl(MALFORMED))
    (tmp_path / "corrupt.jsonl.zst").write_bytes(b"\x28\xb5\x2f\xfd" + b"garbage" * 10)
    out = IngestBooks().process(file_table([tmp_path / "bad.jsonl", tmp_path / "corrupt.jsonl.zst"]), None)
    assert out.kept.num_rows == 0
    assert out.dropped == [(0, "no_valid_documents"), (1, "unreadable_jsonl")]


def test_corpus_olmocr_sample(corpus_dir):
    path = corpus_dir / "books" / "biology.olmocr.jsonl.zst"
    books, bad = read_olmocr(path.read_bytes(), path.name)
    assert bad == [] and len(books) == 1
    book = books[0]
    assert book.num_pages >= 7 and book.page_numbers == list(range(1, book.num_pages + 1))
    assert book.declared_subject == "biology"
    assert book.text.startswith("# Principles of Genetics")
    # a page's text is exactly the span olmOCR recorded for it
    doc = json.loads(zstandard.ZstdDecompressor().stream_reader(path.read_bytes()).read())
    for (start, end, page), offset in zip(doc["attributes"]["pdf_page_numbers"], book.page_offsets):
        assert start == offset
    with pytest.raises(BookReadError):
        read_olmocr(b"\xff\xfe not utf8 \xff", "x.jsonl")
