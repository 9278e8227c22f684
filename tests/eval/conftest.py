"""Fixtures for the megascience_eval tests (helpers in eval_testlib.py)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:          # eval_responder is named by scripted pipelines as a module path
    sys.path.insert(0, str(HERE))
REPO = HERE.parents[1]


@pytest.fixture(scope="session")
def shared_benchmarks() -> Path:
    """The public benchmark files of ../shared/benchmarks (read from there, never copied)."""
    folder = Path(os.environ.get("MEGASCIENCE_SHARED_BENCHMARKS", REPO.parent / "shared" / "benchmarks"))
    if not (folder / "cs_bench_assertion.json").is_file():
        pytest.fail(f"benchmark files not found in {folder}; set MEGASCIENCE_SHARED_BENCHMARKS")
    return folder
