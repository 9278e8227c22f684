"""Candidate pairs from LSH bands, their verification (exact or estimated Jaccard) and union-find clusters."""
from __future__ import annotations

import numpy as np

from .shingles import _K_SHINGLE, _U64, _fmix64

ALL_PAIRS_LIMIT = 64                    # buckets up to this size are verified pair by pair
VERIFY_PAIRS_PER_CHUNK = 262144


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


def band_candidates(signatures: np.ndarray, columns: np.ndarray, band: int, rows: int, verified: bool):
    """One band's candidates: (left, right, large buckets). Verified runs get every pair of each bucket of up to
    ALL_PAIRS_LIMIT texts and the larger buckets whole (for leader rounds); unverified runs get star pairs."""
    members, starts = _band_groups(signatures, columns, band, rows)
    if not verified:
        return (*_star_pairs(members, starts), [])
    sizes = np.diff(np.append(starts, len(members)))
    small = sizes <= ALL_PAIRS_LIMIT
    u, v = _pairs_within(members[np.repeat(small, sizes)], _starts_of(sizes[small]))
    big_sizes = sizes[~small]
    large = np.split(members[np.repeat(~small, sizes)], np.cumsum(big_sizes)[:-1]) if len(big_sizes) else []
    return u, v, large
