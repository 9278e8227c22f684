"""Clustering behaviour of megascience_build.near_duplicates.minhash.deduplicate (paper mode) and its building blocks."""
import numpy as np
import pyarrow as pa
import pytest

from dedup_synthetic import QuestionGenerator, benchmark_corpus, jaccard, shingle_sets
from megascience_build.near_duplicates import candidates, minhash, shingles, signatures


def _clusters(result, ids):
    """Cluster structure as sets of ids, plus the id of each cluster's kept row."""
    groups = {}
    for row, rep in enumerate(result.representative.tolist()):
        if rep >= 0:
            groups.setdefault(ids[rep], set()).add(ids[row])
    return {rep: frozenset(members) for rep, members in groups.items()}


@pytest.fixture(scope="module")
def corpus():
    texts = benchmark_corpus(3000, seed=5)
    ids = [f"{(i * 7919) % 3001:05d}" for i in range(len(texts))]       # ids not in row order
    return texts, ids


def test_same_input_in_any_order_gives_the_same_clusters_and_representatives(corpus):
    texts, ids = corpus
    base = _clusters(minhash.deduplicate(texts, minhash.paper_config(), ids=ids), ids)
    assert sum(len(m) > 1 for m in base.values()) > 100
    for seed in (1, 2):
        order = np.random.default_rng(seed).permutation(len(texts))
        shuffled_ids = [ids[i] for i in order]
        result = minhash.deduplicate([texts[i] for i in order], minhash.paper_config(), ids=shuffled_ids, threads=1)
        assert _clusters(result, shuffled_ids) == base


def test_representative_is_the_smallest_id_and_sizes_add_up(corpus):
    texts, ids = corpus
    result = minhash.deduplicate(texts, minhash.paper_config(), ids=ids)
    for rep, members in _clusters(result, ids).items():
        assert rep == min(members)
    kept = result.kept
    assert result.cluster_size[kept].sum() == len(texts)
    assert (result.duplicate | kept).all()
    assert result.stats["duplicates"] == int(result.duplicate.sum())


def test_without_ids_the_first_row_is_kept():
    texts = ["the quick brown fox jumps over the lazy dog"] * 3 + ["an unrelated question about enzymes"]
    result = minhash.deduplicate(texts, minhash.paper_config())
    assert result.representative.tolist() == [0, 0, 0, 3]
    assert result.cluster_size.tolist() == [3, 3, 3, 1]


def test_chunking_and_threads_do_not_change_the_result(corpus, monkeypatch):
    texts, ids = corpus
    base = minhash.deduplicate(texts, minhash.paper_config(), ids=ids, threads=2)
    monkeypatch.setattr(minhash, "ROWS_PER_CHUNK", 257)
    monkeypatch.setattr(signatures, "SHINGLES_PER_BLOCK", 1000)
    other = minhash.deduplicate(texts, minhash.paper_config(), ids=ids, threads=1)
    assert other.representative.tolist() == base.representative.tolist()


def test_exact_verification_merges_only_pairs_at_or_above_the_threshold(corpus):
    texts, ids = corpus
    sets = shingle_sets(texts)
    result = minhash.deduplicate(texts, minhash.paper_config(), ids=ids)
    unverified = minhash.deduplicate(texts, minhash.paper_config(verify="none"), ids=ids)
    # every duplicate is linked to its cluster through pairs at >= 0.6; check each member has such a partner
    for members in _clusters(result, ids).values():
        rows = [ids.index(m) for m in members]
        for r in rows:
            assert len(rows) == 1 or any(jaccard(sets[r], sets[o]) >= 0.6 for o in rows if o != r)
    # no verification merges more (false positives) but never fewer rows
    assert unverified.duplicate.sum() >= result.duplicate.sum()


def test_planted_copies_are_found():
    gen = QuestionGenerator(seed=11)
    rng = np.random.default_rng(11)
    ids, openers = gen.questions(rng, 200)
    base = [gen.render(rng, t, int(o)) for t, o in zip(ids, openers)]
    copies = [b.upper() + "  " for b in base[:50]]                                   # exact after normalisation
    light = [gen.render(rng, gen.edit(rng, t, 0.01), int(o)) for t, o in zip(ids[50:100], openers[50:100])]
    texts = base + copies + light
    result = minhash.deduplicate(texts, minhash.paper_config())
    sets = shingle_sets(texts)
    assert result.representative[200:250].tolist() == list(range(50))
    truly_similar = [i for i in range(50) if jaccard(sets[50 + i], sets[250 + i]) >= 0.6]
    found = [i for i in truly_similar if result.representative[250 + i] == 50 + i]
    assert len(truly_similar) > 40 and len(found) >= 0.95 * len(truly_similar)
    assert result.kept[:200].all()                                                   # distinct questions stay


def test_a_bucket_larger_than_the_all_pairs_limit(monkeypatch):
    """One long shared stem with a varying last number: every text collides with every other."""
    stem = " ".join(f"word{i}" for i in range(60))
    texts = [f"{stem} value {n}" for n in range(150)] + ["a b c d e f"] * 2
    monkeypatch.setattr(candidates, "ALL_PAIRS_LIMIT", 16)
    result = minhash.deduplicate(texts, minhash.paper_config())
    assert result.stats["large_buckets"] > 0
    assert set(result.representative[:150].tolist()) == {0}
    assert result.representative[150:].tolist() == [150, 150]


def test_rows_without_words_and_below_min_tokens():
    texts = ["???", "", "one two", "one two three four five six"]
    result = minhash.deduplicate(texts, minhash.paper_config(min_tokens=3))
    assert result.no_words.tolist() == [True, True, False, False]
    assert result.too_short.tolist() == [False, False, True, False]
    assert result.representative.tolist() == [-1, -1, -1, 3]


def test_null_and_non_string_inputs_are_refused():
    with pytest.raises(ValueError, match="row 1 is null"):
        minhash.deduplicate(pa.array(["a b c", None]), minhash.paper_config())
    with pytest.raises(TypeError, match="strings"):
        minhash.deduplicate(pa.array([1, 2]), minhash.paper_config())
    with pytest.raises(ValueError, match="2 ids for 3 texts"):
        minhash.deduplicate(["a", "b", "c"], minhash.paper_config(), ids=["x", "y"])


def test_union_find_matches_a_plain_implementation():
    rng = np.random.default_rng(0)
    n = 2000
    left, right = rng.integers(0, n, 1500), rng.integers(0, n, 1500)
    parent = list(range(n))

    def find(x):
        while parent[x] != x:
            x = parent[x]
        return x

    for a, b in zip(left.tolist(), right.tolist()):
        ra, rb = find(a), find(b)
        parent[max(ra, rb)] = min(ra, rb)
    expected = [find(x) for x in range(n)]
    roots = minhash.union_find_roots(n, left, right)
    assert roots.tolist() == expected                        # same components, root = smallest element
    chain = minhash.union_find_roots(6, np.array([5, 4, 3, 2, 1]), np.array([4, 3, 2, 1, 0]))
    assert chain.tolist() == [0] * 6


def test_exact_jaccard_matches_python_sets(pairs):
    texts = pairs.first[:300] + pairs.second[:300]
    feats = shingles._paper_features(pa.array(texts), 3)
    exact = candidates._ExactJaccard(feats.shingles, feats.n_shingles, np.arange(len(texts)))
    got = exact(np.arange(300), np.arange(300, 600))
    assert np.allclose(got, pairs.similarity[:300])
    # repeated shingles count once: {abc, bca, cab} against {abc}
    feats = shingles._paper_features(pa.array(["a b c a b c a b c", "a b c", "x y"]), 3)
    exact = candidates._ExactJaccard(feats.shingles, feats.n_shingles, np.arange(3))
    assert exact(np.array([0, 0, 1]), np.array([1, 0, 2])).tolist() == [1 / 3, 1.0, 0.0]


def test_band_collisions_happen_at_the_minhash_rate(pairs):
    """Each band of r rows agrees with probability J**r (the property LSH relies on), within sampling error."""
    n = 1500
    texts = pairs.first[:n] + pairs.second[:n]
    config = minhash.paper_config(num_perm=640, bands=128, rows=5, verify="estimate")
    sig = signatures._Signer(config).sign(shingles._paper_features(pa.array(texts), 3))
    equal = sig[:, :n] == sig[:, n:]
    j = pairs.similarity[:n]
    assert equal.mean() == pytest.approx(j.mean(), abs=0.004)
    band_rate = equal.reshape(128, 5, n).all(axis=1).mean()
    assert band_rate == pytest.approx((j ** 5).mean(), abs=0.006)


def test_band_groups_survive_keys_that_share_their_high_bits(monkeypatch):
    """Keys are sorted with the column index packed into their low bits; keys that differ only there must
    still form separate, complete groups."""
    sig = np.array([[5, 7, 5, 7, 9, 5]], dtype=np.uint32)           # one band of one row
    # a weak "mix" that keeps values 5, 7, 9 apart only in the low 3 bits (the packed column bits for 6 texts)
    monkeypatch.setattr(candidates, "_fmix64", lambda h: (np.uint64(1) << np.uint64(40)) | (h & np.uint64(6)))
    members, starts = candidates._band_groups(sig, np.arange(6), 0, 1)
    groups = [members[a:b].tolist() for a, b in zip(starts, [*starts[1:], len(members)])]
    assert sorted(groups) == [[0, 2, 5], [1, 3]]
