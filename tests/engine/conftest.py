"""Fixtures for the engine tests (helpers live in engine_testlib.py)."""
from __future__ import annotations

from pathlib import Path

import pytest

from engine_testlib import write_pipeline


@pytest.fixture
def pipeline(tmp_path) -> Path:
    return write_pipeline(tmp_path / "p")
