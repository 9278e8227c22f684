"""Fixtures for the textbook ingest, metadata and chunk tests (helpers live in textbook_ingest_testlib)."""
from __future__ import annotations

import pytest

from textbook_ingest_testlib import CORPUS, pdf_bytes


@pytest.fixture
def corpus_dir():
    return CORPUS


@pytest.fixture
def blank_pdf() -> bytes:
    from pypdf import PdfWriter
    w = PdfWriter()
    w.add_blank_page(612, 792)
    w.add_blank_page(612, 792)
    return pdf_bytes(w)


@pytest.fixture
def physics_pdf() -> bytes:
    return (CORPUS / "books" / "physics.pdf").read_bytes()
