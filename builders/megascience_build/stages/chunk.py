"""Stage 2: chunk books into token windows (the paper: 4,096 tokens) with page-span provenance.

One book row -> its chunks. Each chunk carries book_id, chunk_index, the page span [first_page,
last_page], subject and level; its id is content_id(book_id, chunk_index). The tokenizer is named in
the parameters (`minilm` offline by default; any tokenizer.json path or cached Hub id at full scale) and
recorded, with its sha256, in every chunk's provenance."""
from __future__ import annotations

import json
from dataclasses import dataclass

import pyarrow as pa

from ..engine import records
from ..engine.params import param
from ..engine.stage import Stage, StageError, StageOutput
from ..textbooks.chunking import ChunkParams, chunk_books
from ..textbooks.tokenizer import TokenizerNotFound, load_tokenizer

CHUNK_SCHEMA = pa.schema([
    (records.ID, pa.string()),
    (records.PROVENANCE, pa.string()),
    ("book_id", pa.string()),
    ("chunk_index", pa.int64()),
    ("text", pa.string()),
    ("num_tokens", pa.int64()),
    ("page_start", pa.int64()),
    ("page_end", pa.int64()),
    ("title", pa.string()),
    ("subject", pa.string()),
    ("level", pa.string()),
])


class ChunkBooks(Stage):
    name = "chunk"
    summary = "books into token windows with page-span provenance (paper: 4,096 tokens)"
    kind = "map"
    inputs = (records.ID, records.PROVENANCE, "text", "page_offsets", "page_numbers", "title", "subject", "level")
    outputs = tuple(CHUNK_SCHEMA.names)

    @dataclass(frozen=True)
    class Params:
        tokenizer: str = param("minilm", "`minilm` (offline), a tokenizer.json path or a cached Hub id")
        tokenizer_revision: str | None = param(None, "the Hub revision of the tokenizer")
        window_tokens: int = param(4096, "tokens per chunk")
        overlap_tokens: int = param(0, "tokens repeated from the end of the previous chunk")
        min_fill: float = param(0.5, "a paragraph or sentence cut must leave the chunk at least this full")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        try:
            p = self.settings
            self.chunk_params = ChunkParams(window=p.window_tokens, overlap=p.overlap_tokens,
                                            min_fill=float(p.min_fill))
        except (TypeError, ValueError) as e:
            raise StageError(f"stage {self.label!r}: {e}") from None
        self.tokenizer()        # a tokenizer that cannot load is a configuration error, found before work

    def output_columns(self, input_names):
        return list(CHUNK_SCHEMA.names)     # chunk rows replace book rows

    def side_inputs(self):
        return {"tokenizer_sha256": self.tokenizer().sha256}

    def tokenizer(self):
        try:
            return load_tokenizer(self.settings.tokenizer, self.settings.tokenizer_revision)
        except TokenizerNotFound as e:
            raise StageError(f"stage {self.label!r}: parameter 'tokenizer': {e}") from None

    def process(self, batch: pa.Table, ctx) -> StageOutput:
        tok = self.tokenizer()
        cols = {c: batch.column(c).to_pylist() for c in self.inputs}
        try:
            per_book = chunk_books(cols["text"], cols["page_offsets"], cols["page_numbers"], tok, self.chunk_params)
        except ValueError as e:
            raise StageError(f"stage {self.label!r}: tokenizer {tok.name!r}: {e}") from None
        step = {"stage": self.label, "tokenizer": tok.name, "tokenizer_source": tok.source,
                "tokenizer_sha256": tok.sha256, "window_tokens": self.chunk_params.window,
                "overlap_tokens": self.chunk_params.overlap}
        rows, dropped = [], []
        for pos, chunks in enumerate(per_book):
            if not chunks:
                dropped.append((pos, "empty_book"))
                continue
            book_id = cols[records.ID][pos]
            for ch in chunks:
                cid = records.content_id(book_id, ch.index)
                rows.append({records.ID: cid,
                             records.PROVENANCE: _chunk_provenance(cols[records.PROVENANCE][pos], cid, ch, step),
                             "book_id": book_id, "chunk_index": ch.index, "text": ch.text,
                             "num_tokens": ch.num_tokens, "page_start": ch.first_page, "page_end": ch.last_page,
                             "title": cols["title"][pos], "subject": cols["subject"][pos],
                             "level": cols["level"][pos]})
        kept = pa.Table.from_pylist(rows, schema=CHUNK_SCHEMA)
        return StageOutput(kept=kept, dropped=dropped,
                           counters={"chunks": len(rows), "chunk_tokens": sum(r["num_tokens"] for r in rows)})


def _chunk_provenance(book_prov: str, chunk_id: str, ch, step: dict) -> str:
    prov = json.loads(book_prov)
    prov["origin"].update({"chunk_id": chunk_id, "chunk_index": ch.index, "pages": [ch.first_page, ch.last_page],
                           "chars": [ch.start, ch.end]})
    prov.setdefault("steps", []).append({**step, "num_tokens": ch.num_tokens})
    return json.dumps(prov, sort_keys=True, ensure_ascii=False)
