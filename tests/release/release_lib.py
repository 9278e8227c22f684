"""Names the release tests share (a module of its own: `from conftest import` is ambiguous when several
test folders run in one pytest call)."""
from __future__ import annotations

import subprocess
import sys

REPO_ID = "acme/megascience"
TAG = "v1.0"
CONFIGS = ["textbook", "textbook_difficulty_distill", "natural_reasoning", "natural_reasoning_dc_difficulty",
           "natural_reasoning_dc_length", "natural_reasoning_dc_random"]


def release_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "megascience_build.cli", "release", *args], capture_output=True,
                          text=True, timeout=600)


def work_args(works: dict) -> list[str]:
    return [a for name, w in works.items() for a in ("--work", f"{name}={w}")]
