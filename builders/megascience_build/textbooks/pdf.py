"""PDF text layer, page by page, with pypdf.

Declared metadata comes from the PDF document information dictionary: /Title, /Subject and the custom
key /AcademicLevel (any PDF writer can set custom info keys; the embedded corpus PDF does)."""
from __future__ import annotations

import io
import logging

import pypdf
from pypdf.errors import DependencyError, FileNotDecryptedError, PdfReadError

from .book import Book, BookReadError, assemble_pages

log = logging.getLogger(__name__)

_HEADER_WINDOW = 1024      # the PDF spec allows junk before %PDF- ; readers accept it within the first KiB
_EOF_WINDOW = 4096         # a complete file ends with %%EOF (plus perhaps a little trailing junk)


def read_pdf(data: bytes, name: str) -> Book:
    if b"%PDF-" not in data[:_HEADER_WINDOW]:
        raise BookReadError("not_a_pdf", f"{name}: no %PDF- header in the first {_HEADER_WINDOW} bytes")
    if b"%%EOF" not in data[-_EOF_WINDOW:]:
        raise BookReadError("unreadable_pdf", f"{name}: no %%EOF marker at the end (truncated file?)")
    try:
        reader = pypdf.PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted and not _open_with_empty_password(reader, name):
            raise BookReadError("encrypted_pdf", f"{name}: encrypted and the empty password does not open it")
        pages = reader.pages
        num_pages = len(pages)
        info = _info(reader)
    except BookReadError:
        raise
    except (FileNotDecryptedError, DependencyError) as e:
        raise BookReadError("encrypted_pdf", f"{name}: {e}") from None
    except Exception as e:  # pypdf raises many types on damaged files (PdfReadError, struct, KeyError, ...)
        raise BookReadError("unreadable_pdf", f"{name}: {type(e).__name__}: {e}") from None

    texts, failed = [], 0
    for i in range(num_pages):
        try:
            texts.append(pages[i].extract_text() or "")
        except Exception as e:  # one damaged page must not lose the book
            failed += 1
            log.warning("%s: page %d: text extraction failed: %s: %s", name, i + 1, type(e).__name__, e)
            texts.append("")
    if num_pages == 0 or failed == num_pages:
        raise BookReadError("unreadable_pdf", f"{name}: none of its {num_pages} page(s) could be read")
    if not any(t.strip() for t in texts):
        raise BookReadError("no_text_layer", f"{name}: {num_pages} page(s), none with a text layer "
                                             f"(scanned or image-only: run olmOCR on it)")
    text, offsets, numbers = assemble_pages(texts)
    counters = {"unreadable_pdf_page": failed} if failed else {}
    counters["empty_pdf_page"] = sum(1 for t in texts if not t.strip())
    return Book(text=text, page_offsets=offsets, page_numbers=numbers, source_format="pdf",
                title=info.get("/Title"), declared_subject=info.get("/Subject"),
                declared_level=info.get("/AcademicLevel"), counters={k: v for k, v in counters.items() if v})


def _open_with_empty_password(reader: pypdf.PdfReader, name: str) -> bool:
    """Many PDFs are encrypted with an owner password only (printing/copy restrictions); they open with ''."""
    try:
        return bool(reader.decrypt(""))
    except DependencyError as e:
        raise BookReadError("encrypted_pdf", f"{name}: {e}") from None
    except (PdfReadError, NotImplementedError) as e:
        raise BookReadError("encrypted_pdf", f"{name}: {type(e).__name__}: {e}") from None


def _info(reader: pypdf.PdfReader) -> dict[str, str]:
    meta = reader.metadata or {}
    out = {}
    for key in ("/Title", "/Subject", "/AcademicLevel"):
        value = meta.get(key)
        if value is not None and str(value).strip():
            out[key] = str(value).strip()
    return out
