"""Tables for the question-dedup tests (a module of its own: `from conftest import` is ambiguous when
several test folders run in one pytest call)."""
from __future__ import annotations

import pyarrow as pa

from megascience_build.engine import records


def question_table(questions: list[str], subject: str = "physics", column: str = "question") -> pa.Table:
    """An id/provenance/<column>/subject table as the extraction stage leaves it."""
    ids = [records.content_id("test", i, q) for i, q in enumerate(questions)]
    provenance = [records.new_provenance({"kind": "book", "book_id": "b1", "chunk_id": f"c{i}"})
                  for i in range(len(questions))]
    string = pa.string()
    return pa.table({records.ID: pa.array(ids, string), records.PROVENANCE: pa.array(provenance, string),
                     column: pa.array(questions, string), "subject": pa.array([subject] * len(questions), string)})
