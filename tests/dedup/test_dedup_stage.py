"""The dedup_questions stage on id/provenance/question/subject tables."""
import json

import numpy as np
import pyarrow as pa
import pytest

from dedup_lib import question_table
from megascience_build.engine import records
from megascience_build.engine.stage import StageError, stage_class
from megascience_build.stages.dedup_questions import DedupQuestions

PHOTON = "What is the energy of a photon with a wavelength of 500 nm, in electronvolts?"
ENZYME = "Explain how a competitive inhibitor changes the apparent Km and the Vmax of an enzyme."
MARKET = "Derive the equilibrium price and quantity when demand is Q = 100 - 2P and supply is Q = 3P - 20."
QUESTIONS = [
    PHOTON,
    PHOTON.upper(),                                                     # exact copy after normalisation
    PHOTON.replace("in electronvolts", "expressed in electronvolts"),   # near copy, Jaccard 0.69
    ENZYME,
    "???",                                                              # no words
    MARKET,
    ENZYME.replace("competitive", "non-competitive"),                   # near copy, Jaccard 0.69
    "Why?",
]


def test_registered_under_its_name():
    assert stage_class("dedup_questions") is DedupQuestions
    assert DedupQuestions.kind == "global"


def test_drops_and_counts_by_reason(ctx):
    table = question_table(QUESTIONS)
    out = DedupQuestions().process(table, ctx)
    reasons = dict(out.dropped)
    assert sorted(reasons.values()) == ["duplicate", "duplicate", "duplicate", "no_words"]
    assert reasons[4] == "no_words"
    assert out.counters["duplicate"] == 3 and out.counters["no_words"] == 1 and out.counters["too_short"] == 0
    assert out.kept.num_rows + len(out.dropped) == table.num_rows
    assert set(out.kept.column("question").to_pylist()) >= {MARKET, "Why?"}


def test_kept_rows_carry_cluster_columns_and_provenance(ctx):
    table = question_table(QUESTIONS)
    ids = table.column("id").to_pylist()
    out = DedupQuestions().process(table, ctx)
    kept = out.kept
    assert kept.column_names == ["id", "provenance", "question", "subject", "dedup_cluster", "dedup_cluster_size"]
    assert kept.column("subject").to_pylist() == ["physics"] * kept.num_rows
    assert kept.column("dedup_cluster").to_pylist() == kept.column("id").to_pylist()
    # kept rows stay in input order
    positions = [ids.index(i) for i in kept.column("id").to_pylist()]
    assert positions == sorted(positions)
    photon_cluster = {ids[0], ids[1], ids[2]}
    by_id = {row["id"]: row for row in kept.to_pylist()}
    photon_rep = min(photon_cluster)
    assert by_id[photon_rep]["dedup_cluster_size"] == 3
    prov = json.loads(by_id[photon_rep]["provenance"])
    assert prov["origin"]["book_id"] == "b1"
    assert prov["signals"]["dedup_cluster"] == photon_rep
    assert prov["signals"]["dedup_cluster_size"] == 3
    assert prov["signals"]["dedup_duplicates"] == sorted(photon_cluster - {photon_rep})
    step = prov["steps"][-1]
    assert (step["stage"], step["mode"], step["bands"], step["rows"], step["verify"], step["threshold"]) == \
        ("dedup_questions", "paper", 23, 5, "exact", 0.6)
    market = by_id[ids[5]]
    assert market["dedup_cluster_size"] == 1
    assert "dedup_duplicates" not in json.loads(market["provenance"])["signals"]


def test_shuffled_input_keeps_the_same_rows(ctx):
    table = question_table(QUESTIONS * 3 + [f"Question number {i} about a distinct topic {i * 7}" for i in range(20)])
    out = DedupQuestions().process(table, ctx)
    order = np.random.default_rng(4).permutation(table.num_rows)
    shuffled = DedupQuestions().process(table.take(pa.array(order)), ctx)
    rows = lambda t: sorted(zip(t.column("id").to_pylist(), t.column("dedup_cluster_size").to_pylist()))  # noqa: E731
    assert rows(out.kept) == rows(shuffled.kept)
    assert sorted(r for _, r in out.dropped) == sorted(r for _, r in shuffled.dropped)


def test_authors_mode(ctx):
    table = question_table(QUESTIONS)
    out = DedupQuestions({"mode": "authors"}).process(table, ctx)
    ids = table.column("id").to_pylist()
    reasons = dict(out.dropped)
    # "???" is 4 pieces and "Why?" 2: both too short; of the photon question and its upper-case copy (same
    # lower-cased shingles) the one with the larger id goes; edited copies collide only by chance (J**10)
    copy = 0 if ids[0] > ids[1] else 1
    assert reasons[4] == reasons[7] == "too_short" and reasons[copy] == "duplicate"
    assert {3, 5}.isdisjoint(reasons) and (1 - copy) not in reasons
    assert out.counters["too_short"] == 2 and out.counters["duplicate"] == len(reasons) - 2
    step = json.loads(out.kept.column("provenance")[0].as_py())["steps"][-1]
    assert (step["mode"], step["bands"], step["rows"], step["min_tokens"], step["verify"]) == ("authors", 1, 10, 5, "none")


def test_other_text_column_and_pipeline_seed(ctx):
    table = question_table(QUESTIONS, column="problem")
    out = DedupQuestions({"column": "problem", "seed": 7}).process(table, ctx)
    assert out.counters["duplicate"] == 3
    assert json.loads(out.kept.column("provenance")[0].as_py())["steps"][-1]["seed"] == 7
    ctx.seed = 11
    out = DedupQuestions({"column": "problem"}).process(table, ctx)
    assert json.loads(out.kept.column("provenance")[0].as_py())["steps"][-1]["seed"] == 11


def test_empty_input(ctx):
    out = DedupQuestions().process(question_table([]), ctx)
    assert out.kept.num_rows == 0 and out.dropped == []
    assert "dedup_cluster" in out.kept.column_names


def test_null_question_is_an_error_naming_the_row(ctx):
    table = question_table(["a question about heat", "another"])
    table = table.set_column(2, "question", pa.array(["a question about heat", None], pa.string()))
    with pytest.raises(StageError, match=r"'question' is null in 1 row\(s\), ids \['" + table.column("id")[1].as_py()):
        DedupQuestions().process(table, ctx)


def test_schema_checks():
    stage = DedupQuestions()
    table = question_table(["q"])
    with pytest.raises(StageError, match="needs the text column 'question'"):
        stage.check_schema(table.drop_columns(["question"]).schema)
    with pytest.raises(StageError, match="must hold strings"):
        stage.check_schema(table.set_column(2, "question", pa.array([1])).schema)
    with pytest.raises(StageError, match="needs input column"):
        stage.check_schema(table.drop_columns([records.PROVENANCE]).schema)


@pytest.mark.parametrize("params, message", [
    ({"mode": "authors", "threshold": 0.7}, "takes no algorithm parameter"),
    ({"mode": "exact"}, "'mode' must be one of"),
    ({"verify": "sometimes"}, "verify must be one of"),
    ({"bands": 40, "rows": 5}, "exceeds num_perm"),
    ({"threshold": 1.2}, "threshold"),
    ({"threads": 0}, "threads"),
    ({"shingle": 3}, "unknown parameter"),
])
def test_bad_parameters_fail_before_work(params, message):
    with pytest.raises(StageError, match=message):
        DedupQuestions(params, label="dedup")


def test_describe_reports_the_derived_bands():
    described = DedupQuestions({"threshold": 0.7}).describe()
    assert described["algorithm"]["bands"] * described["algorithm"]["rows"] <= 128
    assert described["algorithm"]["threshold"] == 0.7
