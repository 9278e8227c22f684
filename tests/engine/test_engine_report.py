"""The subject table of report.md (the paper's Table 2 in shape)."""
from megascience_build.engine.report import subject_matrix


def stage(label, rows_in, rows_out, subjects_in, subjects_out):
    return {"label": label, "rows_in": rows_in, "rows_out": rows_out, "subjects_in": subjects_in,
            "subjects_out": subjects_out}


def test_subjects_appear_where_the_column_does_and_totals_count_every_row():
    manifest = {"stages": [stage("ingest", 3, 3, {}, {}),
                           stage("classify", 3, 3, {}, {"biology": 2, "physics": 1}),
                           stage("filter", 3, 1, {"biology": 2, "physics": 1}, {"biology": 1})]}
    subjects, columns, counts, totals = subject_matrix(manifest)
    assert subjects == ["biology", "physics"] and columns == ["input", "ingest", "classify", "filter"]
    assert counts == [[None, None, 2, 1], [None, None, 1, 0]]
    assert totals == [3, 3, 3, 1]


def test_an_empty_stage_output_counts_zero_not_unknown():
    manifest = {"stages": [stage("a", 2, 0, {"biology": 2}, {})]}
    assert subject_matrix(manifest)[2] == [[2, 0]]
