"""Plain text and markdown books: one book per file, pages separated by form feeds (\\f) or one page.

Optional YAML front matter (between two `---` lines at the very top) may declare `title`, `subject`
and `level`."""
from __future__ import annotations

import os
import re

import yaml

from .book import Book, BookReadError, assemble_pages

_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)", re.S)
_HEADING = re.compile(r"^#\s+(.+?)\s*#*\s*$", re.M)


def read_text(data: bytes, name: str) -> Book:
    try:
        raw = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise BookReadError("not_utf8", f"{name}: not UTF-8 text ({e})") from None
    front, body = split_front_matter(raw, name)
    pages = body.split("\f")
    text, offsets, numbers = assemble_pages(pages)
    if not text.strip():
        raise BookReadError("empty_text", f"{name}: no text")
    heading = _HEADING.search(body)
    title = front.get("title") or (heading.group(1) if heading else os.path.splitext(os.path.basename(name))[0])
    return Book(text=text, page_offsets=offsets, page_numbers=numbers, source_format="text",
                title=str(title).strip(), declared_subject=_opt(front.get("subject")),
                declared_level=_opt(front.get("level")))


def split_front_matter(raw: str, name: str) -> tuple[dict, str]:
    m = _FRONT_MATTER.match(raw)
    if not m:
        return {}, raw
    try:
        front = yaml.safe_load(m.group(1)) or {}
    except yaml.YAMLError as e:
        raise BookReadError("invalid_front_matter", f"{name}: YAML front matter does not parse: {e}") from None
    if not isinstance(front, dict):
        raise BookReadError("invalid_front_matter", f"{name}: front matter must be a mapping, "
                                                    f"got {type(front).__name__}")
    return front, raw[m.end():]


def _opt(value) -> str | None:
    return str(value).strip() if value is not None and str(value).strip() else None
