"""Fixtures for the decontamination tests: the judge prompt, the engine's real stage context (tests/support)
with given judge and embedder, the real MiniLM embedder and the real SmolLM2 (each loaded once per session)."""
from __future__ import annotations

import os

import pytest

from decontam_fakes import MiniLMEmbedder, SmolLM2Judge
from megascience_build.backends.base import SamplingParams
from megascience_build.engine.prompts import load_prompt
from support.stage_context import stage_context


@pytest.fixture
def judge_prompt():
    return load_prompt("decontam_judge")


@pytest.fixture
def make_ctx(tmp_path):
    """make_ctx(judge, embedder, sampling=None, judge_prompt=...) -> the decontaminate stage's context."""
    def make(judge, embed, sampling: SamplingParams | None = None, judge_prompt: str = "decontam_judge"):
        return stage_context(models={None: judge}, embedder=embed, prompts={"judge": judge_prompt},
                             sampling=sampling or SamplingParams(max_tokens=128), tmp_path=tmp_path)
    return make


@pytest.fixture(scope="session")
def minilm():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return MiniLMEmbedder()


@pytest.fixture(scope="session")
def smollm2():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return SmolLM2Judge()
