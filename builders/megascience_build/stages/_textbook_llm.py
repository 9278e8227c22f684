"""What the TextbookReasoning stages share: the seven disciplines and their spellings, and one row's
provenance with a step appended (the request flow and the step itself are engine/llm_stage.py's).
"""
from __future__ import annotations

import json
from typing import Any, Mapping


# The seven disciplines of the paper and the spellings accepted for each in the `subject` column.
DISCIPLINES = ("mathematics", "physics", "chemistry", "biology", "medicine", "computer_science", "economics")
_SUBJECT_ALIASES = {
    "math": "mathematics", "maths": "mathematics", "mathematics": "mathematics",
    "physics": "physics", "chemistry": "chemistry", "biology": "biology", "medicine": "medicine",
    "cs": "computer_science", "computer science": "computer_science", "computer_science": "computer_science",
    "computer-science": "computer_science", "economics": "economics",
}


def discipline_of(subject: Any) -> str | None:
    """The discipline key (prompt file suffix) for a subject value, or None if it is not one of the seven."""
    if not isinstance(subject, str):
        return None
    return _SUBJECT_ALIASES.get(" ".join(subject.strip().lower().split()))


def provenance_with_step(prov: str, step: Mapping[str, Any], signals: Mapping[str, Any] | None = None,
                         origin: Mapping[str, Any] | None = None) -> str:
    """One row's provenance JSON with a step appended (and signals merged, origin replaced if given).

    records.add_step appends the same step to a whole table; stages whose rows carry different steps
    (extraction: a prompt per discipline and standard) build each row's provenance with this.
    """
    data = json.loads(prov) if prov else {}
    if origin is not None:
        data["origin"] = dict(origin)
    data.setdefault("origin", {})
    data.setdefault("steps", []).append(dict(step))
    data.setdefault("signals", {}).update(signals or {})
    return json.dumps(data, sort_keys=True, ensure_ascii=False)


def __getattr__(name: str):
    """PROMPT_FILES: stage name -> {slot: default prompt file} of the five TextbookReasoning LLM stages, read
    from the stage classes (their `default_prompts`), for tests that fill every slot with its default."""
    if name == "PROMPT_FILES":
        from .catalogue import builtin_class
        return {stage: dict(builtin_class(stage).default_prompts)
                for stage in ("extract_qa", "refine_qa", "cot", "filter_qa", "reference_answer")}
    raise AttributeError(name)
