"""Fixtures for the question-dedup tests: the synthetic question generator, one labelled pair set per session,
and the engine's real stage context (tests/support)."""
from __future__ import annotations

import pytest

from dedup_synthetic import labelled_pairs
from support.stage_context import stage_context


@pytest.fixture(scope="session")
def pairs():
    """2,500 labelled pairs (edited copies, shared stems, same-topic questions)."""
    return labelled_pairs(n_edit=1500, n_stem=500, n_topic=500, seed=3)


@pytest.fixture
def ctx(tmp_path):
    return stage_context(tmp_path=tmp_path)
