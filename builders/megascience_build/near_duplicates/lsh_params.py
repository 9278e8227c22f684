"""MinHash LSH parameters: the two modes' settings, and bands x rows chosen from the threshold (see minhash.py)."""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

MODES = ("paper", "authors")
VERIFY_MODES = ("exact", "estimate", "none")


@dataclass(frozen=True)
class DedupConfig:
    mode: str = "paper"
    threshold: float = 0.6
    num_perm: int = 128
    bands: int = 23
    rows: int = 5
    ngram: int = 3
    min_tokens: int = 0
    verify: str = "exact"
    seed: int = 0

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.verify not in VERIFY_MODES:
            raise ValueError(f"verify must be one of {VERIFY_MODES}, got {self.verify!r}")
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold must be strictly between 0 and 1, got {self.threshold!r}")
        for name in ("num_perm", "bands", "rows", "ngram"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.bands * self.rows > self.num_perm:
            raise ValueError(f"bands x rows ({self.bands} x {self.rows}) exceeds num_perm ({self.num_perm})")
        if not isinstance(self.min_tokens, int) or self.min_tokens < 0:
            raise ValueError(f"min_tokens must be a non-negative integer, got {self.min_tokens!r}")

    @property
    def signature_width(self) -> int:
        """Permutations actually computed: only the banded ones unless verification compares signatures."""
        return self.num_perm if self.verify == "estimate" else self.bands * self.rows


def paper_config(threshold: float = 0.6, num_perm: int = 128, bands: int | None = None, rows: int | None = None,
                 ngram: int = 3, verify: str = "exact", seed: int = 0, min_tokens: int = 0,
                 false_positive_weight: float = 0.2, false_negative_weight: float = 0.8) -> DedupConfig:
    if (bands is None) != (rows is None):
        raise ValueError("give both bands and rows, or neither (then they are derived from the threshold)")
    if bands is None:
        bands, rows = optimal_bands(threshold, num_perm, false_positive_weight, false_negative_weight)
    return DedupConfig("paper", threshold, num_perm, bands, rows, ngram, min_tokens, verify, seed)


def authors_config() -> DedupConfig:
    """The authors' run: text-dedup defaults (num_perm 250, min_length 5, seed 42) with --b 1 --r 10."""
    return DedupConfig("authors", 0.6, 250, 1, 10, 3, 5, "none", 42)


def collision_probability(similarity, bands: int, rows: int):
    """Probability that two texts of Jaccard `similarity` share at least one band."""
    s = np.asarray(similarity, dtype=np.float64)
    return 1.0 - (1.0 - s ** rows) ** bands


def _simpson(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Simpson's rule along the last axis over an odd number of equally spaced samples."""
    n = values.shape[-1] - 1
    weights = np.ones(n + 1)
    weights[1:-1:2], weights[2:-1:2] = 4.0, 2.0
    return values @ weights * (hi - lo) / (3.0 * n)


@functools.lru_cache(maxsize=64)
def optimal_bands(threshold: float, num_perm: int, false_positive_weight: float = 0.5,
                  false_negative_weight: float = 0.5) -> tuple[int, int]:
    """(bands, rows) with bands*rows <= num_perm minimising
    fp_weight * integral_0^t P(collide | s) ds + fn_weight * integral_t^1 (1 - P(collide | s)) ds,
    the rule of datasketch's `_optimal_param` (first minimum in the order b = 1.., r = 1..)."""
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be strictly between 0 and 1, got {threshold!r}")
    if num_perm < 1:
        raise ValueError(f"num_perm must be positive, got {num_perm!r}")
    for name, weight in (("false_positive_weight", false_positive_weight),
                         ("false_negative_weight", false_negative_weight)):
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {weight!r}")
    combos = np.array([(b, r) for b in range(1, num_perm + 1) for r in range(1, num_perm // b + 1)])
    b, r = combos[:, :1].astype(np.float64), combos[:, 1:].astype(np.float64)
    samples = 1025        # 257 already reproduces datasketch's choice on a grid of 432 settings
    below = np.linspace(0.0, threshold, samples)[None, :]
    above = np.linspace(threshold, 1.0, samples)[None, :]
    false_pos = _simpson(1.0 - (1.0 - below ** r) ** b, 0.0, threshold)
    false_neg = _simpson((1.0 - above ** r) ** b, threshold, 1.0)
    error = false_positive_weight * false_pos + false_negative_weight * false_neg
    best = combos[int(np.argmin(error))]
    return int(best[0]), int(best[1])
