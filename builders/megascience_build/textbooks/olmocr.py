"""olmOCR output: Dolma-style JSONL documents, one per line, plain, zstd- or gzip-compressed.

olmOCR's pipeline writes `<workspace>/results/output_<hash>.jsonl`, one document per PDF:
    {"id": sha1(text), "text": ..., "source": "olmocr",
     "metadata": {"Source-File": ..., "pdf-total-pages": N, ...},
     "attributes": {"pdf_page_numbers": [[start_char, end_char, page], ...], ...}}
Page spans are half-open character ranges of `text`, pages 1-based. Optional metadata keys `title`,
`subject` and `level` (not written by olmOCR; add them with your own tooling) are read as declared
book metadata.
"""
from __future__ import annotations

import gzip
import io
import json
import os

import zstandard

from .book import Book, BookReadError

_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_GZIP_MAGIC = b"\x1f\x8b"


def decompress(data: bytes, name: str) -> bytes:
    try:
        if data[:4] == _ZSTD_MAGIC:
            with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data), read_across_frames=True) as r:
                return r.read()
        if data[:2] == _GZIP_MAGIC:
            return gzip.decompress(data)
    except (zstandard.ZstdError, OSError, EOFError) as e:
        raise BookReadError("unreadable_jsonl", f"{name}: decompression failed: {e}") from None
    return data


def read_olmocr(data: bytes, name: str) -> tuple[list[Book], list[tuple[int, str]]]:
    """All documents of one JSONL file, and (line number, what is wrong) for every malformed line."""
    raw = decompress(data, name)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise BookReadError("unreadable_jsonl", f"{name}: not UTF-8 ({e})") from None
    books, bad = [], []
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            books.append(parse_document(line, line_no))
        except ValueError as e:
            bad.append((line_no, str(e)))
    return books, bad


def parse_document(line: str, line_no: int) -> Book:
    """One Dolma document line -> Book; ValueError saying which field is wrong otherwise."""
    try:
        doc = json.loads(line)
    except json.JSONDecodeError as e:
        raise ValueError(f"not valid JSON ({e.msg} at column {e.colno})") from None
    if not isinstance(doc, dict):
        raise ValueError(f"expected a JSON object, got {type(doc).__name__}")
    text = doc.get("text")
    if not isinstance(text, str) or not text.strip():
        raise ValueError("field 'text' missing, not a string or empty")
    metadata = doc.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise ValueError("field 'metadata' is not an object")
    spans = (doc.get("attributes") or {}).get("pdf_page_numbers") if isinstance(doc.get("attributes"), dict) else None
    offsets, numbers = _page_spans(spans, len(text))
    source = metadata.get("Source-File")
    title = metadata.get("title") or (os.path.splitext(os.path.basename(source))[0] if source else None)
    extra = {"line": line_no, "olmocr_id": doc.get("id")}
    if source:
        extra["source_file"] = source
    return Book(text=text, page_offsets=offsets, page_numbers=numbers, source_format="olmocr",
                title=_str_or_none(title), declared_subject=_str_or_none(metadata.get("subject")),
                declared_level=_str_or_none(metadata.get("level")), extra_origin=extra)


def _page_spans(spans, text_len: int) -> tuple[list[int], list[int]]:
    if not isinstance(spans, list) or not spans:
        raise ValueError("field 'attributes.pdf_page_numbers' missing or empty "
                         "(expected [[start_char, end_char, page], ...])")
    offsets, numbers, prev_end = [], [], 0
    for k, span in enumerate(spans):
        if (not isinstance(span, list) or len(span) != 3
                or not all(isinstance(v, int) and not isinstance(v, bool) for v in span)):
            raise ValueError(f"attributes.pdf_page_numbers[{k}] = {span!r}: expected [start_char, end_char, page]")
        start, end, page = span
        if not (0 <= start <= end <= text_len) or start < prev_end or page < 1:
            raise ValueError(f"attributes.pdf_page_numbers[{k}] = {span!r}: out of order or outside the text "
                             f"(text has {text_len} chars)")
        offsets.append(start)
        numbers.append(page)
        prev_end = end
    offsets[0] = 0   # text before the first span (none in olmOCR output) belongs to the first page
    return offsets, numbers


def _str_or_none(value) -> str | None:
    return str(value).strip() if value is not None and str(value).strip() else None
