"""Fixtures for the question-dedup tests: the synthetic question generator and one labelled pair set per session."""
from __future__ import annotations

import sys
from pathlib import Path

import pyarrow as pa
import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from dedup_synthetic import labelled_pairs  # noqa: E402
from megascience_build.engine import records  # noqa: E402


class Ctx:
    """The part of the stage context dedup uses."""
    seed = 0


@pytest.fixture(scope="session")
def pairs():
    """2,500 labelled pairs (edited copies, shared stems, same-topic questions)."""
    return labelled_pairs(n_edit=1500, n_stem=500, n_topic=500, seed=3)


@pytest.fixture
def ctx():
    return Ctx()


def question_table(questions: list[str], subject: str = "physics", column: str = "question") -> pa.Table:
    """An id/provenance/<column>/subject table as the extraction stage leaves it."""
    ids = [records.content_id("test", i, q) for i, q in enumerate(questions)]
    provenance = [records.new_provenance({"kind": "book", "book_id": "b1", "chunk_id": f"c{i}"})
                  for i in range(len(questions))]
    string = pa.string()
    return pa.table({records.ID: pa.array(ids, string), records.PROVENANCE: pa.array(provenance, string),
                     column: pa.array(questions, string), "subject": pa.array([subject] * len(questions), string)})


@pytest.fixture
def make_table():
    return question_table
