"""Once with a real model: SmolLM2-135M-Instruct as reference model, policy and grader, on 3 questions with
k=2 and short generations. Asserts structure, never quality (SmolLM2 grades at chance)."""
import pyarrow as pa
import pytest

from mixture_fixtures import stage_ctx
from megascience_build.selection import subsets as sel
from megascience_build.backends.base import SamplingParams
from megascience_build.engine import records
from megascience_build.stages.mixture import SelectSubsets, verified_subset_records
from megascience_build.stages.signals import Difficulty, RandomSignal, ResponseLength

pytestmark = [pytest.mark.slow, pytest.mark.model]
K = 2
PROMPTS = {"policy": "difficulty_policy.txt", "grader": "grade_response.txt", "response": "reference_response.txt"}


def test_signals_and_selection_with_smollm2(smollm2, smollm2_tokenizer_dir):
    questions = ["What is 2 + 3? Reply with the number only.", "What is the chemical symbol of sodium? One word.",
                 "Is the Earth round? Answer yes or no."]
    table = pa.table({"id": [records.content_id("smol", i) for i in range(3)],
                      "provenance": [records.new_provenance({"kind": "dataset", "repo": "smol", "row": i}) for i in range(3)],
                      "question": questions, "reference_answer": ["5", "Na", "yes"]})
    ctx = stage_ctx({"reference": smollm2, "policy": smollm2, "grader": smollm2}, PROMPTS,
                  sampling=SamplingParams(temperature=0.7, top_p=0.95, max_tokens=32, seed=0), default_role="reference")

    lengths = ResponseLength({"tokenizer": smollm2_tokenizer_dir}).process(table, ctx)
    t = lengths.kept
    for n, excluded in zip(t.column("response_length").to_pylist(), t.column("length_excluded").to_pylist()):
        assert (n is None and excluded) or (isinstance(n, int) and 0 < n <= 40 and not excluded)

    out = Difficulty({"samples": K, "grader_max_tokens": 32}).process(t, ctx)
    t = out.kept
    assert t.num_rows == 3 and out.dropped == []
    for row in t.to_pylist():
        graded = K - row["difficulty_failed_samples"]
        assert len(row["difficulty_grades"]) + row["difficulty_unparseable"] == graded
        assert all(0 <= g <= 10 for g in row["difficulty_grades"])
        if row["difficulty_grades"]:
            assert row["difficulty_status"] == "ok"
            assert row["difficulty"] == pytest.approx(sum(row["difficulty_grades"]) / len(row["difficulty_grades"]))
        else:
            assert row["difficulty_status"] == "no_grade" and row["difficulty"] is None
    assert out.counters["unparseable_grades"] == sum(t.column("difficulty_unparseable").to_pylist())

    t = RandomSignal().process(t, ctx).kept
    chosen = SelectSubsets({"parent": "smol"}).process(t, ctx).kept
    n = sum(chosen.column("selected_difficulty").to_pylist())
    eligible = sum(not e for e in chosen.column("length_excluded").to_pylist())
    assert sum(chosen.column("selected_length").to_pylist()) == min(n, eligible)
    assert sum(chosen.column("selected_random").to_pylist()) == n
    assert [r["rows"] for r in verified_subset_records(chosen, sel.PoolPlan("smol"))][0] == n
