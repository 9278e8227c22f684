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

import functools
import hashlib
import os
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

MODES = ("paper", "authors")
VERIFY_MODES = ("exact", "estimate", "none")

_U64 = np.uint64
_M1 = _U64(0xFF51AFD7ED558CCD)
_M2 = _U64(0xC4CEB9FE1A85EC53)
_K_WORD = _U64(0x9E3779B97F4A7C15)
_K_SHINGLE = _U64(0xD6E8FEB86659FD93)
_K_LENGTH = _U64(0xA0761D6478BD642F)
_S33 = _U64(33)
_ALL_ONES = _U64(0xFFFFFFFFFFFFFFFF)

_SEPARATORS = r"[^\pL\pN\pM]+"          # RE2 syntax: anything that is not a letter, digit or combining mark
_AUTHORS_SPLIT = re.compile(r"\W", re.UNICODE)
_MERSENNE_61 = _U64((1 << 61) - 1)
_MAX_32 = _U64((1 << 32) - 1)

ROWS_PER_CHUNK = 16384                  # rows hashed together (one task of the thread pool)
SHINGLES_PER_BLOCK = 32768              # shingles per permutation block (keeps the block in cache)
ALL_PAIRS_LIMIT = 64                    # buckets up to this size are verified pair by pair
VERIFY_PAIRS_PER_CHUNK = 262144


# ---------------------------------------------------------------------------------------------------------
# Parameters
# ---------------------------------------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------------------------------------
# Hashing helpers
# ---------------------------------------------------------------------------------------------------------
def _fmix64(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finaliser (a bijection with full avalanche), on a fresh array."""
    h = h ^ (h >> _S33)
    h *= _M1
    h ^= h >> _S33
    h *= _M2
    h ^= h >> _S33
    return h


def _string_buffers(texts: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(UTF-8 bytes, int64 offsets from 0) of a string array, without copying the bytes."""
    offset_type = np.int64 if pa.types.is_large_string(texts.type) else np.int32
    _, offsets_buf, data_buf = texts.buffers()
    offsets = np.frombuffer(offsets_buf, dtype=offset_type)[texts.offset:texts.offset + len(texts) + 1]
    offsets = offsets.astype(np.int64)
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.zeros(0, np.uint8)
    return data[offsets[0]:offsets[-1]], offsets - offsets[0]


# ASCII letters and digits are word bytes, other ASCII bytes separate words; bytes >= 0x80 belong to the
# non-ASCII characters, which only survive normalisation when they are letters, digits or marks
_WORD_BYTE = np.zeros(256, dtype=bool)
for _lo, _hi in ((ord("0"), ord("9")), (ord("A"), ord("Z")), (ord("a"), ord("z")), (0x80, 0xFF)):
    _WORD_BYTE[_lo:_hi + 1] = True
_HIGH_BITS = _U64(0x8080808080808080)


@dataclass
class _Words:
    data: np.ndarray       # UTF-8 bytes of all texts (ASCII letters not yet lower-cased)
    starts: np.ndarray     # byte offset of each word
    lengths: np.ndarray    # byte length of each word
    counts: np.ndarray     # words per text


def _words(texts: pa.Array) -> _Words:
    """Word spans of the paper-mode normalisation.  Pure-ASCII texts are split with a byte table (and
    lower-cased when hashed); the others first go through pyarrow's Unicode lower-casing and a regex that
    turns every run of characters outside L, N, M into a space, after which the same byte rules apply."""
    not_ascii = pc.invert(pc.string_is_ascii(texts))
    if pc.any(not_ascii).as_py():
        unicode_texts = texts.filter(not_ascii)
        normalised = pc.replace_substring_regex(pc.utf8_lower(unicode_texts), _SEPARATORS, " ")
        texts = pc.replace_with_mask(texts, not_ascii, normalised)
    data, offsets = _string_buffers(texts)
    word = _WORD_BYTE[data]
    edges = np.diff(word.view(np.int8), prepend=np.int8(0), append=np.int8(0))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    # a word may not run from the end of one text into the next
    inner = offsets[1:-1][(offsets[1:-1] > 0) & (offsets[1:-1] < len(data))]
    inner = inner[np.diff(inner, prepend=-1) > 0]         # empty texts repeat an offset
    split = inner[word[inner - 1] & word[inner]]
    if len(split):
        starts, ends = np.sort(np.concatenate([starts, split])), np.sort(np.concatenate([ends, split]))
    counts = np.diff(np.searchsorted(starts, offsets)).astype(np.int64)
    return _Words(data, starts, ends - starts, counts)


def _ascii_lower(chunks: np.ndarray) -> np.ndarray:
    """Sets bit 0x20 of every ASCII byte of uint64 chunks of word bytes: lower-cases ASCII letters and leaves
    digits (which have it) and the bytes of non-ASCII characters (>= 0x80) unchanged."""
    return chunks | ((~chunks & _HIGH_BITS) >> _U64(2))


def tokenize(texts) -> list[list[str]]:
    """The paper-mode words of each text (see the module docstring), exactly as they are hashed."""
    words = _words(_as_string_array(texts).combine_chunks())
    data = words.data.copy()
    data[data < 0x80] |= 0x20                       # what _ascii_lower does to word bytes
    raw = data.tobytes()
    tokens = [raw[s:s + n].decode("utf-8") for s, n in zip(words.starts.tolist(), words.lengths.tolist())]
    bounds = np.concatenate([[0], np.cumsum(words.counts)]).tolist()
    return [tokens[bounds[i]:bounds[i + 1]] for i in range(len(words.counts))]


def _word_hashes(words: _Words) -> np.ndarray:
    """A 64-bit hash of each (lower-cased) word's bytes, read 8 at a time (little-endian: platform-independent)."""
    padded = np.zeros(len(words.data) + 8, dtype=np.uint8)
    padded[:len(words.data)] = words.data
    # every byte position seen as the start of a little-endian uint64 (an unaligned view, no copy)
    chunks = np.ndarray(shape=(len(padded) - 7,), dtype="<u8", buffer=padded, strides=(1,))
    starts, lengths = words.starts, words.lengths
    # the first 8 bytes of every word, bytes past its end masked off
    keep_bytes = np.minimum(lengths, 8).astype(np.uint64)
    chunk = _ascii_lower(chunks[starts]) & (_ALL_ONES >> ((_U64(8) - keep_bytes) * _U64(8)))
    h = _fmix64((lengths.astype(np.uint64) * _K_LENGTH) ^ (chunk * _K_WORD))
    active = np.flatnonzero(lengths > 8)
    k = 1
    while len(active):                              # longer words, 8 more bytes per round
        remaining = lengths[active] - 8 * k
        keep_bytes = np.minimum(remaining, 8).astype(np.uint64)
        chunk = _ascii_lower(chunks[starts[active] + 8 * k]) & (_ALL_ONES >> ((_U64(8) - keep_bytes) * _U64(8)))
        h[active] = _fmix64(h[active] ^ (chunk * _K_WORD))
        active = active[remaining > 8]
        k += 1
    return h


def authors_tokens(text: str) -> list[str]:
    """The authors' tokens: `re.split(r"\\W", text)`, empty pieces included."""
    return _AUTHORS_SPLIT.split(text)


def ngrams(tokens: Sequence[str], n: int) -> list[tuple[str, ...]]:
    """Word n-grams as in text-dedup: a text shorter than n is one n-gram of all its tokens; no tokens, none."""
    if not tokens:
        return []
    if len(tokens) < n:
        return [tuple(tokens)]
    return [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]


def _authors_shingle_hash(shingle: tuple[str, ...]) -> int:
    return int.from_bytes(hashlib.sha1(" ".join(shingle).lower().encode("utf-8")).digest()[:4], "little")


# ---------------------------------------------------------------------------------------------------------
# Per-chunk featurisation: word counts, exact-copy fingerprints, shingle hashes
# ---------------------------------------------------------------------------------------------------------
@dataclass
class _Features:
    n_tokens: np.ndarray        # int64 per text
    fingerprint: np.ndarray     # uint64 per text: hash of the whole word sequence (0 where no words)
    shingles: np.ndarray        # uint32, all texts' shingle hashes, concatenated
    n_shingles: np.ndarray      # int64 per text


def _paper_features(texts: pa.Array, ngram: int) -> _Features:
    words = _words(texts)
    counts = words.counts
    token_hash = _word_hashes(words)
    total = len(token_hash)
    doc_start = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=doc_start[1:])
    nonempty = counts > 0

    # fingerprint of the word sequence: polynomial hash sum_i h_i * K**i, then mixed with the length
    fingerprint = np.zeros(len(counts), dtype=np.uint64)
    if total:
        position = np.arange(total) - np.repeat(doc_start[:-1], counts)
        powers = np.cumprod(np.full(int(counts.max()), _K_SHINGLE, dtype=np.uint64))
        sums = np.add.reduceat(token_hash * powers[position], doc_start[:-1][nonempty])
        fingerprint[nonempty] = _fmix64(sums ^ (counts[nonempty].astype(np.uint64) * _K_LENGTH))

    # a shingle starts at every position with `ngram` words left in its text, or at the first word of a
    # shorter text; it hashes the polynomial of the (up to `ngram`) word hashes that follow
    n_shingles = np.where(counts >= ngram, counts - ngram + 1, np.minimum(counts, 1))
    first_of_text = np.cumsum(n_shingles) - n_shingles
    starts = np.repeat(doc_start[:-1], n_shingles) + np.arange(n_shingles.sum()) - np.repeat(first_of_text, n_shingles)
    acc = token_hash[starts]
    for j in range(1, ngram):
        acc = acc * _K_SHINGLE + token_hash[np.minimum(starts + j, max(total - 1, 0))]
    short = np.flatnonzero(nonempty & (counts < ngram))
    if len(short):                                  # texts shorter than ngram: only their own words
        acc[first_of_text[short]] = _short_text_shingles(token_hash, doc_start[short], counts[short], ngram)
    shingles = (_fmix64(acc) >> _U64(32)).astype(np.uint32)
    return _Features(counts, fingerprint, shingles, n_shingles)


def _short_text_shingles(token_hash: np.ndarray, starts: np.ndarray, counts: np.ndarray, ngram: int) -> np.ndarray:
    acc = token_hash[starts]
    for j in range(1, ngram):
        acc = acc * _K_SHINGLE + np.where(j < counts, token_hash[np.minimum(starts + j, len(token_hash) - 1)], _U64(0))
    return acc


def _authors_features(texts: Sequence[str], ngram: int) -> _Features:
    n = len(texts)
    counts = np.zeros(n, dtype=np.int64)
    n_shingles = np.zeros(n, dtype=np.int64)
    parts = []
    for i, text in enumerate(texts):
        tokens = authors_tokens(text)
        counts[i] = len(tokens)
        hashes = np.fromiter((_authors_shingle_hash(s) for s in ngrams(tokens, ngram)), dtype=np.uint32)
        n_shingles[i] = len(hashes)
        parts.append(hashes)
    shingles = np.concatenate(parts) if parts else np.zeros(0, np.uint32)
    return _Features(counts, np.zeros(n, dtype=np.uint64), shingles, n_shingles)


# ---------------------------------------------------------------------------------------------------------
# Signatures
# ---------------------------------------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------------------------------------
# Candidates, verification, clusters
# ---------------------------------------------------------------------------------------------------------
def _band_groups(signatures: np.ndarray, columns: np.ndarray, band: int, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """The given signature columns grouped by equal values in one band: (members, group starts), members are
    positions in `columns`, ascending inside each group; only groups of two or more."""
    n = len(columns)
    key = np.zeros(n, dtype=np.uint64)
    for row in range(band * rows, (band + 1) * rows):
        key = key * _K_SHINGLE + signatures[row, columns].astype(np.uint64)
    key = _fmix64(key)
    # one sort of (high bits of the key | column): groups come out contiguous and ordered by column
    index_bits = max(1, int(n - 1).bit_length())
    low = _U64((1 << index_bits) - 1)
    packed = np.sort((key & ~low) | np.arange(n, dtype=np.uint64))
    members = (packed & low).astype(np.int64)
    full = key[members]
    new_group = np.ones(n, dtype=bool)
    new_group[1:] = full[1:] != full[:-1]
    if n > 1 and not np.array_equal(new_group[1:], (packed[1:] & ~low) != (packed[:-1] & ~low)):
        # two different keys share their high bits (rare) and may interleave: sort by the full key instead
        members = np.argsort(key, kind="stable")
        full = key[members]
        new_group[1:] = full[1:] != full[:-1]
    starts = np.flatnonzero(new_group)
    sizes = np.diff(np.append(starts, n))
    in_group = np.repeat(sizes >= 2, sizes)
    members = members[in_group]
    starts = np.flatnonzero(new_group[in_group])
    return members, starts


def _sorted_unique(values: np.ndarray) -> np.ndarray:
    values = np.sort(values)
    keep = np.ones(len(values), dtype=bool)
    keep[1:] = values[1:] != values[:-1]
    return values[keep]


def _starts_of(sizes: np.ndarray) -> np.ndarray:
    return (np.cumsum(sizes) - sizes).astype(np.int64)


def _pairs_within(members: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every pair (earlier, later) inside each group."""
    sizes = np.diff(np.append(starts, len(members)))
    local = np.arange(len(members)) - np.repeat(starts, sizes)
    partners = np.repeat(sizes, sizes) - 1 - local          # members after this one in its group
    left = np.repeat(np.arange(len(members)), partners)
    step = np.arange(len(left)) - np.repeat(np.cumsum(partners) - partners, partners) + 1
    return members[left], members[left + step]


def _star_pairs(members: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(first of the group, each other member): enough for clustering when pairs are not verified."""
    sizes = np.diff(np.append(starts, len(members)))
    leader = np.repeat(members[starts], sizes)
    others = np.ones(len(members), dtype=bool)
    others[starts] = False
    return leader[others], members[others]


def union_find_roots(n: int, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Vectorised union-find: the root of every element after uniting each (left[i], right[i]).
    Each round hooks the larger root of every still-split pair under the smaller one, then compresses paths;
    a component's root is its smallest element."""
    parent = np.arange(n, dtype=np.int64)
    left, right = np.asarray(left, dtype=np.int64), np.asarray(right, dtype=np.int64)

    def compress(p):
        while True:
            grand = p[p]
            if np.array_equal(grand, p):
                return p
            p = grand

    while len(left):
        root_l, root_r = parent[left], parent[right]
        split = root_l != root_r
        if not split.any():
            break
        left, right, root_l, root_r = left[split], right[split], root_l[split], root_r[split]
        np.minimum.at(parent, np.maximum(root_l, root_r), np.minimum(root_l, root_r))
        parent = compress(parent)
    return compress(parent)


class _ExactJaccard:
    """True Jaccard similarity of the shingle sets (32-bit shingle hashes) of pairs of texts."""

    def __init__(self, shingles: np.ndarray, n_shingles: np.ndarray, text_of_node: np.ndarray):
        self.shingles = shingles
        self.starts = np.zeros(len(n_shingles) + 1, dtype=np.int64)
        np.cumsum(n_shingles, out=self.starts[1:])
        self.text_of_node = text_of_node

    def _tagged(self, nodes: np.ndarray, side: int) -> np.ndarray:
        """(pair << 33 | hash << 1 | side) for every shingle of each pair's text on this side."""
        texts = self.text_of_node[nodes]
        first, counts = self.starts[texts], self.starts[texts + 1] - self.starts[texts]
        pair = np.repeat(np.arange(len(texts), dtype=np.uint64), counts)
        offset = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        hashes = self.shingles[np.repeat(first, counts) + offset].astype(np.uint64)
        return (pair << _U64(33)) | (hashes << _U64(1)) | _U64(side)

    def __call__(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        result = np.empty(len(u), dtype=np.float64)
        for lo in range(0, len(u), VERIFY_PAIRS_PER_CHUNK):
            cu, cv = u[lo:lo + VERIFY_PAIRS_PER_CHUNK], v[lo:lo + VERIFY_PAIRS_PER_CHUNK]
            # one sort of both sides' shingles; repeats inside a text collapse, so what is left are the two
            # sets, and a shingle of both sets appears as a (side 0, side 1) neighbour pair
            keys = np.sort(np.concatenate([self._tagged(cu, 0), self._tagged(cv, 1)]))
            keys = keys[np.concatenate([[True], keys[1:] != keys[:-1]])]
            pair = (keys >> _U64(33)).astype(np.int64)
            side = (keys & _U64(1)).astype(bool)
            size_u = np.bincount(pair[~side], minlength=len(cu))
            size_v = np.bincount(pair[side], minlength=len(cu))
            element = keys >> _U64(1)
            shared = element[1:] == element[:-1]
            inter = np.bincount(pair[1:][shared], minlength=len(cu))
            result[lo:lo + len(cu)] = inter / (size_u + size_v - inter)
        return result


def _estimated_jaccard(signatures: np.ndarray, text_of_node: np.ndarray):
    def estimate(u: np.ndarray, v: np.ndarray) -> np.ndarray:
        out = np.empty(len(u), dtype=np.float64)
        for lo in range(0, len(u), VERIFY_PAIRS_PER_CHUNK):
            cu = text_of_node[u[lo:lo + VERIFY_PAIRS_PER_CHUNK]]
            cv = text_of_node[v[lo:lo + VERIFY_PAIRS_PER_CHUNK]]
            out[lo:lo + len(cu)] = (signatures[:, cu] == signatures[:, cv]).mean(axis=0)
        return out
    return estimate


def _verified_pairs_of_large_group(members: np.ndarray, similarity, threshold: float):
    """Leader rounds for a big bucket: the smallest member is compared with all others, those similar to it
    are linked to it, the rest form the next round; at most ALL_PAIRS_LIMIT left are compared pair by pair."""
    left, right = [], []
    while len(members) > ALL_PAIRS_LIMIT:
        leader, rest = members[0], members[1:]
        similar = similarity(np.full(len(rest), leader), rest) >= threshold
        left.append(np.full(int(similar.sum()), leader))
        right.append(rest[similar])
        members = rest[~similar]
    if len(members) >= 2:
        u, v = _pairs_within(members, np.array([0]))
        keep = similarity(u, v) >= threshold
        left.append(u[keep])
        right.append(v[keep])
    return left, right


# ---------------------------------------------------------------------------------------------------------
# The whole run
# ---------------------------------------------------------------------------------------------------------
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


def _as_string_array(texts) -> pa.ChunkedArray:
    if isinstance(texts, (pa.Array, pa.ChunkedArray)):
        arr = texts if isinstance(texts, pa.ChunkedArray) else pa.chunked_array([texts])
    else:
        arr = pa.chunked_array([pa.array(list(texts), pa.string())])
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        raise TypeError(f"texts must be strings, got arrow type {arr.type}")
    if arr.null_count:
        first = int(np.flatnonzero(arr.is_null().to_numpy(zero_copy_only=False))[0])
        raise ValueError(f"text of row {first} is null ({arr.null_count} null texts in all)")
    return arr


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
        members, starts = _band_groups(signatures, text_of_node, band, config.rows)
        if similarity is None:
            return (*_star_pairs(members, starts), [])
        sizes = np.diff(np.append(starts, len(members)))
        small = sizes <= ALL_PAIRS_LIMIT
        u, v = _pairs_within(members[np.repeat(small, sizes)], _starts_of(sizes[small]))
        big_sizes = sizes[~small]
        large = np.split(members[np.repeat(~small, sizes)], np.cumsum(big_sizes)[:-1]) if len(big_sizes) else []
        return u, v, large

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
