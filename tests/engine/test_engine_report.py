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


def test_progress_off_a_terminal_is_a_few_plain_lines(capsys, monkeypatch):
    from megascience_build.engine import progress
    monkeypatch.setattr(progress.sys.stderr, "isatty", lambda: False, raising=False)
    bars = progress.StageBars(["extract"], {"extract": 3}, True)
    bars.start("extract", 3)
    for _ in range(3):
        bars.update("extract", 1)
    bars.finish("extract")
    bars.close()
    err = capsys.readouterr().err
    assert "\r" not in err
    assert err.splitlines() == ["[extract] started: 3 rows", err.splitlines()[1]]
    assert err.splitlines()[1].startswith("[extract] done: 3/3 rows in ")


def test_the_plot_stacks_subjects_and_the_table_marks_resumed_stages():
    from megascience_build.engine.report import render_markdown, render_png, subject_matrix
    manifest = {"name": "t", "pipeline": {"file": "p.yaml", "sha256": "0" * 64}, "executor": {"name": "local"},
                "package": {"version": "0"}, "started_at": "now", "wall_s": 1.0, "models": {}, "outputs": [],
                "stages": [
                    {"label": "classify", "stage": "book_metadata", "rows_in": 7, "rows_out": 7, "dropped": {},
                     "subjects_in": {}, "subjects_out": {"mathematics": 3, "computer_science": 4},
                     "usage": {}, "wall_s": 1.0, "shards": 2, "shards_resumed": 2, "prompts": []},
                    {"label": "finalize", "stage": "finalize", "rows_in": 7, "rows_out": 7, "dropped": {},
                     "subjects_in": {"mathematics": 3, "computer_science": 4}, "subjects_out": {"math": 3, "cs": 4},
                     "usage": {}, "wall_s": 1.0, "shards": 2, "shards_resumed": 1, "prompts": []}]}
    subjects, columns, counts, _ = subject_matrix(manifest)
    assert subjects == ["cs", "math"] and counts == [[None, 4, 4], [None, 3, 3]]   # one name per subject
    md = render_markdown(manifest)
    assert "| classify | book_metadata |" in md and md.count("| yes |") == 1 and "| 1/2 shards |" in md
    assert render_png(manifest)[:4] == b"\x89PNG"
