import pytest

from megascience_build.stages.ingest import IngestBooks
from megascience_build.textbooks.book import BookReadError
from megascience_build.textbooks.plaintext import read_text

from textbook_ingest_testlib import file_table


def test_front_matter_and_form_feed_pages():
    raw = ("---\ntitle: Thermal Physics\nsubject: physics\nlevel: graduate\n---\n"
           "# Heading ignored for the title\n\nPage one.\n\f\nPage two.\fPage three.").encode()
    book = read_text(raw, "thermal.md")
    assert (book.title, book.declared_subject, book.declared_level) == ("Thermal Physics", "physics", "graduate")
    assert book.page_numbers == [1, 2, 3]
    ends = book.page_offsets[1:] + [len(book.text)]
    assert [book.text[s:e].strip() for s, e in zip(book.page_offsets, ends)] == [
        "# Heading ignored for the title\n\nPage one.", "Page two.", "Page three."]
    assert "---" not in book.text and "\f" not in book.text


def test_title_from_heading_then_file_name():
    assert read_text(b"intro\n# Real Analysis\n\ntext", "notes.md").title == "Real Analysis"
    book = read_text(b"just some text", "dir/my_notes.txt")
    assert book.title == "my_notes" and book.num_pages == 1 and book.declared_subject is None


@pytest.mark.parametrize("raw,reason", [
    (b"---\ntitle: [unclosed\n---\ntext", "invalid_front_matter"),
    (b"---\n- a list\n---\ntext", "invalid_front_matter"),
    (b"\xff\xfe\x00bad", "not_utf8"),
    (b"  \n\f\n  ", "empty_text"),
])
def test_bad_text_files(raw, reason):
    with pytest.raises(BookReadError) as e:
        read_text(raw, "book.md")
    assert e.value.reason == reason and "book.md" in e.value.detail


def test_corpus_markdown_books_ingest(corpus_dir):
    paths = sorted((corpus_dir / "books").glob("*.md"))
    out = IngestBooks(params={"root": str(corpus_dir)}).process(file_table(paths), None)
    assert out.dropped == []
    subjects = sorted(out.kept.column("declared_subject").to_pylist())
    assert subjects == ["chemistry", "computer science", "economics", "mathematics", "medicine"]
    assert all(f.startswith("books/") for f in out.kept.column("source_file").to_pylist())
    assert min(out.kept.column("num_pages").to_pylist()) >= 4
