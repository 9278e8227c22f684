import json

import pyarrow as pa
import pytest
import tokenizers
from tokenizers import models, pre_tokenizers, trainers

from megascience_build.engine import records
from megascience_build.engine.stage import StageError
from megascience_build.stages.book_metadata import ClassifyBooks
from megascience_build.stages.chunk import ChunkBooks
from megascience_build.stages.ingest import IngestBooks
from megascience_build.textbooks.book import assemble_pages
from megascience_build.textbooks.chunking import ChunkParams, chunk_books, page_of
from megascience_build.textbooks.tokenizer import load_tokenizer

from textbook_ingest_testlib import file_table, no_model_ctx


@pytest.fixture(scope="module")
def corpus_chunks():
    from textbook_ingest_testlib import CORPUS
    paths = sorted((CORPUS / "books").iterdir())
    books = IngestBooks().process(file_table(paths), None).kept
    books = ClassifyBooks().process(books, no_model_ctx()).kept
    return books, ChunkBooks().process(books, None)


def test_corpus_chunks_fit_the_window_and_carry_provenance(corpus_chunks):
    books, out = corpus_chunks
    tok = load_tokenizer("minilm")
    chunks = out.kept.to_pylist()
    assert out.dropped == []
    assert tok.count([c["text"] for c in chunks]) == [c["num_tokens"] for c in chunks]
    assert max(c["num_tokens"] for c in chunks) <= 4096
    per_subject = {}
    for c in chunks:
        per_subject[c["subject"]] = per_subject.get(c["subject"], 0) + 1
        assert c[records.ID] == records.content_id(c["book_id"], c["chunk_index"])
        prov = json.loads(c[records.PROVENANCE])
        assert prov["origin"]["pages"] == [c["page_start"], c["page_end"]]
        assert prov["origin"]["chunk_id"] == c[records.ID] and prov["origin"]["book_id"] == c["book_id"]
        step = prov["steps"][-1]
        assert step["tokenizer"] == "minilm" and step["tokenizer_sha256"] == tok.sha256
        assert step["window_tokens"] == 4096
    assert len(per_subject) == 7 and min(per_subject.values()) >= 2      # two chunks or more per discipline
    tokens = {s: sum(c["num_tokens"] for c in chunks if c["subject"] == s) for s in per_subject}
    assert min(tokens.values()) >= 2 * 4096                                # two full windows' worth of text


def test_corpus_pdf_chunk_page_spans_match_the_pdf_pages(corpus_chunks, physics_pdf):
    import io
    import pypdf
    pages = [p.extract_text() for p in pypdf.PdfReader(io.BytesIO(physics_pdf)).pages]
    books, out = corpus_chunks
    physics = [c for c in out.kept.to_pylist() if c["subject"] == "physics"]
    for c in physics:
        head, tail = c["text"][:30], c["text"][-30:]
        assert head in pages[c["page_start"] - 1]
        assert tail in pages[c["page_end"] - 1]
    assert physics[0]["page_start"] == 1 and physics[-1]["page_end"] == len(pages)


def paragraphs_book(n_par=30, words=40, pages=3):
    paras = [" ".join(f"p{i}w{j}" for j in range(words)) + "." for i in range(n_par)]
    per = n_par // pages
    page_texts = ["\n\n".join(paras[k * per:(k + 1) * per]) for k in range(pages)]
    return paras, assemble_pages(page_texts)


def test_windows_break_at_paragraphs_and_lose_nothing():
    tok = load_tokenizer("minilm")
    paras, (text, offsets, numbers) = paragraphs_book()
    chunks = chunk_books([text], [offsets], [numbers], tok, ChunkParams(window=300))[0]
    assert len(chunks) > 3
    assert all(c.num_tokens <= 300 for c in chunks)
    assert all(c.text.endswith(".") for c in chunks)                     # paragraph ends, never mid-paragraph
    assert " ".join(c.text for c in chunks).split() == text.split()      # no text lost or repeated
    for c in chunks:
        assert c.first_page == page_of(c.start, offsets, numbers)
        assert c.last_page == page_of(c.end - 1, offsets, numbers)
        assert text[c.start:c.end] == c.text
    assert chunks[0].first_page == 1 and chunks[-1].last_page == 3


def test_long_paragraph_is_split_and_overlap_repeats_tokens():
    tok = load_tokenizer("minilm")
    text = " ".join(f"Sentence number {i} states a fact about energy." for i in range(300))   # one paragraph
    chunks = chunk_books([text], [[0]], [[1]], tok, ChunkParams(window=128))[0]
    assert all(c.num_tokens <= 128 for c in chunks) and len(chunks) > 10
    assert all(c.text.endswith("energy.") for c in chunks)              # sentence boundaries
    overl = chunk_books([text], [[0]], [[1]], tok, ChunkParams(window=128, overlap=16))[0]
    assert all(c.num_tokens <= 128 for c in overl)
    assert all(overl[k + 1].start < overl[k].end for k in range(len(overl) - 1))
    assert len(overl) > len(chunks)


def test_byte_level_bpe_tokenizer_from_a_path_never_exceeds(tmp_path, corpus_dir):
    # a byte-level BPE re-tokenizes differently at cuts than inside the whole text: the re-count guard
    bpe = tokenizers.Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    texts = [p.read_text() for p in sorted((corpus_dir / "books").glob("*.md"))]
    bpe.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=600, show_progress=False,
                                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    bpe.save(str(tmp_path / "tokenizer.json"))
    stage = ChunkBooks(params={"tokenizer": str(tmp_path), "window_tokens": 200})
    books = pa.table({records.ID: ["b1"], records.PROVENANCE: [records.new_provenance({"kind": "book"})],
                      "text": [texts[0]], "page_offsets": [[0]], "page_numbers": [[1]], "title": ["t"],
                      "subject": ["chemistry"], "level": ["undergraduate"]})
    out = stage.process(books, None)
    counts = [len(e.ids) for e in bpe.encode_batch(out.kept.column("text").to_pylist(), add_special_tokens=False)]
    assert max(counts) <= 200 and out.kept.column("num_tokens").to_pylist() == counts
    assert json.loads(out.kept.column(records.PROVENANCE)[0].as_py())["steps"][-1]["tokenizer"] == str(tmp_path)


def test_bad_parameters_are_stage_errors(monkeypatch):
    from huggingface_hub import constants
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(StageError, match="tokenizer"):
        ChunkBooks(params={"tokenizer": "no-such/tokenizer-anywhere"})
    with pytest.raises(StageError, match="overlap"):
        ChunkBooks(params={"overlap_tokens": 5000})
    with pytest.raises(StageError, match="unknown parameter"):
        ChunkBooks(params={"window": 10})


def test_chunks_recounted_over_the_window_are_cut_again():
    # a tokenizer that counts more tokens for a chunk on its own than inside the whole text (as BOS-adding
    # or merge-sensitive tokenizers do) sends the book through the chunk-by-chunk verified path
    base = load_tokenizer("minilm")

    class Inflating(type(base)):
        def count(self, texts):
            return [n + 20 for n in super().count(texts)]

    tok = Inflating(name="inflating", source=base.source, sha256=base.sha256, tokenizer=base.tokenizer)
    paras, (text, offsets, numbers) = paragraphs_book(n_par=12, words=60)
    plain = chunk_books([text], [offsets], [numbers], base, ChunkParams(window=128))[0]
    strict = chunk_books([text], [offsets], [numbers], tok, ChunkParams(window=128))[0]
    assert max(c.num_tokens for c in plain) > 128 - 20          # the fast plan would not fit
    assert all(c.num_tokens <= 128 for c in strict)
    assert [c.num_tokens for c in strict] == tok.count([c.text for c in strict])
    assert " ".join(c.text for c in strict).split() == text.split()


def test_corpus_olmocr_chunk_page_spans_match_the_dolma_spans(corpus_chunks, corpus_dir):
    import zstandard
    raw = zstandard.ZstdDecompressor().stream_reader((corpus_dir / "books" / "biology.olmocr.jsonl.zst").read_bytes())
    doc = json.loads(raw.read())
    pages = {page: doc["text"][s:e] for s, e, page in doc["attributes"]["pdf_page_numbers"]}
    books, out = corpus_chunks
    biology = [c for c in out.kept.to_pylist() if c["subject"] == "biology"]
    assert len(biology) >= 2
    for c in biology:
        assert c["text"][:30] in pages[c["page_start"]]
        assert c["text"][-30:] in pages[c["page_end"]]
    assert biology[-1]["page_end"] == max(pages)


def test_a_tokenizer_that_can_never_fit_is_an_error_not_a_hang():
    base = load_tokenizer("minilm")

    class Huge(type(base)):
        def count(self, texts):
            return [n + 500 for n in super().count(texts)]

    tok = Huge(name="huge", source=base.source, sha256=base.sha256, tokenizer=base.tokenizer)
    with pytest.raises(ValueError, match="cannot be used for chunking"):
        chunk_books(["a few words of text. " * 20], [[0]], [[1]], tok, ChunkParams(window=128))
