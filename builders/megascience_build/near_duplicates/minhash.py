"""Near-duplicate detection of short texts (questions) with MinHash LSH on word n-grams, vectorised.

Two modes.

``paper`` (default) follows the paper's words, "questions with Jaccard similarity above 0.6 are duplicates":

* Normalisation: lowercase; every run of characters that are not letters, digits or combining marks (Unicode
  classes L, N, M) is a word separator, so punctuation, symbols and underscores are dropped and whitespace is
  collapsed: ``"What's  x^2+1?"`` -> ``what s x 2 1``.  Pure-ASCII texts are handled with byte arithmetic;
  other texts go through pyarrow's Unicode ``utf8_lower`` and an RE2 regex first.  No Unicode normalisation
  (NFC/NFKC) is applied.
* Shingles: word 3-grams (``ngram``); a text of 1 or 2 words is one shingle of its words; a text with no word
  is not compared (the caller drops it as ``no_words``).
* Hashing: each word gets a 64-bit hash computed from its UTF-8 bytes (8 bytes at a time, MurmurHash3
  finaliser mixing); each shingle is a polynomial of its word hashes, mixed again and cut to 32 bits.
* Signatures: ``num_perm`` (128) affine permutations ``a*h + b mod 2**32`` with random odd ``a`` (datasketch's
  ``affine32`` scheme), minimum per text.
* Bands: ``bands`` x ``rows`` chosen from the threshold by minimising the weighted integrals of the
  false-positive and false-negative probabilities (datasketch's ``_optimal_param`` rule, integrated here with
  Simpson's rule).  Because every candidate is verified (next point), a false positive costs only one
  verification, so the default weights are 0.2 / 0.8 (recall first): 23 bands x 5 rows at 0.6 and 128
  permutations, which finds a pair at Jaccard 0.6 with probability 0.84 and at 0.7 with 0.99 (datasketch's
  0.5 / 0.5 gives 18 x 7: 0.40 and 0.79).
* Candidates: two texts that agree on all rows of at least one band.  Texts with identical word sequences are
  merged first (they are duplicates under any threshold), so large groups of exact copies cost nothing.  In
  a bucket of up to 64 texts every pair is a candidate; a larger bucket is resolved in leader rounds (its
  smallest text against all others, the dissimilar ones form the next round).
* Verification (``verify``): ``exact`` (default) keeps a candidate pair only if the true Jaccard similarity of
  the two shingle sets (32-bit shingle hashes) is at least the threshold, so no pair below the threshold is
  ever merged and no pair above it is ever rejected; ``estimate`` uses the fraction of equal signature values
  instead (cheaper, but rejects about half of the true pairs close to the threshold); ``none`` keeps every
  candidate (plain LSH, like datasketch and text-dedup).
* Clusters: union-find over the verified pairs.  The representative of a cluster is its row with the smallest
  ``id`` (ties: the earlier row), so the result does not depend on the input order.
* Memory: nothing per row in Python objects; flat numpy arrays hold 4 bytes per shingle (kept for exact
  verification) and 4 bytes per banded permutation per row (115 at the defaults): about 0.7 GiB for
  945,683 questions of 64 words on average.  Hashing runs in ``threads`` threads over chunks of rows.

``authors`` reproduces the code the MegaScience authors ran (their text-dedup fork, ``--ngram 3 --b 1 --r 10
--threshold 0.6``, other options at their defaults): tokens are the pieces of ``re.split(r"\\W", text)``
(empty pieces included, as in their code), shingles are the lower-cased space-joined 3-grams hashed with SHA-1
(first 4 bytes, little-endian), permutations ``((h*a + b) mod (2**61 - 1)) & (2**32 - 1)`` in wrapping 64-bit
arithmetic with ``a, b`` drawn from ``numpy.random.RandomState(42)``, one band of 10 rows, no verification,
and texts with fewer than 5 tokens are dropped (``too_short``).  The threshold plays no part.  A pair
collides with probability about J**10 (0.006 at 0.6, 0.35 at 0.9): in effect only near-exact copies are
removed.  One deliberate difference: the kept row of a cluster is the one with the smallest id, where theirs
is the union-find root (about the first row in file order).
"""
from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .candidates import (_ExactJaccard, _estimated_jaccard, _sorted_unique, _verified_pairs_of_large_group,
                         band_candidates, union_find_roots)
from .lsh_params import (MODES, VERIFY_MODES, DedupConfig, authors_config, collision_probability, optimal_bands,
                         paper_config)
from .shingles import _authors_features, _as_string_array, _Features, _paper_features, authors_tokens, ngrams, tokenize
from .signatures import _Signer

__all__ = ["MODES", "VERIFY_MODES", "DedupConfig", "DedupResult", "authors_config", "authors_tokens",
           "collision_probability", "deduplicate", "ngrams", "optimal_bands", "paper_config", "tokenize",
           "union_find_roots"]

ROWS_PER_CHUNK = 16384                  # rows hashed together (one task of the thread pool)


@dataclass
class DedupResult:
    """Per input row: `representative` is the row index of its cluster's kept row (-1: not compared, too short
    or no words), `cluster_size` the number of rows in its cluster (0 when not compared)."""
    representative: np.ndarray
    cluster_size: np.ndarray
    too_short: np.ndarray          # bool: fewer than min_tokens tokens (authors: fewer than 5 pieces)
    no_words: np.ndarray           # bool: no word at all (paper mode)
    config: DedupConfig
    stats: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)     # wall seconds per phase

    @property
    def kept(self) -> np.ndarray:
        return self.representative == np.arange(len(self.representative))

    @property
    def duplicate(self) -> np.ndarray:
        return (self.representative >= 0) & ~self.kept


def _merge_identical(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Number the distinct keys in order of first occurrence: (node of each position, first position of each
    node)."""
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    new = np.ones(len(keys), dtype=bool)
    new[1:] = sorted_keys[1:] != sorted_keys[:-1]
    group = np.cumsum(new) - 1
    first = order[new]                                 # first position of each group (stable sort)
    by_first = np.argsort(first, kind="stable")
    renumber = np.empty(len(first), dtype=np.int64)
    renumber[by_first] = np.arange(len(first))
    node_of = np.empty(len(keys), dtype=np.int64)
    node_of[order] = renumber[group]
    return node_of, first[by_first]


def _order_rank(ids, n: int) -> np.ndarray:
    """rank[i] = position of row i when rows are sorted by id (stable)."""
    if ids is None:
        return np.arange(n)
    ids = ids if isinstance(ids, (pa.Array, pa.ChunkedArray)) else pa.array(list(ids))
    if len(ids) != n:
        raise ValueError(f"{len(ids)} ids for {n} texts")
    order = pc.sort_indices(ids).to_numpy()
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    return rank


def deduplicate(texts, config: DedupConfig, ids=None, threads: int | None = None) -> DedupResult:
    """Cluster near-duplicate texts; one kept row (the smallest id) per cluster.  See the module docstring."""
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    column = _as_string_array(texts)
    n = len(column)
    rank = _order_rank(ids, n)
    threads = threads or os.cpu_count() or 1
    signer = _Signer(config)
    width = signer.width
    signatures = np.empty((width, n), dtype=np.uint32)

    def featurise(start: int) -> _Features:
        chunk = column.slice(start, ROWS_PER_CHUNK).combine_chunks()
        if config.mode == "authors":
            feats = _authors_features(chunk.to_pylist(), config.ngram)
        else:
            feats = _paper_features(chunk, config.ngram)
        signatures[:, start:start + len(chunk)] = signer.sign(feats)
        if config.verify != "exact":
            feats.shingles = np.zeros(0, np.uint32)      # not needed later: free it now
        return feats

    with ThreadPoolExecutor(max_workers=threads) as pool:
        parts = list(pool.map(featurise, range(0, n, ROWS_PER_CHUNK)))
    n_tokens = np.concatenate([p.n_tokens for p in parts]) if parts else np.zeros(0, np.int64)
    fingerprint = np.concatenate([p.fingerprint for p in parts]) if parts else np.zeros(0, np.uint64)
    n_shingles = np.concatenate([p.n_shingles for p in parts]) if parts else np.zeros(0, np.int64)
    shingles = np.concatenate([p.shingles for p in parts]) if config.verify == "exact" and parts else None
    del parts

    no_words = n_tokens == 0 if config.mode == "paper" else np.zeros(n, dtype=bool)
    too_short = (n_tokens < config.min_tokens) & ~no_words
    eligible = np.flatnonzero(~(no_words | too_short))

    # nodes: eligible texts in id order, texts with the same word sequence merged (paper mode)
    by_rank = eligible[np.argsort(rank[eligible], kind="stable")]
    if config.mode == "paper":
        node_of, text_of_node = _merge_identical(fingerprint[by_rank])
        text_of_node = by_rank[text_of_node]
    else:
        node_of = np.arange(len(by_rank))
        text_of_node = by_rank
    n_nodes = len(text_of_node)
    timings["featurise"] = time.perf_counter() - clock

    clock = time.perf_counter()
    if config.verify == "exact":
        similarity = _ExactJaccard(shingles, n_shingles, text_of_node)
    elif config.verify == "estimate":
        similarity = _estimated_jaccard(signatures, text_of_node)
    else:
        similarity = None

    def band_pairs(band: int):
        return band_candidates(signatures, text_of_node, band, config.rows, verified=similarity is not None)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        per_band = list(pool.map(band_pairs, range(config.bands)))
    lefts, rights = [p[0] for p in per_band], [p[1] for p in per_band]
    large = [group for p in per_band for group in p[2]]
    del per_band
    u = np.concatenate(lefts) if lefts else np.zeros(0, np.int64)
    v = np.concatenate(rights) if rights else np.zeros(0, np.int64)
    codes = _sorted_unique(u * n_nodes + v)
    u, v = codes // n_nodes, codes % n_nodes
    stats = {"rows": n, "compared_rows": len(eligible), "distinct_texts": n_nodes,
             "candidate_pairs": len(codes), "large_buckets": len(large)}
    timings["candidates"] = time.perf_counter() - clock
    clock = time.perf_counter()
    if similarity is not None:
        keep = similarity(u, v) >= config.threshold
        u, v = u[keep], v[keep]
        for group in large:
            gl, gr = _verified_pairs_of_large_group(group, similarity, config.threshold)
            u, v = np.concatenate([u, *gl]), np.concatenate([v, *gr])
        stats["verified_pairs"] = len(u)
    timings["verify"] = time.perf_counter() - clock

    clock = time.perf_counter()
    root = union_find_roots(n_nodes, u, v)
    representative = np.full(n, -1, dtype=np.int64)
    representative[by_rank] = text_of_node[root[node_of]]
    cluster_size = np.zeros(n, dtype=np.int64)
    sizes_by_rep = np.bincount(representative[by_rank], minlength=n)
    cluster_size[by_rank] = sizes_by_rep[representative[by_rank]]
    stats["duplicates"] = int(len(by_rank) - np.count_nonzero(sizes_by_rep))
    stats["clusters_with_duplicates"] = int(np.count_nonzero(sizes_by_rep > 1))
    timings["cluster"] = time.perf_counter() - clock
    return DedupResult(representative, cluster_size, too_short, no_words, config, stats, timings)
