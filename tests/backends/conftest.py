"""Fixtures for the backend tests: the real small models (loaded once per session) and a loopback
OpenAI-compatible server whose misbehaviour is chosen by the request's user message."""
from __future__ import annotations

import os

import pytest

from support.faulty_server import FaultyServer

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """The CI and dev machines have 2 cores shared by several jobs; two OpenMP threads spin-waiting on each
    other there make CPU generation ~10x slower than one thread (measured: 103 s vs 9 s for 4x24 tokens)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def smollm2(one_torch_thread):
    from megascience_build.backends import make_backend

    backend = make_backend({"backend": "transformers", "model": "smollm2",
                            "options": {"device": "cpu", "max_batch_size": 4}})
    yield backend
    backend.close()


@pytest.fixture(scope="session")
def minilm():
    from megascience_build.backends import make_embedder

    embedder = make_embedder({"backend": "sentence-transformers", "model": "minilm",
                              "options": {"device": "cpu", "batch_size": 16}})
    yield embedder
    embedder.close()


@pytest.fixture
def faulty_server():
    server = FaultyServer()
    yield server
    server.close()
