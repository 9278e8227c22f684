import numpy as np
import pyarrow as pa
import pyarrow.compute  # noqa: F401  (pa.compute)
import pytest

from megascience_build.selection import subsets as sel


def signal_pool(difficulty, length, excluded=None, ids=None, seed=0):
    n = len(difficulty)
    ids = ids or [f"{i:032x}" for i in range(n)]
    return pa.table({"id": ids, "difficulty": pa.array(difficulty, pa.float64()),
                     "response_length": pa.array(length, pa.int64()),
                     "length_excluded": pa.array(excluded or [False] * n, pa.bool_()),
                     "random_u01": pa.array(sel.uniform_u01(seed, ids), pa.float64())})


def test_strictness_decides_the_boundary_values():
    t = signal_pool([0.5, 1.0, 1.0625, 5.0, 8.9375, 9.0, 9.5, None], [1] * 8)
    strict = sel.select_difficulty(t, sel.DifficultyBounds(1, 9, strict=True), name="s", parent="p")
    paper = sel.select_difficulty(t, sel.DifficultyBounds(1, 9, strict=False), name="s", parent="p")
    assert strict.positions.tolist() == [2, 3, 4]
    assert paper.positions.tolist() == [1, 2, 3, 4, 5]
    nemotron = sel.select_difficulty(t, sel.DifficultyBounds(2, 9), name="s", parent="p")
    assert nemotron.positions.tolist() == [3, 4]
    assert strict.record(t)["parameters"] == {"low": 1, "high": 9, "strict": True, "column": "difficulty"}
    with pytest.raises(sel.SelectionError):
        sel.DifficultyBounds(9, 1)


def test_length_takes_the_longest_non_excluded_rows_with_id_tie_break():
    ids = ["e", "d", "c", "b", "a", "f"]
    t = signal_pool([5] * 6, [100, 300, 300, 50, 300, 20_000], excluded=[False, False, False, False, True, True], ids=ids)
    s = sel.select_length(t, 3, name="len", parent="p")
    # 20,000 and the excluded 300 ("a") never chosen; of the two other 300s, smaller id "c" then "d"; then 100
    assert s.positions.tolist() == [0, 1, 2]
    assert sel.select_length(t, 2, name="len", parent="p").positions.tolist() == [1, 2]
    short = sel.select_length(t, 10, name="len", parent="p")
    assert short.n == 4 and short.extra["shortfall"] == 6


def test_random_takes_the_n_smallest_stored_numbers_and_checks_the_seed():
    t = signal_pool([5.0] * 50, [10] * 50, seed=3)
    s = sel.select_random(t, 7, seed=3, name="r", parent="p")
    values = t.column("random_u01").to_numpy()
    assert sorted(s.positions.tolist()) == sorted(np.argsort(values)[:7].tolist())
    with pytest.raises(sel.SelectionError, match="not computed with seed 4"):
        sel.select_random(t, 7, seed=4, name="r", parent="p")


def test_protocol_gives_length_and_random_the_difficulty_n_and_is_reproducible():
    rng = np.random.default_rng(0)
    n = 500
    diff = [None if i % 6 == 0 else float(x) for i, x in enumerate(rng.integers(0, 161, n) / 16)]
    t = signal_pool(diff, rng.integers(10, 15_000, n).tolist(),
                    excluded=None, seed=11)
    t = t.set_column(3, "length_excluded", pa.compute.greater(t.column("response_length"), 10_000))
    subsets = sel.table3_subsets(t, "pool", seed=11)
    d, l, r = subsets
    expected_n = sum(1 for x in diff if x is not None and 1 < x < 9)
    assert [s.n for s in subsets] == [expected_n] * 3
    assert [s.name for s in subsets] == ["pool_difficulty", "pool_length", "pool_random"]
    assert l.parameters["n_from"] == "pool_difficulty" and r.seed == 11
    assert all(t.column("response_length")[i].as_py() <= 10_000 for i in l.positions)
    cutoff = min(t.column("response_length")[i].as_py() for i in l.positions)
    assert sum(1 for v, e in zip(t.column("response_length").to_pylist(), t.column("length_excluded").to_pylist())
               if not e and v > cutoff) < expected_n
    again = sel.table3_subsets(t, "pool", seed=11)
    assert [s.record(t) for s in again] == [s.record(t) for s in subsets]
    # the order of the pool's rows does not change which ids are chosen
    perm = rng.permutation(n)
    shuffled = t.take(pa.array(perm))
    for a, b in zip(subsets, sel.table3_subsets(shuffled, "pool", seed=11)):
        assert set(a.take(t).column("id").to_pylist()) == set(b.take(shuffled).column("id").to_pylist())
    rec = l.record(t)
    assert rec["rows"] == expected_n and rec["signal"]["column"] == "response_length"
    assert rec["signal"]["min"] == cutoff and len(rec["ids_sha256"]) == 64


def test_distill_and_unflagged_subsets():
    t = signal_pool([2.0, 5.9, 6.0, None, 9.0], [1] * 5)
    assert sel.select_difficulty_below(t, 6, name="x", parent="textbook").positions.tolist() == [0, 1]
    flagged = t.append_column("contaminated", pa.array([False, True, None, False, True]))
    assert sel.select_unflagged(flagged, name="p_dc", parent="p").positions.tolist() == [0, 2, 3]
    subsets = sel.all_subsets({"textbook": t}, [sel.PoolPlan("textbook", distill_below=6.0)])
    assert [s.name for s in subsets] == ["textbook_difficulty", "textbook_length", "textbook_random",
                                         "textbook_difficulty_distill"]


def test_missing_signal_column_is_a_clear_error():
    t = signal_pool([5.0], [1]).drop_columns(["response_length"])
    with pytest.raises(sel.SelectionError, match=r"needs signal column\(s\) \['response_length'\]"):
        sel.select_length(t, 1, name="len", parent="p")
    with pytest.raises(sel.SelectionError, match="no pool named"):
        sel.all_subsets({}, sel.paper_plans())
