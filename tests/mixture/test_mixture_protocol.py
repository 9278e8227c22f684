"""The whole selection protocol on upstream-schema fixtures with a scripted backend, through annotation and
the mixture; subset sizes are checked against the scripted grades and lengths."""
import json

import pyarrow as pa
import pytest

from mixture_fixtures import (NEMOTRON_SCHEMA, NR_SCHEMA, ScriptedGen, expected_difficulty_n, index_of,
                              nemotron_rows, nr_rows, respond_annotator, respond_grader, respond_policy,
                              respond_reference, stage_ctx, upstream_batch, user_text)
from megascience_build.backends.base import GenerationResult
from megascience_build.engine import records
from megascience_build.engine.stage import StageError
from megascience_build.stages.annotate_solution import AnnotateSolution
from megascience_build.selection import subsets as sel
from megascience_build.stages.mixture import KeepSubset, Mixture, SelectSubsets, verified_subset_records
from megascience_build.stages.signals import Difficulty, RandomSignal, ResponseLength
from megascience_build.stages.adapt_source import AdaptSource

K = 4
PROMPTS = {"policy": "difficulty_policy.txt", "grader": "grade_response.txt", "response": "reference_response.txt",
           "annotate": "annotate_solution.txt"}


def scripted_models():
    return {"reference": ScriptedGen(respond_reference), "policy": ScriptedGen(respond_policy),
            "grader": ScriptedGen(respond_grader), "annotator": ScriptedGen(respond_annotator)}


def signals(table, models, seed=0):
    ctx = stage_ctx(models, PROMPTS, seed=seed, default_role="reference")
    table = ResponseLength({"tokenizer": None}).process(table, ctx).kept
    table = Difficulty({"samples": K}).process(table, ctx).kept
    return RandomSignal().process(table, ctx).kept


def test_selection_protocol_end_to_end(tmp_path):
    models = scripted_models()
    nr = AdaptSource({"source": "natural_reasoning"}).process(
        upstream_batch(nr_rows(60), NR_SCHEMA, tmp_path / "nr.parquet"), None).kept
    pool = signals(nr, models)
    out = SelectSubsets({"parent": "natural_reasoning_dc"}).process(pool, stage_ctx(models, PROMPTS))
    t = out.kept
    indices = list(range(60))
    n = expected_difficulty_n(indices, [i % 5 != 4 for i in indices])
    assert n > 0
    assert [sum(t.column(c).to_pylist()) for c in ("selected_difficulty", "selected_length", "selected_random")] == [n] * 3
    assert out.counters == {"natural_reasoning_dc_difficulty_rows": n, "natural_reasoning_dc_length_rows": n,
                            "natural_reasoning_dc_random_rows": n}
    rows = t.to_pylist()
    # difficulty: only medium questions with a reference answer; boundary means (exactly 1) are out (strict)
    assert all(index_of(r["question"]) % 4 == 1 and r["reference_answer"] for r in rows if r["selected_difficulty"])
    # length: never an excluded (>10k) response; takes the longest ones; rows without reference are eligible
    chosen = [r for r in rows if r["selected_length"]]
    assert not any(r["length_excluded"] for r in chosen)
    cutoff = min(r["response_length"] for r in chosen)
    assert all(r["response_length"] <= cutoff for r in rows if not r["selected_length"] and not r["length_excluded"])
    # random: the n smallest stored random numbers
    picked = sorted(r["random_u01"] for r in rows if r["selected_random"])
    assert picked == sorted(r["random_u01"] for r in rows)[:n]
    recs = {r["name"]: r for r in verified_subset_records(t, sel.PoolPlan("natural_reasoning_dc"))}
    assert recs["natural_reasoning_dc_random"]["seed"] == 0 and recs["natural_reasoning_dc_length"]["parameters"]["n"] == n
    assert json.loads(next(p for p, d in zip(t.column("provenance").to_pylist(), t.column("selected_difficulty").to_pylist())
                           if d))["signals"]["subsets"][0] == "natural_reasoning_dc_difficulty"
    tampered = t.set_column(t.column_names.index("selected_random"), "selected_random",
                            pa.array([not x for x in t.column("selected_random").to_pylist()]))
    with pytest.raises(sel.SelectionError, match="selected_random"):
        verified_subset_records(tampered, sel.PoolPlan("natural_reasoning_dc"))

    # the paper's wording keeps the boundary means (exactly 1): a bigger n for all three methods
    loose = SelectSubsets({"parent": "natural_reasoning_dc", "strict": False}).process(pool, stage_ctx(models, PROMPTS)).kept
    n_loose = expected_difficulty_n(indices, [i % 5 != 4 for i in indices], strict=False)
    assert n_loose > n
    assert [sum(loose.column(c).to_pylist()) for c in ("selected_difficulty", "selected_length", "selected_random")] \
        == [n_loose] * 3

    # NaturalReasoning random subset -> annotation (over-long annotations dropped)
    ctx = stage_ctx(models, PROMPTS, default_role="annotator")
    nr_random = KeepSubset({"column": "selected_random"}).process(t, ctx)
    assert nr_random.kept.num_rows == n and len(nr_random.dropped) == 60 - n
    assert {reason for _, reason in nr_random.dropped} == {"not_selected"}
    nr_annotated = AnnotateSolution({"tokenizer": None}).process(nr_random.kept, ctx)
    too_long = [i for i, q in enumerate(nr_random.kept.column("question").to_pylist()) if index_of(q) % 7 == 6]
    assert nr_annotated.dropped == [(i, "annotation_too_long") for i in too_long]
    assert all(a.startswith("Step 1.") for a in nr_annotated.kept.column("answer").to_pylist())

    # Nemotron-Science difficulty subset -> annotation
    nemo = AdaptSource({"source": "nemotron_science"}).process(
        upstream_batch(nemotron_rows(24), NEMOTRON_SCHEMA, tmp_path / "science.parquet"), None).kept
    nemo = SelectSubsets({"parent": "nemotron_science_dc"}).process(signals(nemo, models), stage_ctx(models, PROMPTS)).kept
    nemo = KeepSubset({"column": "selected_difficulty"}).process(nemo, ctx).kept
    nemo_annotated = AnnotateSolution({"tokenizer": None}).process(nemo, ctx).kept

    # TextbookReasoning rows come from the textbook pipeline with a book origin and no `source` column
    book = pa.table({"id": [records.content_id("book", i) for i in range(5)],
                     "provenance": [records.new_provenance({"kind": "book", "book_id": "b", "chunk_id": i}) for i in range(5)],
                     "question": [f"Textbook question {i}" for i in range(5)], "answer": ["A"] * 5,
                     "subject": ["physics"] * 5, "reference_answer": ["a"] * 5})
    parts = pa.concat_tables([book, nr_annotated.kept, nemo_annotated], promote_options="default")
    expect = {"TextbookReasoning": 5, "NaturalReasoning": nr_annotated.kept.num_rows,
              "Nemotron-Science": nemo_annotated.num_rows}
    mix = Mixture({"expect": expect}).process(parts, stage_ctx(models, PROMPTS))
    assert mix.kept.column_names == ["id", "question", "answer", "subject", "reference_answer", "source", "provenance"]
    assert mix.counters == {f"rows_{k}": v for k, v in expect.items()}
    sources = mix.kept.column("source").to_pylist()
    assert sources == sorted(sources, key=["TextbookReasoning", "NaturalReasoning", "Nemotron-Science"].index)
    # provenance carries the whole history of a NaturalReasoning row
    prov = json.loads(mix.kept.column("provenance")[5].as_py())
    assert [s["stage"] for s in prov["steps"]] == ["adapt_source", "response_length", "difficulty", "random_signal",
                                                   "select_subsets", "annotate_solution", "mixture"]
    # rebuilding from the same rows gives the same table
    assert Mixture({"expect": expect}).process(parts, stage_ctx(models, PROMPTS)).kept.equals(mix.kept)


def test_mixture_drops_duplicates_and_unknown_sources_and_checks_expectations():
    prov = [records.new_provenance({"kind": "dataset", "repo": "facebook/natural_reasoning", "row": 0}),
            records.new_provenance({"kind": "dataset", "repo": "someone/else", "row": 1}),
            records.new_provenance({"kind": "dataset", "repo": "facebook/natural_reasoning", "row": 0})]
    t = pa.table({"id": ["a", "b", "a"], "provenance": prov, "question": ["q"] * 3, "answer": ["x"] * 3,
                  "subject": [""] * 3, "reference_answer": [""] * 3})
    out = Mixture().process(t, None)
    assert out.kept.column("source").to_pylist() == ["NaturalReasoning"]
    assert out.dropped == [(1, "unknown_source"), (2, "duplicate_id")]
    with pytest.raises(StageError, match="rows per source"):
        Mixture({"expect": {"NaturalReasoning": 2}}).process(t, None)


def test_annotation_failures_are_dropped_with_reasons():
    gen = ScriptedGen(lambda r: {"q0": GenerationResult("x", "length", 1, 4096),
                                 "q1": GenerationResult("", "error", 1, 0, "boom"),
                                 "q2": GenerationResult("  ", "stop", 1, 0)}.get(user_text(r).split()[-1],
                                                                               GenerationResult("ok \\boxed{1}", "stop", 1, 3)))
    t = pa.table({"id": list("abcd"), "provenance": [records.new_provenance({"kind": "dataset"})] * 4,
                  "question": ["q0", "q1", "q2", "q3"], "answer": ["old"] * 4})
    out = AnnotateSolution({"tokenizer": None}).process(t, stage_ctx({"a": gen}, PROMPTS, default_role="a"))
    assert out.dropped == [(0, "generation_length"), (1, "generation_error"), (2, "empty_annotation")]
    assert out.kept.column("answer").to_pylist() == ["ok \\boxed{1}"] and out.counters == {"no_boxed_answer": 0}


def test_subset_stage_parameters_are_checked():
    with pytest.raises(StageError, match="'parent'"):
        SelectSubsets({})
    with pytest.raises(StageError, match="low <= high"):
        SelectSubsets({"parent": "p", "low": 9, "high": 1})
    with pytest.raises(StageError, match="parameter 'column'"):
        KeepSubset({"column": "in_everything"})
    with pytest.raises(StageError, match="'samples' must be a positive integer"):
        Difficulty({"samples": 0})
