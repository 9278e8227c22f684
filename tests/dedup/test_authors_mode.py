"""mode authors: the authors' text-dedup run (1 band x 10 rows, SHA-1, RandomState(42) permutations, min 5 tokens)."""
import hashlib
import re

import numpy as np

from megascience_build.near_duplicates import minhash, shingles, signatures

MERSENNE_61 = (1 << 61) - 1


def _their_signature(text: str, width: int = 10) -> list[int]:
    """The authors' embed_func, written out with Python integers: tokens = re.split(r"\\W", text), 3-grams
    joined by spaces and lower-cased, SHA-1 first 4 bytes little-endian, then per permutation
    ((h*a + b) mod 2**64 mod (2**61 - 1)) & (2**32 - 1) (numpy uint64 arithmetic wraps), minimum."""
    rng = np.random.RandomState(42)
    perms = [(int(rng.randint(1, MERSENNE_61, dtype=np.uint64)), int(rng.randint(0, MERSENNE_61, dtype=np.uint64)))
             for _ in range(width)]
    tokens = re.split(r"\W", text)
    hashes = {int.from_bytes(hashlib.sha1(" ".join(tokens[i:i + 3]).lower().encode()).digest()[:4], "little")
              for i in range(len(tokens) - 2)}
    return [min(((h * a + b) % 2**64) % MERSENNE_61 & 0xFFFFFFFF for h in hashes) for a, b in perms]


def test_signatures_match_the_authors_formula():
    texts = ["What is the energy of a photon with wavelength 500 nm?",
             "Calculate the pH of a 0.1 M acetic acid solution (Ka = 1.8e-5).",
             "Explain, step by step, why ΔG < 0 for a spontaneous process at constant T and P."]
    config = minhash.authors_config()
    sig = signatures._Signer(config).sign(shingles._authors_features(texts, 3))
    assert sig.shape == (10, 3)
    for i, text in enumerate(texts):
        assert sig[:, i].tolist() == _their_signature(text)


def test_too_short_counts_their_tokens_including_empty_pieces():
    texts = ["Define entropy.",            # "Define", "entropy", "" -> 3 pieces
             "What is 2+2?",               # "What", "is", "2", "2", "" -> 5 pieces: kept
             "Name four noble gases"]      # 4 pieces
    result = minhash.deduplicate(texts, minhash.authors_config())
    assert result.too_short.tolist() == [True, False, True]
    assert result.representative.tolist() == [-1, 1, -1]
    assert not result.no_words.any()


def test_only_near_exact_copies_are_removed():
    base = "Explain why the sky appears blue during the day and red at sunset in terms of Rayleigh scattering"
    texts = [base + ".", base + "!", base.upper() + ".", base.replace("appears", "looks") + "."]
    ids = ["d", "c", "b", "a"]
    result = minhash.deduplicate(texts, minhash.authors_config(), ids=ids)
    # "." and "!" both split into a trailing empty piece, and shingles are lower-cased: three identical
    # shingle sets, kept row = smallest id ("b"); one replaced word changes 3 of 18 shingles: not found
    assert result.representative.tolist() == [2, 2, 2, 3]
    assert result.cluster_size.tolist() == [3, 3, 3, 1]


def test_one_band_collides_at_j_to_the_tenth(pairs):
    """Questions against copies with one word removed, similarity measured on their own shingles."""
    rng = np.random.default_rng(0)
    first = pairs.first[:1500]
    second = []
    for text in first:
        words = text.split(" ")
        del words[int(rng.integers(0, len(words)))]
        second.append(" ".join(words))
    config = minhash.authors_config()
    feats = shingles._authors_features(first + second, 3)
    sig = signatures._Signer(config).sign(feats)
    sets = [set(s.tolist()) for s in np.split(feats.shingles, np.cumsum(feats.n_shingles)[:-1])]
    n = len(first)
    their_j = np.array([len(sets[i] & sets[n + i]) / len(sets[i] | sets[n + i]) for i in range(n)])
    collide = (sig[:, :n] == sig[:, n:]).all(axis=0)
    expected = their_j ** 10
    tolerance = 4 * np.sqrt((expected * (1 - expected)).sum()) / n
    assert 0.1 < expected.mean() < 0.9
    assert abs(collide.mean() - expected.mean()) < tolerance
