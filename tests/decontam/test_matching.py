"""Normalisation, the n-gram index and the blocked top-k search."""
from __future__ import annotations

import numpy as np
import pytest

from megascience_build.contamination.matching import NgramIndex, normalize, top_k

BENCH = [
    "Janet's ducks lay 16 eggs per day. She eats three for breakfast every morning and bakes muffins with four.",
    "Which of the following is true?",                                  # 6 words: not indexed as an n-gram
    "What is the role of the enzyme helicase in DNA replication in eukaryotic cells?",   # 13 words
    "Name the organelle that makes ATP in animal cells.",               # 9 words: one whole-question key
]


def test_normalize():
    assert normalize("  Janet’s DUCKS—lay\t16 eggs!! ") == "janet s ducks lay 16 eggs"
    assert normalize("x² + ﬁ") == "x2 fi"            # NFKC
    assert normalize("...") == ""


def test_exact_and_ngram():
    idx = NgramIndex(BENCH, n=13, min_words=8)
    assert idx.match_exact("which of the following is TRUE") == 1
    assert idx.match_exact("Which of the following is false?") is None
    long_copy = "Solve this: " + BENCH[0].upper() + " How much does she make?"
    assert idx.match_ngram(long_copy) == 0
    # one deleted word in the middle still leaves a 13-word window on one side
    words = BENCH[0].split()
    assert idx.match_ngram(" ".join(words[:3] + words[4:])) == 0
    # a whole short question inside a longer text
    assert idx.match_ngram("Quiz 4. Name the organelle that makes ATP in animal cells, and explain.") == 3
    assert idx.match_ngram("Name the organelle that makes proteins in animal cells.") is None
    assert idx.match_ngram("Which of the following is true? Pick one.") is None
    assert idx.match_ngram("") is None
    assert idx.lengths == [9, 13]


def test_ngram_min_words_rules():
    with pytest.raises(ValueError):
        NgramIndex(BENCH, n=5, min_words=8)
    idx = NgramIndex(BENCH, n=13, min_words=13)
    assert idx.match_ngram("Name the organelle that makes ATP in animal cells.") is None
    assert NgramIndex([], n=13).match_ngram("anything at all here") is None


def test_stem_alias_counts_as_exact_only_when_long_enough():
    texts = ["Which of the following is true?\nA. x\nB. y",
             "Which gas makes up most of the air we breathe at sea level?\nA. N2\nB. O2"]
    stems = ["Which of the following is true?", "Which gas makes up most of the air we breathe at sea level?"]
    idx = NgramIndex(texts, n=13, min_words=8, exact_aliases=stems)
    assert idx.match_exact("Which of the following is true?") is None
    assert idx.match_exact("which gas makes up most of the air we breathe at sea level") == 1


def test_top_k_matches_brute_force_across_blocks():
    rng = np.random.default_rng(0)
    q = rng.normal(size=(37, 8)).astype(np.float32)
    b = rng.normal(size=(101, 8)).astype(np.float32)
    brute = np.argsort(-(q @ b.T), axis=1, kind="stable")[:, :5]
    for block_bytes in (1, 4 * 101 * 3, 1 << 30):           # 1 query per block, 3 per block, all at once
        pos, sims = top_k(q, b, 5, max_block_bytes=block_bytes)
        assert (pos == brute).all()
        assert np.allclose(sims, np.take_along_axis(q @ b.T, brute, axis=1))
        assert (np.diff(sims, axis=1) <= 0).all()
    pos, sims = top_k(q, b[:3], 5)
    assert pos.shape == (37, 3)
    with pytest.raises(ValueError, match="shapes do not match"):
        top_k(q, b[:, :4], 5)
    assert top_k(q[:0], b, 5)[0].shape == (0, 5)


def test_top_k_torch_path_agrees_with_numpy():
    rng = np.random.default_rng(1)
    q = rng.normal(size=(23, 16)).astype(np.float32)
    b = rng.normal(size=(57, 16)).astype(np.float32)
    ref_pos, ref_sims = top_k(q, b, 5)
    # the torch code path on the CPU device (the same code runs on "cuda")
    from megascience_build.contamination.matching import _top_k_torch
    pos, sims = _top_k_torch(q, b, 5, block=4, device="cpu", positions=np.zeros((23, 5), np.int64),
                             sims=np.zeros((23, 5), np.float32))
    assert (pos == ref_pos).all() and np.allclose(sims, ref_sims, atol=1e-5)
    assert top_k(q, b, 5, device="auto")[0].shape == (23, 5)
