"""Normalisation, word n-grams and hashing of the paper mode; tokens and hashes of the authors mode."""
import hashlib
import re

import numpy as np
import pyarrow as pa

from megascience_build.near_duplicates import minhash, shingles


def test_normalisation_lowercases_strips_punctuation_and_collapses_whitespace():
    assert minhash.tokenize(["  What's  x^2+1?\n\tIt's 3.5 -- (approx.)  "]) == \
        [["what", "s", "x", "2", "1", "it", "s", "3", "5", "approx"]]


def test_unicode_letters_digits_and_marks_are_word_characters():
    texts = ["Ünïcode NAÏVE café — “quoted” … ½ x₂ 日本語", "cafe\u0301 déjà-vu", "ΔG° = −RT ln K"]
    assert minhash.tokenize(texts) == [["ünïcode", "naïve", "café", "quoted", "½", "x₂", "日本語"],
                                       ["cafe\u0301", "déjà", "vu"], ["δg", "rt", "ln", "k"]]


def test_underscore_and_symbols_separate_words():
    assert minhash.tokenize(["a_b c=d", "f(x)=x*y/z"]) == [["a", "b", "c", "d"], ["f", "x", "x", "y", "z"]]


def test_empty_and_wordless_texts_have_no_words_and_rows_never_merge():
    assert minhash.tokenize(["", "   ", "?!", "ab", "cd"]) == [[], [], [], ["ab"], ["cd"]]
    # texts that end and start with word characters stay separate words
    assert minhash.tokenize(pa.chunked_array([["xy", "zw"], ["uv"]])) == [["xy"], ["zw"], ["uv"]]
    assert minhash.tokenize(["xy", "", "", "zw", "Ab"]) == [["xy"], [], [], ["zw"], ["ab"]]


def test_ngrams_follow_text_dedup_for_short_texts():
    assert minhash.ngrams(["a", "b", "c", "d"], 3) == [("a", "b", "c"), ("b", "c", "d")]
    assert minhash.ngrams(["a", "b"], 3) == [("a", "b")]
    assert minhash.ngrams([], 3) == []


def _features(texts, ngram=3):
    return shingles._paper_features(pa.array(texts), ngram)


def test_shingle_counts_and_equal_texts_give_equal_shingles():
    feats = _features(["one two three four", "ONE, two; three... four!", "one two", "", "one two three"])
    assert feats.n_tokens.tolist() == [4, 4, 2, 0, 3]
    assert feats.n_shingles.tolist() == [2, 2, 1, 0, 1]
    s = np.split(feats.shingles, np.cumsum(feats.n_shingles)[:-1])
    assert s[0].tolist() == s[1].tolist()
    assert s[4][0] == s[0][0]                     # "one two three" is the first 3-gram of text 0
    assert s[2][0] not in s[0]                    # the 2-word text is its own shingle
    assert feats.fingerprint[0] == feats.fingerprint[1] != feats.fingerprint[4]


def test_word_order_matters_inside_a_shingle():
    feats = _features(["alpha beta gamma", "gamma beta alpha", "beta alpha gamma"])
    assert len(set(feats.shingles.tolist())) == 3


def test_word_hashes_depend_on_every_byte_and_not_on_position():
    long_a, long_b = "x" * 23 + "a", "x" * 23 + "b"         # differ only in the 24th byte (third 8-byte chunk)
    words = ["abcdefgh", "abcdefghi", "abcdefgi", long_a, long_b, "ab", "ba", "a", "é", "e\u0301"]
    texts = [" ".join(words), " ".join(reversed(words))]
    w = shingles._words(pa.array(texts))
    h = shingles._word_hashes(w)
    first, second = h[:len(words)], h[len(words):][::-1]
    assert first.tolist() == second.tolist()
    assert len(set(first.tolist())) == len(words)


def test_text_fingerprint_depends_on_order():
    feats = _features(["a b c d", "b a c d", "a b c d"])
    assert feats.fingerprint[0] == feats.fingerprint[2] != feats.fingerprint[1]


def test_authors_tokens_and_shingle_hash():
    # re.split(r"\W") keeps empty pieces: "2+2?" gives "2", "2", ""
    assert minhash.authors_tokens("What is 2+2?") == ["What", "is", "2", "2", ""]
    assert minhash.authors_tokens("What is 2+2?") == re.split(r"\W", "What is 2+2?")
    shingle = ("What", "is", "2")
    expected = int.from_bytes(hashlib.sha1(b"what is 2").digest()[:4], "little")
    assert shingles._authors_shingle_hash(shingle) == expected
