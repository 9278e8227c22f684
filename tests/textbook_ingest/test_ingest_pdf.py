import io
import logging

import pypdf
import pytest

from megascience_build.stages.ingest import IngestBooks
from megascience_build.textbooks.book import BookReadError
from megascience_build.textbooks.pdf import read_pdf

from textbook_ingest_testlib import file_table, pdf_bytes


def test_corpus_pdf_pages_text_and_metadata(physics_pdf):
    book = read_pdf(physics_pdf, "physics.pdf")
    reader = pypdf.PdfReader(io.BytesIO(physics_pdf))
    assert book.num_pages == len(reader.pages) >= 8
    assert book.page_numbers == list(range(1, book.num_pages + 1))
    assert book.title.startswith("Oscillations and Resonance")
    assert (book.declared_subject, book.declared_level) == ("physics", "undergraduate")
    # every page's own text sits in the book text at that page's offset
    ends = book.page_offsets[1:] + [len(book.text)]
    for i, page in enumerate(reader.pages):
        assert book.text[book.page_offsets[i]:ends[i]].strip() == page.extract_text().strip()
    assert "ẍ + ω₀² x = 0" in book.text          # Unicode survives the text layer
    first_chapter4 = book.text.index("Chapter 4. Coupled Oscillators")
    assert book.page_numbers[max(i for i, o in enumerate(book.page_offsets) if o <= first_chapter4)] >= 6


def test_truncated_pdf_is_unreadable(physics_pdf):
    for cut in (len(physics_pdf) // 2, len(physics_pdf) - 50, 100):
        with pytest.raises(BookReadError) as e:
            read_pdf(physics_pdf[:cut], "physics.pdf")
        assert e.value.reason == "unreadable_pdf"
        assert "physics.pdf" in e.value.detail


def test_garbled_body_is_unreadable_not_a_crash(physics_pdf):
    data = bytearray(physics_pdf)
    data[200:-200] = bytes((b * 7 + 3) % 256 for b in data[200:-200])   # keep header and %%EOF
    with pytest.raises(BookReadError) as e:
        read_pdf(bytes(data), "garbled.pdf")
    assert e.value.reason in {"unreadable_pdf", "no_text_layer"}


def test_encrypted_pdf_with_unknown_password(physics_pdf):
    w = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(physics_pdf)))
    w.encrypt(user_password="secret", owner_password="owner", algorithm="RC4-128")
    with pytest.raises(BookReadError) as e:
        read_pdf(pdf_bytes(w), "locked.pdf")
    assert e.value.reason == "encrypted_pdf"


def test_owner_password_only_pdf_opens(physics_pdf):
    # permissions-only encryption (empty user password) is common for published books: it must read
    w = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(physics_pdf)))
    w.encrypt(user_password="", owner_password="owner", algorithm="RC4-128")
    book = read_pdf(pdf_bytes(w), "restricted.pdf")
    assert book.num_pages == read_pdf(physics_pdf, "p.pdf").num_pages and "Simple Harmonic Motion" in book.text


def test_image_only_pdf_has_no_text_layer(blank_pdf):
    with pytest.raises(BookReadError) as e:
        read_pdf(blank_pdf, "scan.pdf")
    assert e.value.reason == "no_text_layer"
    assert "olmOCR" in e.value.detail


@pytest.mark.parametrize("data", [b"", b"hello, this is plain text", b"<html><body>404</body></html>",
                                  b"PK\x03\x04 zip archive"])
def test_not_a_pdf(data):
    with pytest.raises(BookReadError) as e:
        read_pdf(data, "fake.pdf")
    assert e.value.reason == "not_a_pdf"


def test_stage_drops_bad_pdfs_with_reasons_and_keeps_good_ones(tmp_path, physics_pdf, blank_pdf, caplog):
    w = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(physics_pdf)))
    w.encrypt(user_password="secret", algorithm="RC4-128")
    files = {"a_good.pdf": physics_pdf, "b_truncated.pdf": physics_pdf[:5000], "c_locked.pdf": pdf_bytes(w),
             "d_scan.pdf": blank_pdf, "e_fake.pdf": b"not a pdf at all", "f_notes.docx": b"PK\x03\x04"}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    paths = [tmp_path / n for n in sorted(files)] + [tmp_path / "g_missing.pdf"]
    with caplog.at_level(logging.WARNING):
        out = IngestBooks().process(file_table(paths), None)
    assert out.kept.num_rows == 1
    assert out.kept.column("source_format").to_pylist() == ["pdf"]
    assert dict(out.dropped) == {1: "unreadable_pdf", 2: "encrypted_pdf", 3: "no_text_layer", 4: "not_a_pdf",
                                 5: "unsupported_file_type", 6: "unreadable_file"}
    assert "b_truncated.pdf" in caplog.text and "c_locked.pdf" in caplog.text
