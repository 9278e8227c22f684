"""Textbook ingestion helpers: readers (PDF text layer, olmOCR Dolma JSONL, text/markdown), the book
record, tokenizers available offline, windowed chunking and the book-metadata parser. The stages in
`megascience_build.stages` (ingest, book_dedup, book_metadata, chunk) are thin wrappers around these."""
