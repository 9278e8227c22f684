"""The prompt files of the TextbookReasoning LLM stages: present, well-formed, and asking for exactly the
formats the parsers read."""
from __future__ import annotations

import pytest

from megascience_build.engine.prompts import load_prompt
from megascience_build.stages.extract_qa import parse_qa_pairs
from megascience_build.stages.reference_answer import parse_reference_answer
from megascience_build.stages.refine_qa import parse_refined
from megascience_build.stages.replies import parse_decision
from megascience_build.stages.catalogue import builtin_class
from megascience_build.stages.disciplines import DISCIPLINES

# stage -> {slot: default prompt file} of the five TextbookReasoning LLM stages, from the stage classes
PROMPT_FILES = {stage: dict(builtin_class(stage).default_prompts)
                for stage in ("extract_qa", "refine_qa", "cot", "filter_qa", "reference_answer")}
from megascience_build.stages.extract_qa import ExtractQA

FIELDS = {"refine_qa": {"chunk", "question", "answer"}, "judge_cot": {"question", "answer"},
          "supplement_cot": {"question", "answer"}, "distill_cot": {"question"},
          "filter_qa": {"question", "answer"}, "reference_answer": {"question", "answer"}}
NAMES = {"computer_science": "computer science"}


def test_every_slot_has_a_prompt_file():
    files = [f for slots in PROMPT_FILES.values() for f in slots.values()]
    assert len(files) == 14 + 1 + 3 + 1 + 1
    for f in files:
        load_prompt(f)
    assert set(ExtractQA.prompt_slots) == set(PROMPT_FILES["extract_qa"])


@pytest.mark.parametrize("discipline", DISCIPLINES)
def test_extraction_prompts_per_discipline(discipline):
    name = NAMES.get(discipline, discipline)
    high, low = load_prompt(f"extract_high_{discipline}"), load_prompt(f"extract_low_{discipline}")
    for tmpl in (high, low):
        assert tmpl.fields == {"chunk"} and tmpl.system
        assert "NO_QA" in tmpl.user and "Question: <" in tmpl.user and "Answer: <" in tmpl.user
        assert name in tmpl.user
        rendered = tmpl.render(chunk="CHUNK-TEXT {{not a field}} $x^{2}$")[-1]["content"]
        assert "CHUNK-TEXT {{not a field}} $x^{2}$" in rendered
    assert "several steps of reasoning" in high.user and "complete worked solution" in high.user
    assert "every complete" in low.user and "stand alone" in low.user


def test_extraction_prompts_differ_between_disciplines():
    users = {load_prompt(f).user for f in PROMPT_FILES["extract_qa"].values()}
    assert len(users) == 14


@pytest.mark.parametrize("name", sorted(FIELDS))
def test_other_prompts_fields(name):
    assert load_prompt(name).fields == FIELDS[name]


def test_prompts_ask_for_what_the_parsers_read():
    refine = load_prompt("refine_qa").user
    assert "UNUSABLE" in refine and "\\boxed{}" in refine
    # the format lines of each prompt, filled in as a model would, parse
    assert parse_refined("Refined Question: q?\nRefined Answer: a") is not None
    for name in ("judge_cot", "filter_qa"):
        assert '"Decision: YES"' in load_prompt(name).user and '"Decision: NO"' in load_prompt(name).user
        assert parse_decision("Analysis: x\nDecision: YES") is True
    assert "Decision: YES" in load_prompt("judge_cot").user and "Decision: NO" in load_prompt("judge_cot").user
    assert 'starts with "Reference Answer:"' in load_prompt("reference_answer").user
    assert parse_reference_answer("Reference Answer: 80 km/h") == "80 km/h"
    assert "\\boxed{}" in load_prompt("distill_cot").user and "\\boxed{}" in load_prompt("supplement_cot").user
    assert parse_qa_pairs("Question: q\nAnswer: a") == [("q", "a")]
