"""Precision and recall on labelled pairs (truth: exact Jaccard of the word 3-gram sets >= 0.6), ours against
datasketch's MinHashLSH over the same shingles."""
import numpy as np
import pytest

from dedup_synthetic import datasketch_predict, ours_predict, precision_recall
from megascience_build.near_duplicates import minhash


def f1(p, r):
    return 2 * p * r / (p + r)


@pytest.fixture(scope="module")
def ours(pairs):
    return precision_recall(ours_predict(pairs, minhash.paper_config()), pairs.duplicate)


def test_the_labelled_set_is_hard_enough(pairs):
    assert 1000 < pairs.duplicate.sum() < 2000
    near = (pairs.similarity > 0.5) & (pairs.similarity < 0.7)
    assert near.sum() > 300                                        # many pairs close to the threshold
    assert set(pairs.kind[pairs.duplicate]) == {"edit", "stem"}


def test_at_least_as_good_as_datasketch_with_its_own_banding(pairs, ours):
    """MinHashLSH(threshold=0.6, num_perm=128), i.e. datasketch's derived 18 bands x 7 rows."""
    bands, rows = minhash.optimal_bands(0.6, 128)
    theirs = precision_recall(datasketch_predict(pairs, 128, bands, rows, 0.6), pairs.duplicate)
    assert ours[0] >= theirs[0] and ours[1] >= theirs[1], (ours, theirs)


def test_at_least_as_good_as_datasketch_with_the_same_banding(pairs, ours):
    """datasketch with our 23 x 5 bands: the candidates are the same LSH, so recall is equal in expectation
    (two independent hash families: allowed to differ by three standard errors); verification makes the
    precision 1 where datasketch keeps every false candidate."""
    config = minhash.paper_config()
    theirs = precision_recall(datasketch_predict(pairs, 128, config.bands, config.rows, 0.6), pairs.duplicate)
    n_dup = int(pairs.duplicate.sum())
    standard_error = np.sqrt(2 * theirs[1] * (1 - theirs[1]) / n_dup)
    assert ours[0] >= theirs[0]
    assert ours[1] >= theirs[1] - 3 * standard_error, (ours, theirs)
    assert f1(*ours) >= f1(*theirs)


def test_exact_verification_drops_no_true_pair(pairs, ours):
    unverified = precision_recall(ours_predict(pairs, minhash.paper_config(verify="none")), pairs.duplicate)
    assert ours[0] == 1.0
    assert ours[1] == unverified[1]
    assert unverified[0] < 0.9                                      # what verification removes


def test_estimate_verification_trades_recall_for_precision(pairs, ours):
    estimate = precision_recall(ours_predict(pairs, minhash.paper_config(verify="estimate")), pairs.duplicate)
    assert estimate[0] > 0.9 and estimate[1] < ours[1]
