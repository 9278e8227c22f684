"""Chunking throughput on the embedded corpus replicated N times (default 40 copies of the 7 books).

Prints tokens/s of the `chunk` stage and, as the baseline measured in the same run, of one plain
`encode_batch` pass of the `tokenizers` library over the same texts (the least any token-window chunker
must do). The ratio is the cost of the cut search and of re-counting every chunk on its own.

    .venv/bin/python benchmarks/textbook_chunk.py [--copies 40] [--tokenizer minilm]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "builders"))

from megascience_build.engine import records  # noqa: E402
from megascience_build.stages.book_metadata import ClassifyBooks  # noqa: E402
from megascience_build.stages.chunk import ChunkBooks  # noqa: E402
from megascience_build.stages.ingest import IngestBooks  # noqa: E402
from megascience_build.textbooks.tokenizer import load_tokenizer  # noqa: E402

CORPUS = Path(__file__).resolve().parents[1] / "builders" / "megascience_build" / "corpus" / "books"


class _NoModel:
    def llm(self, role=None):
        raise RuntimeError("the corpus declares its metadata")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--copies", type=int, default=40)
    ap.add_argument("--tokenizer", default="minilm")
    args = ap.parse_args()

    paths = sorted(str(p) for p in CORPUS.iterdir())
    files = pa.table({records.ID: paths, records.PROVENANCE: [records.new_provenance({"kind": "file"})] * len(paths),
                      "path": paths})
    t0 = time.perf_counter()
    books = IngestBooks().process(files, None).kept
    t_ingest = time.perf_counter() - t0
    books = ClassifyBooks().process(books, _NoModel()).kept
    # distinct copies (a marker line keeps ids apart)
    texts = books.column("text").to_pylist()
    big = pa.concat_tables([books.set_column(books.schema.get_field_index("text"), "text",
                                             pa.array([f"{t}\n\nCopy {k}." for t in texts]))
                            for k in range(args.copies)])
    tok = load_tokenizer(args.tokenizer)

    t0 = time.perf_counter()
    encs = tok.tokenizer.encode_batch(big.column("text").to_pylist(), add_special_tokens=False)
    t_base = time.perf_counter() - t0
    n_tokens = sum(len(e.ids) for e in encs)

    stage = ChunkBooks(params={"tokenizer": args.tokenizer})
    t0 = time.perf_counter()
    out = stage.process(big, None)
    t_chunk = time.perf_counter() - t0

    print(f"ingest of the {len(paths)} corpus files (PDF, olmOCR .zst, markdown): {t_ingest:.2f} s")
    print(f"{big.num_rows} books, {n_tokens:,} tokens ({args.tokenizer}) -> {out.kept.num_rows} chunks, "
          f"max {max(out.kept.column('num_tokens').to_pylist())} tokens")
    print(f"baseline, one encode_batch pass: {t_base:.2f} s = {n_tokens / t_base:,.0f} tokens/s")
    print(f"chunk stage:                     {t_chunk:.2f} s = {n_tokens / t_chunk:,.0f} tokens/s")
    print(f"ratio chunk / one tokenization pass: {t_chunk / t_base:.2f}x")


if __name__ == "__main__":
    main()
