"""Cheap contamination matching: normalised text, word n-gram overlap, and embedding nearest neighbours.

Normalisation (as lm-evaluation-harness's decontamination does, in spirit): Unicode NFKC, lower case,
punctuation and symbols become spaces, whitespace collapses. Words are the space-separated tokens.

N-gram overlap: a training question is contaminated if it contains any `n`-word window (default 13, the
GPT-3 / lm-eval choice) of a benchmark question. A benchmark question shorter than `n` words but with at
least `min_words` words (default 8) is indexed as one key of its full length, so a training question that
contains it word for word is caught as well; shorter benchmark questions are left to the embedding and
judge path (too many everyday phrases have under 8 words).

Boilerplate is not evidence. A run of words that more than one benchmark question contains (science
benchmarks share stock preambles such as "assume that all gases are perfect and that data refer to 298.15 K
unless otherwise stated"), or that is one of the caller's `frequent_phrases`, marks those words as common;
a window is indexed only if at least `min_words` of its words are not common. So a training question that
opens with a shared preamble and asks something else is not matched; one that copies a question after the
preamble is. Questions are counted by their stem (the text without appended choices), so one question
carried by two benchmarks is not boilerplate. A match names the benchmark question sharing the most
indexed windows with the training question (ties: the first), not merely the first hit.
"""
from __future__ import annotations

import hashlib
import re
import unicodedata
from typing import Sequence

import numpy as np

_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)


def normalize(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    return " ".join(_NON_WORD.sub(" ", text).split())


def _hash_words(words: Sequence[str]) -> int:
    digest = hashlib.blake2b(" ".join(words).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


def _windows(words: Sequence[str], n: int) -> list[int]:
    return [_hash_words(words[i:i + n]) for i in range(len(words) - n + 1)]


class NgramIndex:
    """Which benchmark question (by position) owns each evidence n-gram; sorted 64-bit hashes, so memory
    stays small. `common_windows` counts the windows left out as boilerplate."""

    def __init__(self, texts: Sequence[str], n: int = 13, min_words: int = 8,
                 exact_aliases: Sequence[str | None] | None = None, frequent_phrases: Sequence[str] = (),
                 ignore_common: bool = True):
        """`exact_aliases[i]`: another text that counts as an exact match of question i (its stem without
        the appended choices), when it has at least `min_words` words. `ignore_common=False` indexes every
        window, boilerplate included (the behaviour before the boilerplate rule; for comparisons)."""
        if n < 1 or min_words < 1 or min_words > n:
            raise ValueError(f"n-gram sizes must satisfy 1 <= min_words <= n, got n={n}, min_words={min_words}")
        self.n, self.min_words = n, min_words
        exact: dict[str, int] = {}
        docs: list[tuple[int, list[str], list[int], str]] = []   # (position, words, window keys, stem key)
        lengths: set[int] = set()
        for pos, text in enumerate(texts):
            norm = normalize(text)
            if not norm:
                continue
            exact.setdefault(norm, pos)
            alias = normalize(exact_aliases[pos]) if exact_aliases and exact_aliases[pos] else ""
            if len(alias.split()) >= min_words:     # a generic short stem alone identifies nothing
                exact.setdefault(alias, pos)
            words = norm.split()
            if len(words) >= n:
                keys = _windows(words, n)
            elif len(words) >= min_words:
                keys = [_hash_words(words)]
                lengths.add(len(words))
            else:
                keys = []
            docs.append((pos, words, keys, alias or norm))
        # how many distinct questions (by stem) contain each window
        stems_of: dict[int, set[str]] = {}
        for _, _, keys, stem in docs:
            for k in keys:
                stems_of.setdefault(k, set()).add(stem)
        phrases = [p.split() for p in (normalize(x) for x in frequent_phrases) if p]
        hashes: list[int] = []
        owners: list[int] = []
        self.common_windows = 0
        for pos, words, keys, _ in docs:
            common = [False] * len(words)
            width = len(words) if len(words) < n else n
            for i, k in enumerate(keys):
                if ignore_common and len(stems_of[k]) > 1:
                    common[i:i + width] = [True] * width
            for phrase in phrases:
                for i in range(len(words) - len(phrase) + 1):
                    if words[i:i + len(phrase)] == phrase:
                        common[i:i + len(phrase)] = [True] * len(phrase)
            for i, k in enumerate(keys):
                if width - sum(common[i:i + width]) >= min_words:
                    hashes.append(k)
                    owners.append(pos)
                else:
                    self.common_windows += 1
        self.exact = exact
        order = np.argsort(np.asarray(hashes, dtype=np.int64), kind="stable")
        self.hashes = np.asarray(hashes, dtype=np.int64)[order]
        self.owners = np.asarray(owners, dtype=np.int64)[order]
        self.lengths = sorted(lengths | ({n} if len(self.hashes) else set()))

    def match_exact(self, text: str) -> int | None:
        return self.exact.get(normalize(text))

    def match_ngram(self, text: str) -> int | None:
        """The benchmark question sharing the most indexed n-grams with `text` (ties: the lowest position),
        or None."""
        words = normalize(text).split()
        keys = sorted({k for length in self.lengths for k in _windows(words, length)})
        if not keys or not len(self.hashes):
            return None
        keys_arr = np.asarray(keys, dtype=np.int64)
        lo = np.searchsorted(self.hashes, keys_arr, side="left")
        hi = np.searchsorted(self.hashes, keys_arr, side="right")
        hit = np.flatnonzero(hi > lo)
        if not len(hit):
            return None
        owners = np.concatenate([self.owners[lo[i]:hi[i]] for i in hit])
        counts = np.bincount(owners)
        return int(np.argmax(counts))           # argmax: the first of the best


def top_k(queries: np.ndarray, index: np.ndarray, k: int, max_block_bytes: int = 64 << 20,
          device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """The k most similar rows of `index` for each query row (dot product = cosine for L2-normalised rows).

    Returns (positions, similarities), each of shape (len(queries), min(k, len(index))), best first.
    The similarity matrix is computed a block of queries at a time, each block at most `max_block_bytes`.
    device "cpu" uses numpy; "cuda" (or "cuda:N") runs the products and the top-k in torch on that GPU;
    "auto" picks "cuda" when torch sees a GPU.
    """
    if device == "auto":
        device = "cuda" if _cuda_available() else "cpu"
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    index = np.ascontiguousarray(index, dtype=np.float32)
    if queries.ndim != 2 or index.ndim != 2 or queries.shape[1] != index.shape[1]:
        raise ValueError(f"embedding shapes do not match: queries {queries.shape}, index {index.shape}")
    k = min(k, len(index))
    positions = np.zeros((len(queries), k), dtype=np.int64)
    sims = np.zeros((len(queries), k), dtype=np.float32)
    if k == 0 or len(queries) == 0:
        return positions, sims
    block = max(1, max_block_bytes // (4 * len(index)))
    if device != "cpu":
        return _top_k_torch(queries, index, k, block, device, positions, sims)
    for start in range(0, len(queries), block):
        s = queries[start:start + block] @ index.T
        if k < len(index):
            part = np.argpartition(-s, k - 1, axis=1)[:, :k]
        else:
            part = np.broadcast_to(np.arange(len(index)), s.shape).copy()
        part_sims = np.take_along_axis(s, part, axis=1)
        order = np.argsort(-part_sims, axis=1, kind="stable")
        positions[start:start + block] = np.take_along_axis(part, order, axis=1)
        sims[start:start + block] = np.take_along_axis(part_sims, order, axis=1)
    return positions, sims


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def _top_k_torch(queries: np.ndarray, index: np.ndarray, k: int, block: int, device: str,
                 positions: np.ndarray, sims: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    import torch
    bench = torch.from_numpy(index).to(device)
    with torch.no_grad():
        for start in range(0, len(queries), block):
            q = torch.from_numpy(queries[start:start + block]).to(device)
            values, where = torch.topk(q @ bench.T, k, dim=1)      # sorted, best first
            positions[start:start + block] = where.cpu().numpy()
            sims[start:start + block] = values.cpu().numpy()
    return positions, sims
