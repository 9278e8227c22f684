"""Fixtures for the TextbookReasoning LLM stages: the recorded SmolLM2 outputs (see record_fixtures.py)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="session")
def recorded():
    """prompt name -> the recorded fixture document (see record_fixtures.py)."""
    docs = {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted(FIXTURES.glob("*.json"))}
    assert docs, f"no recorded fixtures in {FIXTURES}; run tests/textbook_llm/record_fixtures.py"
    return docs
