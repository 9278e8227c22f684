"""Regenerate ../books/biology.olmocr.jsonl.zst from biology.md (run once by hand; not part of the build).

It writes what olmOCR's pipeline writes for one PDF (a Dolma document in `results/output_<hash>.jsonl`),
so the olmOCR ingest path runs on the embedded corpus without a GPU: the book is split into pages of
about PAGE_WORDS words at paragraph boundaries, page texts are joined with "\\n" as olmOCR does, and
`attributes.pdf_page_numbers` holds the [start_char, end_char, page] span of every page. The metadata
keys title/subject/level are not written by olmOCR; they declare the book's metadata for the demo.

    python make_olmocr_sample.py
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import yaml
import zstandard

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "biology.md"
TARGET = HERE.parent / "books" / "biology.olmocr.jsonl.zst"
PAGE_WORDS = 450


def pages_of(body: str) -> list[str]:
    pages, current, words = [], [], 0
    for para in body.strip().split("\n\n"):
        current.append(para)
        words += len(para.split())
        if words >= PAGE_WORDS:
            pages.append("\n\n".join(current))
            current, words = [], 0
    if current:
        pages.append("\n\n".join(current))
    return pages


def dolma_document(pages: list[str], source_file: str, meta: dict) -> dict:
    text, spans = "", []
    for i, page in enumerate(pages):
        start = len(text)
        text += page + ("\n" if i < len(pages) - 1 else "")
        spans.append([start, len(text), i + 1])
    return {
        "id": hashlib.sha1(text.encode()).hexdigest(),
        "text": text,
        "source": "olmocr",
        "added": "2026-01-01",
        "created": "2026-01-01",
        "metadata": {"Source-File": source_file, "pdf-total-pages": len(pages),
                     "total-input-tokens": 0, "total-output-tokens": 0, "total-fallback-pages": 0,
                     "title": meta["title"], "subject": meta["subject"], "level": meta["level"]},
        "attributes": {"pdf_page_numbers": spans,
                       "primary_language": ["en"] * len(pages),
                       "is_rotation_valid": [True] * len(pages),
                       "rotation_correction": [0] * len(pages),
                       "is_table": [False] * len(pages),
                       "is_diagram": [False] * len(pages)},
    }


def main() -> None:
    _, front, body = SOURCE.read_text(encoding="utf-8").split("---\n", 2)
    meta = yaml.safe_load(front)
    doc = dolma_document(pages_of(body), "pdfs/principles_of_genetics.pdf", meta)
    line = json.dumps(doc, ensure_ascii=False) + "\n"
    TARGET.write_bytes(zstandard.ZstdCompressor(level=19).compress(line.encode("utf-8")))
    print(f"wrote {TARGET}: {doc['metadata']['pdf-total-pages']} pages, {len(doc['text'])} chars")


if __name__ == "__main__":
    main()
