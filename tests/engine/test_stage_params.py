"""Typed stage parameters: a pipeline's `params:` is checked against each stage's dataclass, and every error
names the pipeline file, the stage, the parameter and what it expects."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pytest
import yaml

from megascience_build.engine.params import ParamError, param, params_dict, parse_params
from megascience_build.engine.pipeline_config import load_pipeline
from megascience_build.engine.stage import StageError
from megascience_build.stages.refine_qa import RefineQA


def pipeline(tmp_path, stage: dict) -> str:
    doc = {"name": "p", "input": {"parquet": ["in.parquet"]},
           "models": {"m": {"backend": "scripted", "model": "fake/model"}},
           "stages": [{"stage": "chunk", "label": "chunks"}, {"llm": "m", **stage}]}
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@pytest.mark.parametrize("params, expected", [
    ({"max_chunk_chars": "long"}, ["parameter 'max_chunk_chars' must be a positive integer, got 'long'"]),
    ({"max_chunk_chars": 0}, ["parameter 'max_chunk_chars' must be a positive integer, got 0"]),
    ({"max_chunk_chars": True}, ["'max_chunk_chars' must be a positive integer, got True"]),
    ({"on_unparseable": "keep"}, ["parameter 'on_unparseable' must be one of ['drop', 'keep_extracted'], got 'keep'"]),
    ({"max_chunk_char": 10}, ["unknown parameter(s) ['max_chunk_char']", "accepted: ['max_chunk_chars', 'on_unparseable']"]),
])
def test_a_bad_parameter_names_file_stage_field_and_expected(tmp_path, params, expected):
    path = pipeline(tmp_path, {"stage": "refine_qa", "label": "refine", "params": params})
    with pytest.raises(StageError) as err:
        load_pipeline(path)
    message = str(err.value)
    for part in [str(path), "stage #1", "'refine'", "field 'params'", *expected]:
        assert part in message, message


def test_list_union_and_cross_field_checks(tmp_path):
    with pytest.raises(StageError, match=r"'standards' must be a list of 'high' \| 'low' values, got \['medium'\]"):
        load_pipeline(pipeline(tmp_path, {"stage": "extract_qa", "params": {"standards": ["medium"]}}))
    with pytest.raises(StageError, match="'standards' must be a non-empty list"):
        load_pipeline(pipeline(tmp_path, {"stage": "extract_qa", "params": {"standards": ["high", "high"]}}))
    with pytest.raises(StageError, match=r"'benchmarks' must be a string or a list of str values, got 3"):
        load_pipeline(pipeline(tmp_path, {"stage": "decontaminate", "params": {"benchmarks": 3}}))
    with pytest.raises(StageError, match=r"'min_similarity' must be a number >= -1 and <= 1 or null, got 2"):
        load_pipeline(pipeline(tmp_path, {"stage": "decontaminate", "params": {"min_similarity": 2}}))


def test_values_are_kept_as_given_for_manifest_and_fingerprint(tmp_path):
    cfg = load_pipeline(pipeline(tmp_path, {"stage": "refine_qa", "params": {"max_chunk_chars": 1000}}))
    stage = cfg.stages[1].stage
    assert stage.settings.max_chunk_chars == 1000
    assert stage.describe()["params"] == {"max_chunk_chars": 1000, "on_unparseable": "drop"}
    assert list(stage.params) == ["max_chunk_chars", "on_unparseable"]          # declaration order
    # an int given for a float parameter stays an int (no coercion: the fingerprint sees what the file says)
    assert parse_params(_Demo, {"ratio": 1}, "s").ratio == 1 and type(parse_params(_Demo, {"ratio": 1}, "s").ratio) is int


def test_a_left_out_required_prompt_gets_the_stage_default(tmp_path):
    cfg = load_pipeline(pipeline(tmp_path, {"stage": "refine_qa"}))
    assert cfg.stages[1].prompts["refine"].name == "refine_qa"
    assert cfg.stages[1].stage.prompts == {"refine": "refine_qa.txt"}
    given = load_pipeline(pipeline(tmp_path, {"stage": "cot", "prompts": {"judge": "judge_cot.txt",
                                                                          "supplement": "supplement_cot.txt"}}))
    assert given.stages[1].stage.prompts == {"judge": "judge_cot.txt", "supplement": "supplement_cot.txt"}


@dataclass(frozen=True)
class _Demo:
    ratio: float = param(0.5, "a ratio", min=0, max=1)
    mode: Literal["a", "b"] = param("a", "a mode")
    names: list[str] = param([], "names")
    limits: dict[str, int] | None = param(None, "limits")


def test_validator_on_its_own():
    assert params_dict(parse_params(_Demo, None, "s")) == {"ratio": 0.5, "mode": "a", "names": [], "limits": None}
    a, b = parse_params(_Demo, {}, "s"), parse_params(_Demo, {}, "s")
    assert a.names is not b.names                                    # a mutable default is copied
    for given, expected in (({"ratio": 2}, "a number >= 0 and <= 1"), ({"mode": "c"}, "one of ['a', 'b']"),
                            ({"names": "x"}, "a list of str values"), ({"names": [1]}, "a list of str values"),
                            ({"limits": {"x": "1"}}, "a mapping dict[str, int] or null")):
        with pytest.raises(ParamError, match=f"stage 's': parameter '{list(given)[0]}' must be "):
            parse_params(_Demo, given, "s")
        with pytest.raises(ParamError) as err:
            parse_params(_Demo, given, "s")
        assert expected in str(err.value)
    with pytest.raises(StageError, match="stage 'r': unknown parameter"):
        RefineQA({"nope": 1}, label="r")


# Every stage's parameters and defaults, in order, as manifests and shard fingerprints have always recorded them
# (the `defaults` dictionaries the stages had before their parameters were typed): a change here changes
# every fingerprint of that stage.
RECORDED_DEFAULTS = {
    "ingest_books": {"root": None}, "book_dedup": {},
    "book_metadata": {"use_declared": True, "fallback_to_declared": True, "excerpt_chars": 2000,
                      "min_level": "undergraduate"},
    "chunk": {"tokenizer": "minilm", "tokenizer_revision": None, "window_tokens": 4096, "overlap_tokens": 0,
              "min_fill": 0.5},
    "extract_qa": {"standards": ["high", "low"]},
    "dedup_questions": {"mode": "paper", "column": "question", "threshold": 0.6, "num_perm": 128, "bands": None,
                        "rows": None, "ngram": 3, "verify": "exact", "min_tokens": 0, "false_positive_weight": 0.2,
                        "false_negative_weight": 0.8, "seed": None, "threads": None},
    "refine_qa": {"max_chunk_chars": 20000, "on_unparseable": "drop"},
    "cot": {"mode": "paper", "on_unparseable": "keep", "supplement_llm": None},
    "filter_qa": {"on_unparseable": "drop"},
    "decontaminate": {"registry": None, "benchmarks": "paper", "question_field": "question", "ngram": 13,
                      "ngram_min_words": 8, "frequent_phrases": [], "top_k": 5, "min_similarity": None,
                      "drop_if_all_unparseable": False, "index_cache_dir": None, "search_device": "cpu"},
    "reference_answer": {"on_generation_failure": "drop"}, "finalize": {},
    "adapt_source": {"source": None, "revision": None, "answer_field": "r1_response"},
    "response_length": {"tokenizer": "Qwen/Qwen2.5-7B-Instruct", "max_response_tokens": 10000},
    "difficulty": {"samples": 16, "policy_role": "policy", "grader_role": "grader", "grader_temperature": 0.0,
                   "grader_top_p": 1.0, "grader_max_tokens": 2048, "ungraded_as_zero": False},
    "random_signal": {"seed": None},
    "select_subsets": {"parent": None, "low": 1.0, "high": 9.0, "strict": True, "seed": None, "distill_below": None},
    "keep_subset": {"column": None},
    "annotate_solution": {"tokenizer": "deepseek-ai/DeepSeek-V3", "max_answer_tokens": 4096, "only_where": None,
                          "on_failure": "drop"},
    "mixture": {"sources": ["TextbookReasoning", "NaturalReasoning", "Nemotron-Science"], "expect": None},
}


def test_every_stages_defaults_are_the_recorded_ones():
    from megascience_build.engine.params import default_of, fields_of
    from megascience_build.stages.catalogue import builtin_stages
    found = {cls.name: {f.name: default_of(f) for f, _ in fields_of(cls.Params)} for cls in builtin_stages()}
    assert {n: list(d.items()) for n, d in found.items()} == {n: list(d.items()) for n, d in RECORDED_DEFAULTS.items()}
