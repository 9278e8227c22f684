"""Band/row derivation from the threshold, and configuration checks."""
import numpy as np
import pytest
from datasketch.lsh import _optimal_param

from megascience_build.near_duplicates import minhash


def test_known_values():
    assert minhash.optimal_bands(0.6, 128) == (18, 7)          # datasketch's MinHashLSH(0.6, 128)
    assert minhash.optimal_bands(0.6, 128, 0.2, 0.8) == (23, 5)  # our paper-mode default
    assert minhash.optimal_bands(0.5, 128) == (25, 5)
    assert minhash.optimal_bands(0.8, 256) == (17, 15)


@pytest.mark.parametrize("num_perm", [16, 100, 256])
@pytest.mark.parametrize("weights", [(0.5, 0.5), (0.2, 0.8), (0.7, 0.3)])
def test_same_choice_as_datasketch(num_perm, weights):
    for threshold in (0.35, 0.6, 0.85):
        assert minhash.optimal_bands(threshold, num_perm, *weights) == _optimal_param(threshold, num_perm, *weights), \
            (threshold, num_perm, weights)


def test_default_paper_config_and_its_s_curve():
    config = minhash.paper_config()
    assert (config.threshold, config.num_perm, config.bands, config.rows, config.ngram, config.verify) == \
        (0.6, 128, 23, 5, 3, "exact")
    p = minhash.collision_probability([0.3, 0.6, 0.7, 0.9], config.bands, config.rows)
    assert p[0] < 0.06 and 0.8 < p[1] < 0.9 and p[2] > 0.98 and p[3] > 0.9999
    # datasketch's balanced weights would find barely 40% of the pairs at the threshold
    assert minhash.collision_probability(0.6, 18, 7) == pytest.approx(0.40, abs=0.01)


def test_authors_config():
    config = minhash.authors_config()
    assert (config.mode, config.bands, config.rows, config.ngram, config.min_tokens, config.verify) == \
        ("authors", 1, 10, 3, 5, "none")
    assert minhash.collision_probability(0.6, 1, 10) == pytest.approx(0.6 ** 10)
    assert config.signature_width == 10


def test_signature_width_follows_verification():
    assert minhash.paper_config().signature_width == 115
    assert minhash.paper_config(verify="estimate").signature_width == 128


@pytest.mark.parametrize("kwargs, message", [
    ({"threshold": 1.0}, "threshold"),
    ({"threshold": 0}, "threshold"),
    ({"bands": 20, "rows": 7}, "exceeds num_perm"),
    ({"bands": 4}, "both bands and rows"),
    ({"verify": "maybe"}, "verify"),
    ({"ngram": 0}, "ngram"),
    ({"min_tokens": -1}, "min_tokens"),
    ({"false_positive_weight": 1.5}, "false_positive_weight"),
])
def test_bad_parameters_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        minhash.paper_config(**kwargs)


def test_collision_probability_is_monotone():
    s = np.linspace(0, 1, 101)
    p = minhash.collision_probability(s, 23, 5)
    assert p[0] == 0 and p[-1] == 1 and np.all(np.diff(p) >= 0)
