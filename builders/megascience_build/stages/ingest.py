"""Stage 1a: ingest textbooks. One input row per file (columns id, provenance, path) -> one row per book.

Formats, by file name: `.pdf` (text layer, page by page), `.jsonl` / `.jsonl.zst` / `.jsonl.zstd` /
`.jsonl.gz` (olmOCR Dolma documents; several books per file), `.txt` / `.md` / `.markdown` (one book).
Files that cannot become a book are dropped with a reason (not_a_pdf, encrypted_pdf, no_text_layer,
unreadable_pdf, unreadable_jsonl, no_valid_documents, not_utf8, empty_text, invalid_front_matter,
unreadable_file, unsupported_file_type); the detail goes to the log with the file name. Malformed olmOCR
lines are counted (`malformed_olmocr_line`) and logged with file and line number.

The book id is a content hash of the normalised text, so exact duplicate books share an id (see
book_dedup)."""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass

import fsspec
import pyarrow as pa
import pypdf

from ..engine import records
from ..engine.params import param
from ..engine.stage import Stage, StageOutput
from ..textbooks.book import Book, BookReadError, text_hash
from ..textbooks.olmocr import read_olmocr
from ..textbooks.pdf import read_pdf
from ..textbooks.plaintext import read_text

log = logging.getLogger(__name__)

BOOK_SCHEMA = pa.schema([
    (records.ID, pa.string()),
    (records.PROVENANCE, pa.string()),
    ("title", pa.string()),
    ("text", pa.string()),
    ("page_offsets", pa.list_(pa.int64())),
    ("page_numbers", pa.list_(pa.int64())),
    ("num_pages", pa.int64()),
    ("source_format", pa.string()),
    ("source_file", pa.string()),
    ("declared_subject", pa.string()),
    ("declared_level", pa.string()),
])

_OLMOCR_SUFFIXES = (".jsonl", ".jsonl.zst", ".jsonl.zstd", ".jsonl.gz")
_TEXT_SUFFIXES = (".txt", ".md", ".markdown")


def file_format(path: str) -> str | None:
    lower = path.lower()
    if lower.endswith(".pdf"):
        return "pdf"
    if lower.endswith(_OLMOCR_SUFFIXES):
        return "olmocr"
    if lower.endswith(_TEXT_SUFFIXES):
        return "text"
    return None


def book_id(book: Book) -> str:
    return records.content_id("book", text_hash(book.text))


class IngestBooks(Stage):
    name = "ingest_books"
    summary = "one row per book from PDF, olmOCR JSONL or text files"
    kind = "map"
    inputs = (records.ID, records.PROVENANCE, "path")
    outputs = tuple(BOOK_SCHEMA.names)

    @dataclass(frozen=True)
    class Params:
        root: str | None = param(None, "file paths are recorded in provenance relative to this folder "
                                       "(null: as given)")

    def output_columns(self, input_names):
        return list(BOOK_SCHEMA.names)      # a book row replaces the file row

    def process(self, batch: pa.Table, ctx) -> StageOutput:
        rows, dropped, counters = [], [], {}
        paths = batch.column("path").to_pylist()
        provs = batch.column(records.PROVENANCE).to_pylist()
        for pos, (path, prov) in enumerate(zip(paths, provs)):
            shown = self._shown_path(path, prov)
            try:
                books = self._read(path, shown, counters)
            except BookReadError as e:
                log.warning("%s: %s: dropped (%s)", self.label, e.detail, e.reason)
                dropped.append((pos, e.reason))
                continue
            for book in books:
                for key, n in book.counters.items():
                    counters[key] = counters.get(key, 0) + n
                counters[f"books_{book.source_format}"] = counters.get(f"books_{book.source_format}", 0) + 1
                rows.append(self._row(book, shown))
        kept = pa.Table.from_pylist(rows, schema=BOOK_SCHEMA)
        return StageOutput(kept=kept, dropped=dropped, counters=counters)

    def _read(self, path: str, shown: str, counters: dict) -> list[Book]:
        fmt = file_format(path)
        if fmt is None:
            raise BookReadError("unsupported_file_type", f"{shown}: not .pdf, olmOCR .jsonl[.zst|.zstd|.gz], "
                                                         f".txt or .md")
        try:
            with fsspec.open(path, "rb") as fh:      # local paths and any fsspec URL (s3://, gs://, ...)
                data = fh.read()
        except (OSError, ValueError) as e:
            raise BookReadError("unreadable_file", f"{shown}: {e}") from None
        if fmt == "pdf":
            return [read_pdf(data, shown)]
        if fmt == "text":
            return [read_text(data, shown)]
        books, bad = read_olmocr(data, shown)
        for line_no, what in bad:
            log.warning("%s: %s line %d: malformed olmOCR document: %s", self.label, shown, line_no, what)
        if bad:
            counters["malformed_olmocr_line"] = counters.get("malformed_olmocr_line", 0) + len(bad)
        if not books:
            raise BookReadError("no_valid_documents", f"{shown}: no valid olmOCR document "
                                                      f"({len(bad)} malformed line(s))")
        return books

    def _shown_path(self, path: str, prov: str | None) -> str:
        if self.settings.root:
            return os.path.relpath(path, self.settings.root)
        try:
            origin = records.origin_of(prov) if prov else {}
        except (ValueError, KeyError, TypeError):
            origin = {}
        return origin.get("file") or origin.get("path") or path

    def _row(self, book: Book, shown: str) -> dict:
        bid = book_id(book)
        origin = {"kind": "book", "file": shown, "book_id": bid, "format": book.source_format,
                  **book.extra_origin}
        prov = json.loads(records.new_provenance(origin))
        prov["steps"].append({"stage": self.label, "reader": _READERS[book.source_format],
                              "num_pages": book.num_pages, "chars": len(book.text)})
        return {records.ID: bid, records.PROVENANCE: json.dumps(prov, sort_keys=True, ensure_ascii=False),
                "title": book.title, "text": book.text, "page_offsets": book.page_offsets,
                "page_numbers": book.page_numbers, "num_pages": book.num_pages,
                "source_format": book.source_format, "source_file": shown,
                "declared_subject": book.declared_subject, "declared_level": book.declared_level}


_READERS = {"pdf": f"pypdf {pypdf.__version__}", "olmocr": "olmocr-dolma-jsonl", "text": "text"}


class DedupBooks(Stage):
    """Exact duplicate books (same normalised-text hash, hence the same id) keep the first by sorted
    (source_file, provenance line); the others are dropped as duplicate_book."""
    name = "book_dedup"
    summary = "exact duplicate books (same normalised-text hash) dropped"
    kind = "global"
    inputs = (records.ID, records.PROVENANCE, "source_file")

    def process(self, table: pa.Table, ctx) -> StageOutput:
        ids = table.column(records.ID).to_pylist()
        files = table.column("source_file").to_pylist()
        lines = [records.origin_of(p).get("line", 0) for p in table.column(records.PROVENANCE).to_pylist()]
        order = sorted(range(len(ids)), key=lambda i: (files[i] or "", lines[i], i))
        first: dict[str, int] = {}
        copies: dict[int, list[str]] = {}
        dropped = []
        for i in order:
            if ids[i] in first:
                dropped.append((i, "duplicate_book"))
                copies[first[ids[i]]].append(files[i])
            else:
                first[ids[i]] = i
                copies[i] = []
        keep = sorted(first.values())
        kept = table.take(pa.array(keep, pa.int64()))
        signals = [{"duplicate_book_files": copies[i]} if copies[i] else None for i in keep]
        kept = records.add_step(kept, {"stage": self.label, "rule": "exact normalised-text hash"}, signals)
        return StageOutput(kept=kept, dropped=sorted(dropped), counters={"duplicate_book": len(dropped)})
