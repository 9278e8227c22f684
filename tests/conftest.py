"""Fixtures every test area shares."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def shared_benchmarks() -> Path:
    """The public benchmark files of ../shared/benchmarks (read from there, never copied into the project)."""
    folder = Path(os.environ.get("MEGASCIENCE_SHARED_BENCHMARKS", REPO.parent / "shared" / "benchmarks"))
    for expected in ("gsm8k.jsonl", "cs_bench_assertion.json"):
        if not (folder / expected).is_file():
            pytest.fail(f"benchmark file {expected} not found in {folder}; set MEGASCIENCE_SHARED_BENCHMARKS "
                        f"to the folder of the shared benchmark files")
    return folder
