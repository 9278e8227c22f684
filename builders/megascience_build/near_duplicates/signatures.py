"""MinHash signatures: per-text minima of affine permutations of the shingle hashes, in cache-sized blocks."""
from __future__ import annotations

import threading

import numpy as np

from .lsh_params import DedupConfig
from .shingles import _U64, _Features

_MERSENNE_61 = _U64((1 << 61) - 1)
_MAX_32 = _U64((1 << 32) - 1)
SHINGLES_PER_BLOCK = 32768              # shingles per permutation block (keeps the block in cache)


def _paper_permutations(width: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 1 << 32, size=width, dtype=np.uint64).astype(np.uint32) | np.uint32(1)
    b = rng.integers(0, 1 << 32, size=width, dtype=np.uint64).astype(np.uint32)
    return a, b


def _authors_permutations(width: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.RandomState(42)    # the order of draws matters: (a_0, b_0), (a_1, b_1), ...
    pairs = [(rng.randint(1, _MERSENNE_61, dtype=np.uint64), rng.randint(0, _MERSENNE_61, dtype=np.uint64))
             for _ in range(width)]
    return np.array(pairs, dtype=np.uint64).T.copy()


def _minhash_blocks(shingles: np.ndarray, n_shingles: np.ndarray, permute, width: int,
                    empty_value) -> np.ndarray:
    """(width, n_texts) minimum of permute(shingle block) per text, in cache-sized blocks of shingles."""
    n = len(n_shingles)
    out = np.full((width, n), empty_value, dtype=np.uint32)
    has = np.flatnonzero(n_shingles > 0)
    if not len(has):
        return out
    starts = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(n_shingles, out=starts[1:])
    # split the texts with shingles into blocks of about SHINGLES_PER_BLOCK shingles, at text boundaries
    cuts = np.searchsorted(starts[has], np.arange(0, starts[-1], SHINGLES_PER_BLOCK), side="right") - 1
    cuts = np.unique(np.append(cuts, len(has)))
    for lo, hi in zip(cuts[:-1], cuts[1:]):
        texts = has[lo:hi]
        first, last = starts[texts[0]], starts[texts[-1] + 1]
        values = permute(shingles[first:last])
        out[:, texts] = np.minimum.reduceat(values, starts[texts] - first, axis=1)
    return out


class _Signer:
    """Computes per-chunk signatures with thread-local scratch buffers."""

    def __init__(self, config: DedupConfig):
        self.width = config.signature_width
        self.mode = config.mode
        if config.mode == "authors":
            self.a, self.b = _authors_permutations(self.width)
        else:
            self.a, self.b = _paper_permutations(self.width, config.seed)
        self._local = threading.local()

    def _buffer(self, n: int) -> np.ndarray:
        buf = getattr(self._local, "buf", None)
        if buf is None or buf.shape[1] < n:
            buf = np.empty((self.width, max(n, SHINGLES_PER_BLOCK)), dtype=np.uint32)
            self._local.buf = buf
        return buf[:, :n]

    def _permute_paper(self, h: np.ndarray) -> np.ndarray:
        out = self._buffer(len(h))
        np.multiply(self.a[:, None], h[None, :], out=out)
        np.add(out, self.b[:, None], out=out)
        return out

    def _permute_authors(self, h: np.ndarray) -> np.ndarray:
        values = (h.astype(np.uint64)[None, :] * self.a[:, None] + self.b[:, None]) % _MERSENNE_61
        return (values & _MAX_32).astype(np.uint32)

    def sign(self, features: _Features) -> np.ndarray:
        permute = self._permute_authors if self.mode == "authors" else self._permute_paper
        return _minhash_blocks(features.shingles, features.n_shingles, permute, self.width, np.uint32(0xFFFFFFFF))
