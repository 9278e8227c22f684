"""The decontaminate stage with a fake embedder and a scripted judge: routing, verdicts, counters,
provenance, the similarity floor, the index cache and the per-benchmark report."""
from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest
import yaml

from megascience_build.backends.base import GenerationResult
from megascience_build.engine import records
from megascience_build.engine.stage import StageError, stage_class
from megascience_build.stages import decontaminate as dc

ALPHA = [
    "A ball of mass 2 kg moves at 3 m/s. What is its kinetic energy in joules?",
    "Which organelle carries out photosynthesis in plant cells?",
    "State the second law of thermodynamics in terms of entropy for an isolated system and give an everyday example of it.",
]
BETA = [
    "How many moles of oxygen gas are in 64 grams of oxygen gas?",
    "What is the derivative of sin(x) times cos(x) with respect to x?",
]


@pytest.fixture
def registry(tmp_path):
    (tmp_path / "alpha.jsonl").write_text("".join(json.dumps({"q": {"text": t}}) + "\n" for t in ALPHA))
    (tmp_path / "beta.json").write_text(json.dumps([{"problem": t} for t in BETA]))
    reg = tmp_path / "bench.yaml"
    reg.write_text(yaml.safe_dump({"sets": {"toy": ["alpha", "beta"]}, "benchmarks": {
        "alpha": {"file": {"path": "alpha.jsonl"}, "question": "q.text"},
        "beta": {"file": {"path": "beta.json"}, "question": "problem"}}}))
    return str(reg)


def table(questions):
    return pa.table({
        "id": [records.content_id("t", i) for i in range(len(questions))],
        "provenance": [records.new_provenance({"kind": "test", "row": i}) for i in range(len(questions))],
        "question": questions,
    })


def judge_by_keyword(rules):
    """Reply for the first rule whose both keywords occur in the prompt; default a clean NO."""
    def reply(prompt):
        for (a, b), answer in rules.items():
            if a in prompt and b in prompt:
                return answer
        return "Analysis: different things are asked.\nDecision: NO"
    return reply


def make_stage(registry, **params):
    return stage_class("decontaminate")({"registry": registry, "benchmarks": "toy", **params})


def signals_of(kept):
    return [json.loads(p)["signals"].get("decontamination") for p in kept.column("provenance").to_pylist()]


def test_every_route(registry, make_ctx):
    from decontam_fakes import BagOfWordsEmbedder, ScriptedLLM
    questions = [
        "which organelle carries out PHOTOSYNTHESIS in plant cells",                        # 0 exact
        "Review: state the second law of thermodynamics in terms of entropy for an isolated "
        "system, please.",                                                                   # 1 n-gram (13 words)
        "Find the kinetic energy, in joules, of a 2 kg ball that moves at 3 m/s.",            # 2 judge YES
        "Why is the sky blue during the day?",                                              # 3 judge NO
        "What is the derivative of tan(x)?",                                                # 4 unparseable
        "",                                                                                 # 5 missing
        "Count the moles of O2 in 64 g of it.",                                             # 6 length + NO
    ]
    llm = ScriptedLLM(judge_by_keyword({
        ("2 kg ball", "kinetic energy in joules"): "Analysis: same numbers, same quantity.\nDecision: **YES**",
        ("tan(x)", "sin(x)"): "I think they might be related but I am not sure.",
        ("moles of O2", "moles of oxygen"): GenerationResult("Analysis: both ask", "length"),
    }))
    emb = BagOfWordsEmbedder()
    stage = make_stage(registry)
    out = stage.process(table(questions), make_ctx(llm, emb))

    assert dict(out.dropped) == {0: "contaminated_exact", 1: "contaminated_ngram", 2: "contaminated_judge",
                                 5: "missing_question", 6: "generation_length"}
    assert out.kept.column("question").to_pylist() == [questions[3], questions[4]]
    c = out.counters
    assert c["contaminated:alpha:exact"] == 1 and c["contaminated:alpha:ngram"] == 1
    assert c["contaminated:alpha:judge"] == 1
    # 4 rows reach the judge, each with all 5 benchmark questions as neighbours
    assert c["judge_calls"] == len(llm.calls) == 20 and c["rows_judged"] == 4
    assert c["judge_yes"] == 1 and c["unparseable_judgement"] == 1 and c["judge_generation_length"] == 1
    assert c["judge_no"] == 20 - 3
    # the rendered prompt carries both questions
    assert any(questions[2] in r.messages[-1]["content"] and ALPHA[0] in r.messages[-1]["content"]
               for r in llm.calls)

    sky, tan = signals_of(out.kept)
    assert sky["decision"] == "not_same" and sky["judged"] == 5 and sky["judged_no"] == 5
    assert tan["decision"] == "not_same" and tan["unparseable"] == 1
    assert tan["nearest_benchmark"] == "beta" and 0 < tan["similarity"] <= 1
    assert tan["nearest_question_id"] == records.content_id("benchmark", "beta", BETA[1])
    step = json.loads(out.kept.column("provenance")[0].as_py())["steps"][-1]
    assert step["stage"] == "decontaminate" and step["model"] == "test/scripted"
    assert step["prompt"] == "decontam_judge" and len(step["prompt_sha256"]) == 64
    assert step["embedder"] == emb.model_id and step["benchmarks"] == ["alpha", "beta"]
    assert len(step["benchmark_index_sha256"]) == 64


def test_all_unparseable_option_and_yes_beats_failure(registry, make_ctx):
    from decontam_fakes import BagOfWordsEmbedder, ScriptedLLM
    qs = ["Tell me about rainbows and light.", "What is the kinetic energy of a 2 kg ball at 3 m/s?"]

    def reply(prompt):
        if "rainbows" in prompt:
            return "hmm"
        if ALPHA[0] in prompt:
            return "Decision: YES"
        return GenerationResult("", "error", error="boom")
    for option, expected in ((False, {1: "contaminated_judge"}),
                             (True, {0: "unparseable_judgement", 1: "contaminated_judge"})):
        out = make_stage(registry, drop_if_all_unparseable=option).process(
            table(qs), make_ctx(ScriptedLLM(reply), BagOfWordsEmbedder()))
        assert dict(out.dropped) == expected
        assert out.counters["unparseable_judgement"] == 5 and out.counters["judge_generation_error"] == 4
    kept = signals_of(make_stage(registry).process(table(qs[:1]), make_ctx(ScriptedLLM(reply), BagOfWordsEmbedder())).kept)
    assert kept[0]["decision"] == "unparseable"


def test_similarity_floor_and_top_k(registry, make_ctx):
    from decontam_fakes import BagOfWordsEmbedder, ScriptedLLM
    llm = ScriptedLLM(lambda p: "Decision: NO")
    qs = ["Why is the sky blue during the day?", "Which organelle does photosynthesis in a plant cell?"]
    out = make_stage(registry, min_similarity=0.99).process(table(qs), make_ctx(llm, BagOfWordsEmbedder()))
    assert not out.dropped and not llm.calls
    assert out.counters["pairs_below_floor"] == 10
    assert [s["decision"] for s in signals_of(out.kept)] == ["below_floor", "below_floor"]
    out = make_stage(registry, min_similarity=0.3, top_k=2).process(table(qs), make_ctx(llm, BagOfWordsEmbedder()))
    # only the photosynthesis question is close to a benchmark question
    assert len(llm.calls) == 1 and "photosynthesis" in llm.calls[0].messages[-1]["content"]
    assert out.counters["pairs_below_floor"] == 3


def test_index_built_once_and_its_embeddings_kept_as_a_content_keyed_artifact(registry, make_ctx, tmp_path):
    from decontam_fakes import BagOfWordsEmbedder, ScriptedLLM
    emb = BagOfWordsEmbedder()
    stage = make_stage(registry, index_cache_dir=str(tmp_path / "cache"))
    ctx = make_ctx(ScriptedLLM(lambda p: "Decision: NO"), emb)
    stage.process(table(["Why is the sky blue?"]), ctx)
    stage.process(table(["Why is grass green?"]), ctx)
    assert emb.calls == 3                       # benchmark index once, then one call per batch
    saved = list((tmp_path / "cache").glob("benchmark-embeddings-*/embeddings.npy"))
    assert len(saved) == 1
    about = json.loads((saved[0].parent / "index.json").read_text())
    assert about["embedder"]["model"] == "test/bag-of-words-256" and about["questions"] == 5
    assert [f["file"] for s in about["sources"] for f in s["files"]] == ["alpha.jsonl", "beta.json"]
    assert str(tmp_path) not in json.dumps(about)          # files named relative to the registry folder
    emb2 = BagOfWordsEmbedder()                 # a fresh stage (another process): the embeddings come from disk
    make_stage(registry, index_cache_dir=str(tmp_path / "cache")).process(
        table(["Why is grass green?"]), make_ctx(ScriptedLLM(lambda p: "Decision: NO"), emb2))
    assert emb2.calls == 1
    np.testing.assert_allclose(np.load(saved[0]), emb.encode(ALPHA + BETA))


def test_an_edited_benchmark_file_changes_the_fingerprint_inputs_and_rebuilds_the_index(registry, make_ctx,
                                                                                      tmp_path):
    from decontam_fakes import BagOfWordsEmbedder, ScriptedLLM
    stage = make_stage(registry, index_cache_dir=str(tmp_path / "cache"))
    before = stage.side_inputs()
    assert {f["sha256"] for s in before for f in s["files"]} and len(stage.index().questions) == 5
    extra = "What is the boiling point of water at sea level in kelvin?"
    with open(tmp_path / "alpha.jsonl", "a") as fh:
        fh.write(json.dumps({"q": {"text": extra}}) + "\n")
    assert stage.side_inputs() != before
    out = stage.process(table([extra]), make_ctx(ScriptedLLM(lambda p: "Decision: NO"), BagOfWordsEmbedder()))
    assert dict(out.dropped) == {0: "contaminated_exact"} and len(stage.index().questions) == 6
    assert len(list((tmp_path / "cache").glob("benchmark-embeddings-*"))) == 0   # exact match: no embedding


def test_no_judge_needed_when_all_short_circuit(registry, make_ctx):
    class Boom:
        def __getattr__(self, name):
            raise AssertionError("the judge and the embedder must not be touched")
    out = make_stage(registry).process(table([ALPHA[1]]), make_ctx(Boom(), Boom()))
    assert dict(out.dropped) == {0: "contaminated_exact"} and out.kept.num_rows == 0


def test_parameters_checked():
    cls = stage_class("decontaminate")
    for bad in ({"top_k": 0}, {"ngram": 5, "ngram_min_words": 8}, {"min_similarity": 2},
                {"question_field": ""}, {"benchmarks": []}, {"judge": "x"}, {"search_device": "tpu"}):
        with pytest.raises(StageError):
            cls(bad)
    s = cls({"question_field": "refined_question"})
    assert "refined_question" in s.inputs
    with pytest.raises(StageError, match="refined_question"):
        s.check_schema(pa.schema([("id", pa.string()), ("provenance", pa.string()), ("question", pa.string())]))


def test_unknown_benchmark_is_a_clear_error_before_work(registry, tmp_path):
    with pytest.raises(StageError, match="'decontaminate': unknown benchmark or set 'nope'"):
        stage_class("decontaminate")({"registry": registry, "benchmarks": ["nope"]})
    with pytest.raises(StageError, match="cannot read"):
        stage_class("decontaminate")({"registry": str(tmp_path / "missing.yaml")})
    # the packaged registry has both sets the shipped pipelines use
    for name in ("paper", "offline"):
        stage_class("decontaminate")({"benchmarks": name})


def test_report(tmp_path):
    counters = {"contaminated:mmlu:exact": 2, "contaminated:mmlu:judge": 5, "contaminated:gsm8k:ngram": 1,
                "contaminated:medqa:us:judge": 1, "judge_calls": 40, "unparseable_judgement": 3,
                "judge_generation_length": 1, "rows_in": 99}
    rep = dc.contamination_report(counters)
    assert rep["benchmarks"]["mmlu"] == {"exact": 2, "ngram": 0, "judge": 5, "total": 7}
    assert rep["benchmarks"]["medqa:us"]["judge"] == 1          # benchmark names may contain ':'
    assert rep["total"] == {"exact": 2, "ngram": 1, "judge": 6, "total": 9}
    assert rep["judge"] == {"judge_calls": 40, "unparseable_judgement": 3, "judge_generation_length": 1}
    md, js = dc.write_contamination_report(counters, tmp_path / "r")
    assert "| mmlu | 2 | 0 | 5 | 7 |" in md.read_text()
    assert "| **total** | 2 | 1 | 6 | 9 |" in md.read_text()
    assert json.loads(js.read_text()) == rep
    assert not list((tmp_path / "r").glob("*.tmp"))


@pytest.mark.parametrize("name", ["decontam_judge", "decontam_judge_brief"])
def test_judge_prompts_render_both_questions(name):
    from megascience_build.engine.prompts import load_prompt
    tmpl = load_prompt(name)
    assert tmpl.fields == {"question", "candidate"}
    msgs = tmpl.render(question="Q-ONE {x}", candidate="Q-TWO $\\frac{1}{2}$")
    assert msgs[0]["role"] == "system" and "Q-ONE {x}" in msgs[-1]["content"]
    assert "Q-TWO $\\frac{1}{2}$" in msgs[-1]["content"] and "Decision: YES" in msgs[-1]["content"]


def test_shards_in_flight_build_the_benchmark_index_once(registry, monkeypatch):
    """Shards in flight share the stage object: the first shard builds the index, the others wait for it
    (they used to build it, and embed the benchmark questions, once each)."""
    import threading
    import time

    built = []
    real = dc.benchmark_index

    def counted(*args, **kwargs):
        built.append(threading.current_thread().name)
        time.sleep(0.2)          # long enough for every thread to ask while the first one builds
        return real(*args, **kwargs)

    monkeypatch.setattr(dc, "benchmark_index", counted)
    stage = make_stage(registry)
    indexes = []
    threads = [threading.Thread(target=lambda: indexes.append(stage.index())) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(built) == 1 and len(indexes) == 4 and all(i is indexes[0] for i in indexes)
