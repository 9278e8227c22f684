"""Fixtures for the decontamination tests: the shared benchmark files, a small fake stage context, a fast
bag-of-words embedder, the real MiniLM embedder and the real SmolLM2 (each loaded once per session)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from decontam_fakes import FakeContext, MiniLMEmbedder, SmolLM2Judge  # noqa: E402
from megascience_build.engine.prompts import load_prompt  # noqa: E402


@pytest.fixture
def judge_prompt():
    return load_prompt("decontam_judge")


@pytest.fixture
def make_ctx():
    return FakeContext


@pytest.fixture(scope="session")
def minilm():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return MiniLMEmbedder()


@pytest.fixture(scope="session")
def smollm2():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return SmolLM2Judge()
