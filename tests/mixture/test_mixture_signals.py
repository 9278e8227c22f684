import json

import pyarrow as pa
import pytest

from mixture_fixtures import ScriptedGen, stage_ctx, user_text
from megascience_build.backends.base import GenerationResult
from megascience_build.engine import records
from megascience_build.selection.subsets import uniform_u01
from megascience_build.stages.signals import Difficulty, RandomSignal, ResponseLength, parse_grade

PROMPTS = {"policy": "difficulty_policy.txt", "grader": "grade_response.txt", "response": "reference_response.txt"}


def pool(questions, references=None):
    ids = [records.content_id("t", i) for i in range(len(questions))]
    provs = [records.new_provenance({"kind": "dataset", "repo": "t", "row": i}) for i in range(len(questions))]
    cols = {"id": ids, "provenance": provs, "question": questions}
    if references is not None:
        cols["reference_answer"] = references
    return pa.table(cols)


@pytest.mark.parametrize("text,grade", [
    ("Reasoning: fine.\nScore: 7", 7.0),
    ("**Score:** 10", 10.0),
    ("Score: 3/10", 3.0),
    ("score: 4\n... on reflection\nScore: 6", 6.0),
    ("I give it \\boxed{8}", 8.0),
    ("Score: 8.5", 8.5),
    ("Score: 11", None),
    ("Score: high", None),
    ("", None),
    (None, None),
    ("评分: 5", None),
])
def test_parse_grade(text, grade):
    assert parse_grade(text) == grade


def grader_by_question(grades_of):
    """Grader reply: the scripted grade for (question, sample answer)."""
    def reply(req):
        text = user_text(req)
        question = text.split("Question:\n", 1)[1].split("\n\nReference answer:")[0]
        sample = int(text.split("Student's answer:\n", 1)[1].split("answer#")[1].split()[0])
        g = grades_of[question][sample]
        return g if isinstance(g, GenerationResult) else f"Looks fine.\nScore: {g}"
    return reply


def test_difficulty_means_parseable_grades_and_counts_the_rest():
    qs = ["q-easy", "q-mixed", "q-noref", "q-ungraded"]
    refs = ["1", "2", "", "4"]
    grades = {"q-easy": ["10", "10", "10", "10"], "q-mixed": ["2", "garbage", "6", "x"],
              "q-ungraded": ["none", "none", GenerationResult("", "length"), "nope"]}
    policy = ScriptedGen(lambda r: f"answer#{r.sample_index} to {user_text(r)}")
    grader = ScriptedGen(grader_by_question(grades))
    ctx = stage_ctx({"policy": policy, "grader": grader}, PROMPTS)
    out = Difficulty({"samples": 4}).process(pool(qs, refs), ctx)
    t = out.kept
    assert t.column("difficulty").to_pylist() == [10.0, 4.0, None, None]
    assert t.column("difficulty_status").to_pylist() == ["ok", "ok", "no_reference", "no_grade"]
    assert t.column("difficulty_unparseable").to_pylist() == [0, 2, 0, 4]
    assert t.column("difficulty_grades").to_pylist() == [[10.0] * 4, [2.0, 6.0], [], []]
    assert out.counters == {"no_reference": 1, "no_grade": 1, "unparseable_grades": 6, "failed_policy_samples": 0,
                            "grader_failed": 1}
    # k samples per question with a reference, sample_index 0..k-1, the stage's sampling temperature
    assert len(policy.calls) == 12
    assert sorted(r.sample_index for r in policy.calls) == sorted(list(range(4)) * 3)
    assert {r.sampling.temperature for r in policy.calls} == {0.7}
    assert {r.sampling.temperature for r in grader.calls} == {0.0}
    assert all("q-noref" not in user_text(r) for r in policy.calls)
    prov = json.loads(t.column("provenance")[1].as_py())
    assert prov["signals"]["difficulty"] == 4.0 and prov["steps"][-1]["grader_model"] == "scripted/model"


def test_difficulty_authors_option_scores_ungraded_as_zero_and_failed_samples_are_not_graded():
    policy = ScriptedGen(lambda r: GenerationResult("cut", "length") if r.sample_index == 0 else f"answer#{r.sample_index}")
    grader = ScriptedGen(lambda r: "no score here")
    ctx = stage_ctx({"policy": policy, "grader": grader}, PROMPTS)
    out = Difficulty({"samples": 3, "ungraded_as_zero": True}).process(pool(["q"], ["r"]), ctx)
    assert out.kept.column("difficulty").to_pylist() == [0.0]
    assert out.kept.column("difficulty_failed_samples").to_pylist() == [1]
    assert len(grader.calls) == 2 and out.counters["failed_policy_samples"] == 1


def test_response_length_counts_tokens_and_excludes_long_or_failed_responses():
    def reply(r):
        q = user_text(r)
        if "truncated" in q:
            return GenerationResult("…", "length", 5, 512)
        if "broken" in q:
            return GenerationResult("", "error", 5, 0, error="timeout")
        return GenerationResult("x", "stop", 5, 12_000 if "long" in q else 300)
    ctx = stage_ctx({"reference": ScriptedGen(reply)}, PROMPTS, default_role="reference")
    out = ResponseLength({"tokenizer": None}).process(pool(["short", "long one", "truncated", "broken"]), ctx)
    assert out.kept.column("response_length").to_pylist() == [300, 12_000, None, None]
    assert out.kept.column("length_excluded").to_pylist() == [False, True, True, True]
    assert out.counters == {"reference_truncated": 1, "reference_error": 1, "length_excluded": 3}
    assert out.kept.num_rows == 4 and out.dropped == []


def test_random_signal_is_seeded_per_id_and_independent_of_batching():
    table = pool([f"q{i}" for i in range(10)])
    ctx = stage_ctx({}, {}, seed=7)
    whole = RandomSignal().process(table, ctx).kept.column("random_u01").to_pylist()
    parts = (RandomSignal().process(table.slice(0, 4), ctx).kept.column("random_u01").to_pylist()
             + RandomSignal().process(table.slice(4), ctx).kept.column("random_u01").to_pylist())
    assert whole == parts
    assert whole == list(uniform_u01(7, table.column("id").to_pylist()))
    assert all(0.0 <= v < 1.0 for v in whole) and len(set(whole)) == 10
    other = RandomSignal({"seed": 8}).process(table, ctx).kept.column("random_u01").to_pylist()
    assert other != whole
