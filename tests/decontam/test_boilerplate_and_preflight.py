"""Shared benchmark preambles are not n-gram evidence; a removal names the benchmark question it matched;
a bad registry stops `megascience-build run` with exit 2 before any stage writes anything."""
from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from megascience_build.cli import main as build_cli
from megascience_build.engine import records
from megascience_build.engine.stage import stage_class
from megascience_build.stages.decontaminate import contamination_report

PREAMBLE = "Assume that all gases are perfect and that data refer to 298.15 K unless otherwise stated."
BENCH = [f"{PREAMBLE} Calculate the change in entropy when 25 g of ethanol is cooled from 340 K to 300 K.",
         f"{PREAMBLE} Estimate the standard reaction enthalpy for the combustion of liquid benzene in oxygen gas.",
         f"{PREAMBLE} A sample of argon expands isothermally and reversibly from 1.0 dm3 to 3.0 dm3 at 300 K; "
         "find the work done on the gas."]
UNRELATED = f"{PREAMBLE} Explain why the boiling point of water falls as the altitude above sea level rises."
COPIED = f"{PREAMBLE} Estimate the standard reaction enthalpy for the combustion of liquid benzene in oxygen gas " \
         "at constant pressure."


def write_registry(root, lines: list[str], field="question"):
    (root / "bench.jsonl").write_text("".join(lines))
    (root / "registry.yaml").write_text(yaml.safe_dump({"sets": {"mine": ["thermo"]}, "benchmarks": {
        "thermo": {"file": {"path": "bench.jsonl"}, "question": field}}}))
    return str(root / "registry.yaml")


def rows(questions):
    return pa.table({"id": [records.content_id("r", i) for i in range(len(questions))],
                     "provenance": [records.new_provenance({"kind": "test", "row": i}) for i in range(len(questions))],
                     "question": questions})


def test_a_shared_preamble_is_not_evidence_but_a_copied_question_after_it_is(tmp_path, make_ctx):
    from decontam_fakes import BagOfWordsEmbedder, ScriptedLLM
    registry = write_registry(tmp_path, [json.dumps({"question": q}) + "\n" for q in BENCH])
    stage = stage_class("decontaminate")({"registry": registry, "benchmarks": "mine", "top_k": 1,
                                          "index_cache_dir": str(tmp_path / "cache")})
    judge = ScriptedLLM(lambda prompt: "Decision: NO")
    out = stage.process(rows([UNRELATED, COPIED]), make_ctx(judge, BagOfWordsEmbedder()))
    assert dict(out.dropped) == {1: "contaminated_ngram"}             # the preamble alone removes nothing
    assert out.kept.column("question").to_pylist() == [UNRELATED]
    assert len(judge.calls) == 1                                  # the kept row went on to the judge
    report = contamination_report(out.counters, stage.index())
    [match] = report["matches"]
    assert (match["method"], match["rows"], match["question"]) == ("ngram", 1, BENCH[1])
    assert match["question_id"] == stage.index().questions[1].id
    assert stage.index().ngrams.common_windows > 0


def test_listed_frequent_phrases_are_not_evidence_either(tmp_path, make_ctx):
    from decontam_fakes import BagOfWordsEmbedder, ScriptedLLM
    phrase = "Give your answer to three significant figures and show every step of the working clearly"
    lone = f"{phrase}. What is the mass of one mole of sodium chloride in grams?"
    registry = write_registry(tmp_path, [json.dumps({"question": lone}) + "\n"])
    training = f"{phrase}. How long does light take to travel from the Sun to the Earth?"
    ctx = make_ctx(ScriptedLLM(lambda prompt: "Decision: NO"), BagOfWordsEmbedder())
    plain = stage_class("decontaminate")({"registry": registry, "benchmarks": "mine",
                                          "index_cache_dir": str(tmp_path / "cache")})
    assert dict(plain.process(rows([training]), ctx).dropped) == {0: "contaminated_ngram"}
    listed = stage_class("decontaminate")({"registry": registry, "benchmarks": "mine", "frequent_phrases": [phrase],
                                           "index_cache_dir": str(tmp_path / "cache")})
    assert listed.process(rows([training]), ctx).dropped == []


BAD_REGISTRIES = {
    "missing field": ([json.dumps({"question": BENCH[0]}) + "\n", json.dumps({"other": "x"}) + "\n"],
                      r"record 1, field 'question'"),
    "null field": ([json.dumps({"question": None}) + "\n"], r"record 0, field 'question': expected non-empty text"),
    "empty file": ([], r"no records found"),
    "malformed line": ([json.dumps({"question": BENCH[0]}) + "\n", "{not json\n"], r"bench\.jsonl"),
}


@pytest.mark.parametrize("case", sorted(BAD_REGISTRIES))
def test_a_bad_registry_exits_2_before_any_stage_writes(case, tmp_path, capsys):
    lines, message = BAD_REGISTRIES[case]
    write_registry(tmp_path, lines)
    (tmp_path / "data").mkdir()
    pq.write_table(rows(["Why is the sky blue?"]), tmp_path / "data" / "rows.parquet")
    pipeline = {"name": "bad-registry", "input": {"parquet": ["data/*.parquet"]},
                "models": {"judge": {"backend": "scripted", "model": "j", "options": {"default": "Decision: NO"}},
                           "embedder": {"backend": "decontam_fakes:make_bow_embedder", "model": "bow"}},
                "stages": [{"stage": "random_signal"},
                           {"stage": "decontaminate", "llm": "judge", "embedder": "embedder",
                            "prompts": {"judge": "decontam_judge.txt"},
                            "params": {"registry": str(tmp_path / "registry.yaml"), "benchmarks": "mine"}}]}
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(pipeline))
    code = build_cli(["run", str(path), "--work", str(tmp_path / "work"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "stage #1" in err and "benchmark 'thermo'" in err
    import re
    assert re.search(message, err), err
    assert not (tmp_path / "work").exists()                     # nothing written, not even the lock
