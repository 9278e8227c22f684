import json

import pyarrow as pa
import pyarrow.parquet  # noqa: F401  (pa.parquet)
import pytest

from mixture_fixtures import NEMOTRON_SCHEMA, NR_SCHEMA, SCP_SCHEMA, nemotron_rows, nr_rows, upstream_batch
from megascience_build.engine import records
from megascience_build.engine.stage import StageError
from megascience_build.upstream.adapters import split_think
from megascience_build.stages.adapt_source import OUTPUT_COLUMNS, AdaptSource


def run(source, batch, **params):
    stage = AdaptSource({"source": source, **params})
    stage.check_schema(batch.schema)
    return stage.process(batch, ctx=None)


def test_natural_reasoning_maps_rows_and_drops_bad_ones(tmp_path):
    rows = nr_rows(6)
    rows.append({"question": "  ", "reference_answer": "1", "responses": rows[0]["responses"]})
    rows.append({"question": "No responses?", "reference_answer": "1", "responses": []})
    rows.append({"question": "Null response", "reference_answer": None,
                 "responses": [{"response_model": "m", "response": None}]})
    out = run("natural_reasoning", upstream_batch(rows, NR_SCHEMA, tmp_path / "full.parquet"))
    assert out.kept.column_names == list(OUTPUT_COLUMNS)
    assert out.kept.num_rows == 6
    assert sorted(out.dropped) == [(6, "missing_question"), (7, "missing_response"), (8, "missing_response")]
    first = out.kept.slice(0, 1).to_pylist()[0]
    assert first["question"] == rows[0]["question"]
    assert first["answer"] == rows[0]["responses"][0]["response"]
    assert first["reference_answer"] == "1" and first["source"] == "NaturalReasoning" and first["subject"] == ""
    assert out.kept.column("reference_answer").to_pylist()[4] == ""      # no reference answer upstream: kept, empty
    origin = records.origin_of(first["provenance"])
    assert origin == {"kind": "dataset", "repo": "facebook/natural_reasoning",
                      "revision": "8c9292b8932b86f90360ca6b152c2e23ca9252ab", "config": None, "split": "train",
                      "file": "full.parquet", "row": 0}
    assert first["id"] == records.content_id("facebook/natural_reasoning", "train", "full.parquet", 0)
    assert out.counters == {}                                             # pinned revision


def test_ids_do_not_depend_on_the_local_directory(tmp_path):
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    a = run("natural_reasoning", upstream_batch(nr_rows(3), NR_SCHEMA, tmp_path / "a" / "full.parquet"))
    b = run("natural_reasoning", upstream_batch(nr_rows(3), NR_SCHEMA, tmp_path / "b" / "full.parquet"))
    assert a.kept.column("id").to_pylist() == b.kept.column("id").to_pylist()
    assert len(set(a.kept.column("id").to_pylist())) == 3


def test_nemotron_reference_answer_is_the_summary_after_thinking(tmp_path):
    rows = nemotron_rows(3)
    bad = [
        {**rows[0], "input": []},                                                         # malformed
        {**rows[0], "input": [{"role": "assistant", "content": "hi"}]},                  # no user turn
        {**rows[0], "input": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                              {"role": "user", "content": "c"}]},                         # multi-turn
        {**rows[0], "output": "<think>never closed"},
        {**rows[0], "output": "<think>all thinking</think>   "},
        {**rows[0], "input": [{"role": "user", "content": None}]},
    ]
    out = run("nemotron_science", upstream_batch(rows + bad, NEMOTRON_SCHEMA, tmp_path / "science.parquet"))
    assert out.kept.num_rows == 3
    assert sorted(out.dropped) == [(3, "malformed_messages"), (4, "malformed_messages"), (5, "multi_turn"),
                                   (6, "no_think_close"), (7, "empty_summary"), (8, "malformed_messages")]
    row = out.kept.slice(1, 1).to_pylist()[0]
    assert row["question"] == "Nemotron question 1: which particle has charge 1e?"
    assert row["reference_answer"] == "The particle has charge 1e."
    assert row["answer"].startswith("<think>") and row["source"] == "Nemotron-Science"
    origin = records.origin_of(row["provenance"])
    assert (origin["repo"], origin["config"], origin["split"], origin["revision"]) == \
        ("nvidia/Llama-Nemotron-Post-Training-Dataset", "SFT", "science", "main")
    assert out.counters == {"unpinned_revision_rows": 3}


def test_split_think_uses_the_last_close_tag():
    assert split_think("<think>a</think>b</think> final ") == ("a</think>b", "final")
    assert split_think("no tags") is None


def test_scp116k_uses_the_named_answer_column(tmp_path):
    rows = [{"domain": "Physics", "problem": "A ball falls 5 m. Speed?", "matched_solution": "about 9.9 m/s",
             "o1_solution": "o1 says 9.9", "is_o1_solution_same_with_matched_solution": True,
             "qwq_solution": "qwq says 9.9", "is_qwq_solution_same_with_matched_solution": True,
             "r1_response": "R1: v = sqrt(2gh) = 9.9 m/s", "r1_reasoning_content": "thinking"},
            {"domain": "Chemistry", "problem": "pH of water?", "matched_solution": "7", "o1_solution": "7",
             "is_o1_solution_same_with_matched_solution": True, "qwq_solution": "7",
             "is_qwq_solution_same_with_matched_solution": True, "r1_response": None, "r1_reasoning_content": None}]
    batch = upstream_batch(rows, SCP_SCHEMA, tmp_path / "scp.parquet")
    out = run("scp116k", batch)
    assert out.kept.to_pylist()[0]["answer"].startswith("R1:") and out.dropped == [(1, "missing_response")]
    assert out.kept.to_pylist()[0]["subject"] == "Physics"
    assert out.kept.to_pylist()[0]["reference_answer"] == "about 9.9 m/s"
    out = run("scp116k", batch, answer_field="qwq_solution")
    assert [r["answer"] for r in out.kept.to_pylist()] == ["qwq says 9.9", "7"]


def test_missing_upstream_column_and_unknown_source_are_clear_errors(tmp_path):
    batch = upstream_batch(nr_rows(2), NR_SCHEMA, tmp_path / "full.parquet").drop_columns(["responses"])
    with pytest.raises(StageError, match=r"needs upstream column\(s\) \['responses'\]"):
        run("natural_reasoning", batch)
    with pytest.raises(StageError, match="parameter 'source' must be one of"):
        AdaptSource({"source": "webinstruct"})


def test_provenance_records_the_adapter_step(tmp_path):
    out = run("natural_reasoning", upstream_batch(nr_rows(1), NR_SCHEMA, tmp_path / "f.parquet"), revision="abc")
    prov = json.loads(out.kept.column("provenance")[0].as_py())
    assert prov["steps"][0]["stage"] == "adapt_source" and prov["origin"]["revision"] == "abc"
    assert out.counters == {"unpinned_revision_rows": 1}


def test_jsonl_upstream_files_convert_to_parquet_that_the_adapter_reads(tmp_path):
    from megascience_build.upstream.fetch import to_parquet

    src = tmp_path / "full.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in nr_rows(5)) + "\n")
    assert to_parquet(src, tmp_path / "part-00000.parquet", block_bytes=256) == 5
    table = pa.parquet.read_table(tmp_path / "part-00000.parquet")
    assert table.column("question").to_pylist() == [r["question"] for r in nr_rows(5)]
    batch = table.append_column("source_file", pa.array(["part-00000.parquet"] * 5)).append_column(
        "source_row", pa.array(range(5), pa.int64()))
    assert run("natural_reasoning", batch).kept.num_rows == 5
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(ValueError, match="empty.jsonl"):
        to_parquet(tmp_path / "empty.jsonl", tmp_path / "x.parquet")
    (tmp_path / "broken.jsonl").write_text(json.dumps(nr_rows(1)[0]) + "\n{not json\n")
    with pytest.raises(ValueError, match="broken.jsonl: not readable"):
        to_parquet(tmp_path / "broken.jsonl", tmp_path / "x.parquet")
    assert not (tmp_path / "x.parquet").exists() and not list(tmp_path.glob(".x.parquet*"))
