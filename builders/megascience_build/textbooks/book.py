"""The book record every reader produces, and the normalised-text hash that identifies a book."""
from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass, field

_WHITESPACE = re.compile(r"\s+")


class BookReadError(Exception):
    """A file that cannot become a book. `reason` is a short snake_case drop reason, `detail` says why."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass
class Book:
    text: str
    page_offsets: list[int]          # char offset in `text` where each page starts (non-decreasing)
    page_numbers: list[int]          # the 1-based page number of each of those pages
    source_format: str               # "pdf" | "olmocr" | "text"
    title: str | None = None
    declared_subject: str | None = None
    declared_level: str | None = None
    extra_origin: dict = field(default_factory=dict)   # reader-specific provenance (olmOCR line, Source-File)
    counters: dict = field(default_factory=dict)       # non-fatal problems, e.g. {"unreadable_pdf_page": 2}

    @property
    def num_pages(self) -> int:
        return len(self.page_offsets)


def assemble_pages(pages: list[str], page_numbers: list[int] | None = None,
                   separator: str = "\n\n") -> tuple[str, list[int], list[int]]:
    """Join per-page texts into one text; return (text, page_offsets, page_numbers)."""
    numbers = list(page_numbers) if page_numbers is not None else list(range(1, len(pages) + 1))
    if len(numbers) != len(pages):
        raise ValueError(f"{len(pages)} pages but {len(numbers)} page numbers")
    offsets, parts, pos = [], [], 0
    for i, page in enumerate(pages):
        page = page.strip()
        offsets.append(pos)
        parts.append(page)
        pos += len(page)
        if i < len(pages) - 1 and page:
            parts.append(separator)
            pos += len(separator)
    return "".join(parts), offsets, numbers


def normalise_text(text: str) -> str:
    """NFKC, whitespace runs collapsed to one space, trimmed: two extractions of one book that differ only
    in line breaks or spacing normalise to the same string."""
    return _WHITESPACE.sub(" ", unicodedata.normalize("NFKC", text)).strip()


def text_hash(text: str) -> str:
    """sha256 of the normalised text (hex)."""
    return hashlib.sha256(normalise_text(text).encode("utf-8")).hexdigest()
