"""Helpers shared by the TextbookReasoning LLM stages (extract, refine, cot, filter, reference answer).

No stage is registered here. The helpers keep the conventions in one place: how a request is built from
a prompt slot, how a non-"stop" finish becomes a drop reason, and how a step is recorded.
"""
from __future__ import annotations

import json
from typing import Any, Mapping

from ..backends.base import GenerationRequest, GenerationResult

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


def failure_reason(result: GenerationResult) -> str | None:
    """None for a complete answer; otherwise the drop reason `generation_<finish_reason>`."""
    return None if result.finish_reason == "stop" else f"generation_{result.finish_reason}"


def request(ctx, slot: str, sampling=None, **fields: str) -> GenerationRequest:
    return GenerationRequest(messages=ctx.prompt(slot).render(**fields), sampling=sampling or ctx.sampling)


def model_ref(llm) -> dict[str, str]:
    return {"model": getattr(llm, "model_id", None), "revision": getattr(llm, "revision", None)}


def prompt_ref(ctx, slot: str, key: str = "prompt") -> dict[str, str]:
    tmpl = ctx.prompt(slot)
    return {key: tmpl.name, f"{key}_sha256": tmpl.sha256}


def bump(counters: dict[str, int], key: str, n: int = 1) -> None:
    counters[key] = counters.get(key, 0) + n


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


# Default prompt file of every slot of these stages, for pipeline files (`prompts:`) and tests.
PROMPT_FILES = {
    "extract_qa": {f"{s}_{d}": f"extract_{s}_{d}.txt" for s in ("high", "low") for d in DISCIPLINES},
    "refine_qa": {"refine": "refine_qa.txt"},
    "cot": {"judge": "judge_cot.txt", "supplement": "supplement_cot.txt", "distill": "distill_cot.txt"},
    "filter_qa": {"filter": "filter_qa.txt"},
    "reference_answer": {"reference": "reference_answer.txt"},
}
