"""The public source datasets of MegaScience and how one upstream row maps to our schema.

Our schema: question, answer (the upstream response), subject, reference_answer, source, plus `id`
(content_id(repo, split, file, row)) and provenance origin {"kind": "dataset", "repo", "revision",
"split", "file", "row"}. A row that does not fit is dropped with a reason (short snake_case).

Upstream schemas (looked up on the Hub cards and in public code that reads them):
- facebook/natural_reasoning (JSONL; the Hub's parquet conversion has the same columns):
  question: str, reference_answer: str (empty or missing for ~18% of rows),
  responses: list of {response_model: str, response: str} (Llama-3.3-70B-Instruct). No subject column.
- nvidia/Llama-Nemotron-Post-Training-Dataset, config SFT, split science (SFT/science/*.jsonl, v1.1):
  input: list of chat messages {role, content} (one user turn for science), output: str (DeepSeek-R1
  response "<think>...</think>summary"), category ("science"), license, reasoning ("on"/"off"),
  generator, system_prompt ("detailed thinking on"/"off"), used_in_training (str), version.
  The reference answer is the summary after the last </think>.
- EricLu/SCP-116K: domain, problem, matched_solution (the solution found in the source document),
  o1_solution, qwq_solution and their is_*_same_with_matched_solution flags; later revisions add
  DeepSeek-R1 columns (r1_response, r1_reasoning_content). Which response is the answer is a
  parameter (`answer_field`), default r1_response; the matched solution is the reference answer.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping

NATURAL_REASONING = "natural_reasoning"
NEMOTRON_SCIENCE = "nemotron_science"
SCP116K = "scp116k"

# The `source` column values of the mixture (the paper's names of the three datasets).
SOURCE_TEXTBOOK = "TextbookReasoning"
SOURCE_NATURAL_REASONING = "NaturalReasoning"
SOURCE_NEMOTRON = "Nemotron-Science"
SOURCE_SCP = "SCP-116K"

_SHA = re.compile(r"^[0-9a-f]{40}$")
_THINK_CLOSE = "</think>"

Mapped = dict[str, str]
Result = tuple[Mapped | None, str | None]        # (row in our schema, None) or (None, drop reason)


@dataclass(frozen=True)
class SourceSpec:
    name: str
    repo: str
    config: str | None
    split: str
    revision: str               # a full commit sha, or "main" (then resolve it with resolve_revision)
    source_value: str
    columns: tuple[str, ...]    # upstream columns the adapter reads
    adapt: Callable[[Mapping[str, Any], Mapping[str, Any]], Result]
    files: tuple[str, ...] = ("*.jsonl", "*.parquet")   # upstream files of the split (glob patterns)


def is_commit_sha(revision: str) -> bool:
    return bool(_SHA.match(revision))


def _text(value: Any) -> str | None:
    """A non-empty stripped string, or None."""
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return None


# ------------------------------------------------------------------------------------------- adapters
def adapt_natural_reasoning(row: Mapping[str, Any], params: Mapping[str, Any]) -> Result:
    question = _text(row.get("question"))
    if question is None:
        return None, "missing_question"
    responses = row.get("responses")
    if not isinstance(responses, (list, tuple)) or not responses:
        return None, "missing_response"
    first = responses[0]
    answer = _text(first.get("response")) if isinstance(first, Mapping) else None
    if answer is None:
        return None, "missing_response"
    return {"question": question, "answer": answer, "subject": "",
            "reference_answer": _text(row.get("reference_answer")) or ""}, None


def split_think(output: str) -> tuple[str, str] | None:
    """(thinking, summary) of an R1 response, split at the last </think>; None without one."""
    at = output.rfind(_THINK_CLOSE)
    if at < 0:
        return None
    thinking = output[:at].replace("<think>", "", 1).strip()
    return thinking, output[at + len(_THINK_CLOSE):].strip()


def adapt_nemotron_science(row: Mapping[str, Any], params: Mapping[str, Any]) -> Result:
    messages = row.get("input")
    if not isinstance(messages, (list, tuple)) or not messages:
        return None, "malformed_messages"
    users = []
    for m in messages:
        if not isinstance(m, Mapping) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            return None, "malformed_messages"
        if m["role"] == "user":
            users.append(m["content"])
    if len(users) != 1:
        return None, "malformed_messages" if not users else "multi_turn"
    question = _text(users[0])
    if question is None:
        return None, "missing_question"
    output = row.get("output")
    if not isinstance(output, str) or not output.strip():
        return None, "missing_response"
    parts = split_think(output)
    if parts is None:
        return None, "no_think_close"
    summary = parts[1]
    if not summary:
        return None, "empty_summary"
    return {"question": question, "answer": output.strip(), "subject": "", "reference_answer": summary}, None


def adapt_scp116k(row: Mapping[str, Any], params: Mapping[str, Any]) -> Result:
    question = _text(row.get("problem"))
    if question is None:
        return None, "missing_question"
    answer = _text(row.get(params.get("answer_field") or "r1_response"))
    if answer is None:
        return None, "missing_response"
    return {"question": question, "answer": answer, "subject": _text(row.get("domain")) or "",
            "reference_answer": _text(row.get("matched_solution")) or ""}, None


SOURCES: dict[str, SourceSpec] = {
    NATURAL_REASONING: SourceSpec(
        NATURAL_REASONING, "facebook/natural_reasoning", None, "train",
        # a commit of the dataset repo with full.jsonl (1.15M rows), seen on the Hub's tree page
        "8c9292b8932b86f90360ca6b152c2e23ca9252ab",
        SOURCE_NATURAL_REASONING, ("question", "reference_answer", "responses"), adapt_natural_reasoning,
        ("full.jsonl",)),
    NEMOTRON_SCIENCE: SourceSpec(
        NEMOTRON_SCIENCE, "nvidia/Llama-Nemotron-Post-Training-Dataset", "SFT", "science",
        "main",  # no full sha found: resolve at fetch time and pin it in the pipeline file
        SOURCE_NEMOTRON, ("input", "output"), adapt_nemotron_science, ("SFT/science/*.jsonl",)),
    SCP116K: SourceSpec(
        SCP116K, "EricLu/SCP-116K", None, "train",
        "main",  # no full sha found: resolve at fetch time and pin it in the pipeline file
        SOURCE_SCP, ("problem", "domain", "matched_solution"), adapt_scp116k,
        ("*.jsonl", "*.parquet", "data/*.jsonl", "data/*.parquet")),   # file layout not verified
}


def source_spec(name: str) -> SourceSpec:
    try:
        return SOURCES[name]
    except KeyError:
        raise ValueError(f"unknown source {name!r}; known: {sorted(SOURCES)}") from None
