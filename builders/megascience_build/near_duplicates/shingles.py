"""Words, word hashes and shingle hashes of each text, in both modes (see minhash.py for the normalisation)."""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

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

