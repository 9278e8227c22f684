"""Planted leaks from the shared benchmark files, found with the real MiniLM embedder and a scripted judge;
and the judge path once with the real SmolLM2 (structure only)."""
from __future__ import annotations

import random
from collections import defaultdict

import pytest

from megascience_build.contamination.planted import (PlantedPairJudge, edit_lightly, plant, planted_table, reorder, score,
                                             write_shared_registry_yaml)
from megascience_build.stages.decontaminate import Decontaminate

BENCHMARKS = ["gsm8k", "chembench_str", "pubmedqa", "cs_bench_assertion", "piqa"]


def test_edits_change_text_but_keep_words():
    rng = random.Random(0)
    q = "Janet has 3 apples. She buys 5 more at the market. How many apples does she have now?"
    edited = edit_lightly(q, rng)
    assert edited != q and abs(len(edited.split()) - len(q.split())) <= 3
    assert reorder(q, rng) == "How many apples does she have now? Janet has 3 apples. She buys 5 more at the market."
    assert reorder("If the pressure doubles, what happens to the volume of the gas?", rng) == \
        "What happens to the volume of the gas, if the pressure doubles?"
    assert sorted(reorder("Name the largest planet", rng).split()) == sorted("Name the largest planet".split())


@pytest.fixture(scope="module")
def planted(shared_benchmarks, tmp_path_factory):
    registry = write_shared_registry_yaml(shared_benchmarks, BENCHMARKS,
                                          tmp_path_factory.mktemp("reg") / "registry.yaml")
    stage = Decontaminate({"registry": str(registry), "benchmarks": "shared"})
    by_bench = defaultdict(list)
    for q in stage.index().questions:
        by_bench[q.benchmark].append(q)
    rows = plant(by_bench, per_kind_per_benchmark=4, seed=1)
    return str(registry), rows


@pytest.mark.model
def test_planted_recall_with_minilm(planted, minilm, make_ctx, judge_prompt):
    registry, rows = planted
    stage = Decontaminate({"registry": registry, "benchmarks": "shared"})
    judge = PlantedPairJudge(judge_prompt, rows)
    out = stage.process(planted_table(rows), make_ctx(judge, minilm))
    res = score(rows, out.dropped)
    print({k: (v["removed"], v["rows"]) for k, v in res.items()})
    assert res["verbatim"]["rows"] == 20 and res["verbatim"]["rate"] == 1.0
    assert res["edited"]["rate"] >= 0.9
    assert res["reordered"]["rate"] >= 0.9
    assert res["unrelated"]["rows"] == 50 and res["unrelated"]["removed"] == 0
    # the judge saw every row the short-circuit let through, 5 neighbours each
    n_judged = out.counters["rows_judged"]
    assert judge.calls == out.counters["judge_calls"] == 5 * n_judged
    assert n_judged >= 50 and out.counters["judge_yes"] >= res["edited"]["judge"] + res["reordered"]["judge"]
    # every removal is attributed to one of the planted benchmarks
    per_bench = {k.split(":")[1] for k in out.counters if k.startswith("contaminated:")}
    assert per_bench <= set(BENCHMARKS) and len(per_bench) >= 4


@pytest.mark.model
def test_floor_trades_judge_calls(planted, minilm, make_ctx, judge_prompt):
    registry, rows = planted
    judge = PlantedPairJudge(judge_prompt, rows)
    out = Decontaminate({"registry": registry, "benchmarks": "shared", "min_similarity": 0.5}).process(
        planted_table(rows), make_ctx(judge, minilm))
    res = score(rows, out.dropped)
    assert res["verbatim"]["rate"] == 1.0 and res["unrelated"]["removed"] == 0
    assert judge.calls < 5 * out.counters["rows_judged"] and out.counters["pairs_below_floor"] > 0


@pytest.mark.model
@pytest.mark.slow
def test_smollm2_judge_structure(planted, minilm, smollm2, make_ctx):
    """Two rows x top_k 5 = 10 real judge calls, 16 new tokens each, with the one-line prompt and a newline
    stop (the CPU setting): every call is accounted for as YES, NO, unparseable or a generation failure, and
    every row ends kept or dropped with a known reason."""
    from megascience_build.backends.base import SamplingParams
    registry, rows = planted
    picked = [r for r in rows if r.kind == "edited"][:1] + [r for r in rows if r.kind == "unrelated"][:1]
    stage = Decontaminate({"registry": registry, "benchmarks": "shared", "top_k": 5})
    ctx = make_ctx(smollm2, minilm, sampling=SamplingParams(max_tokens=16, stop=("\n",)),
                   judge_prompt="decontam_judge_brief")
    calls_before = smollm2.calls
    out = stage.process(planted_table(picked), ctx)
    c = out.counters
    judged = c.get("judge_calls", 0)
    assert smollm2.calls - calls_before == judged and 5 <= judged <= 10    # the unrelated row is always judged
    outcomes = (c.get("judge_yes", 0) + c.get("judge_no", 0) + c.get("unparseable_judgement", 0)
                + sum(v for k, v in c.items() if k.startswith("judge_generation_")))
    assert outcomes == judged
    reasons = {"contaminated_exact", "contaminated_ngram", "contaminated_judge", "generation_length",
               "generation_error"}
    assert all(r in reasons for _, r in out.dropped)
    assert out.kept.num_rows + len(out.dropped) == len(picked)
    import json
    for prov in out.kept.column("provenance").to_pylist():
        prov = json.loads(prov)
        assert prov["steps"][-1]["model"] == smollm2.model_id
        assert prov["signals"]["decontamination"]["decision"] in ("not_same", "unparseable")


def test_labelled_judge_pairs_cover_every_class_with_the_intended_relation(planted):
    from decontam_fakes import BagOfWordsEmbedder
    from megascience_build.contamination.planted import PAIR_CLASSES, change_a_number, labelled_pairs
    registry, _ = planted
    questions = Decontaminate({"registry": registry, "benchmarks": "shared"}).index().questions
    vectors = BagOfWordsEmbedder().encode([q.text for q in questions])
    pairs = labelled_pairs(questions, vectors, per_class=4, seed=2)
    by = defaultdict(list)
    for p in pairs:
        by[p.kind].append(p)
    assert {k: len(v) for k, v in by.items()} == {k: 4 for k in PAIR_CLASSES}
    assert all(p.question == p.candidate for p in by["copy"])
    assert all(p.question != p.candidate for k in PAIR_CLASSES if k != "copy" for p in by[k])
    assert change_a_number("A train leaves at 3 pm with 120 people.") == "A train leaves at 6 pm with 120 people."
    assert change_a_number("No numbers here.") is None
