"""Stage 3: extract question-answer pairs from textbook chunks (paper §2.2, Table 1).

Each chunk is sent to its discipline's high-standard prompt (multi-step problems whose full solution is
in the text) and/or low-standard prompt (any complete, self-contained question with its answer); the
paper ran both and kept both outputs. Prompt slots are `high_<discipline>` / `low_<discipline>`,
files `prompts/extract_{high,low}_<discipline>.txt`.

Rows out are QA pairs, not chunks: one chunk yields zero or more pairs. Therefore the `dropped` list
names INPUT CHUNK positions: a chunk is dropped when none of its requests produced a pair, with the
reason of its most telling failure: `generation_<finish_reason>` if a request failed, else `unparseable`
if a reply could not be read, else `no_qa` (every reply said NO_QA). Per-request outcomes are in the
counters (`<standard>_pairs`, `<standard>_no_qa`, `<standard>_unparseable`, `<standard>_generation_length`,
...), and `chunks_with_pairs` is the paper's "valid chunks" of Table 1. Chunks whose subject is not one
of the seven disciplines are dropped as `unknown_subject`, empty chunks as `empty_chunk`.

Input: the rows of the `chunk` stage. The chunk text is read from `chunk_text` or, failing that, `text`
(the chunk stage's name); the page span from `pages`, or `page_start`/`page_end`, or the provenance origin.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal, Mapping

import pyarrow as pa

from ..engine import records
from ..engine.llm_stage import LLMStage, Outcome
from ..engine.params import param
from ..engine.stage import StageError, StageOutput
from .disciplines import DISCIPLINES, discipline_of
from .replies import clean

STANDARDS = ("high", "low")
OUTPUT_SCHEMA = pa.schema([
    (records.ID, pa.string()), ("question", pa.string()), ("answer", pa.string()), ("subject", pa.string()),
    ("chunk_id", pa.string()), ("chunk_text", pa.string()), ("standard", pa.string()),
    (records.PROVENANCE, pa.string()),
])

# A label at the start of a line, with the decorations small models add: markdown bold/italics,
# headings, list bullets, numbering ("Question 2:", "2. Question:", "Q2:"), full-width colon.
_QA_LABEL = re.compile(
    r"^[ \t>#*_\-]*(?:\d+[.)][ \t]*)?[*_]*"
    r"(?P<kind>question|answer|solution|the answer is|q|a)"
    r"(?:[ \t]*\#?[ \t]*\d+)?[ \t]*[*_]*[ \t]*[:：][ \t]*[*_]*[ \t]*",
    re.I | re.M)
_INLINE_ANSWER = re.compile(r"[ \t]+[*_]*answer[*_]*[ \t]*[:：][*_]*[ \t]*", re.I)
_NUMBERED_ITEM = re.compile(r"^[ \t]*\d+[.)][ \t]+(?P<q>\S[^\n]*?)[ \t]+[*_]*answer[*_]*[ \t]*[:：][*_]*[ \t]*(?P<a>\S[^\n]*)$",
                            re.I | re.M)
# The "no pair here" marker, alone on its line, possibly bracketed or bold ("[NO QA]", "**NO_QA**").
_NO_QA_LINE = re.compile(r"^[ \t*_\[(`\"']*NO[ _\-]?QA[ \t*_\])`\"'.]*$", re.I | re.M)


def parse_qa_pairs(text: object) -> list[tuple[str, str]] | None:
    """Question/answer pairs from an extraction reply.

    Returns the pairs in order; [] when the model said NO_QA and gave no pair; None when the reply
    has neither a complete pair nor the NO_QA marker (unparseable). A question with no answer
    before the next question is skipped, never merged into its neighbour; a pair repeated verbatim
    (small models loop) is kept once. Labels count only at the start of a line, so a "question:"
    inside a sentence does not cut an answer short; the one exception is a one-line
    "Question: ... Answer: ..." with no answer label after it. With no labelled pair at all, a
    numbered exercise line "3. <question> Answer: <answer>" counts as a pair.
    """
    if not isinstance(text, str):
        return None
    try:
        labels = list(_QA_LABEL.finditer(text))
        pairs: list[tuple[str, str]] = []

        def add(q: str, a: str) -> None:
            q, a = clean(_NO_QA_LINE.sub("", q)), clean(_NO_QA_LINE.sub("", a))
            if q and a and (q, a) not in pairs:
                pairs.append((q, a))

        question: str | None = None
        for i, m in enumerate(labels):
            end = labels[i + 1].start() if i + 1 < len(labels) else len(text)
            body = text[m.end():end]
            kind = m.group("kind").lower()
            next_is_answer = i + 1 < len(labels) and labels[i + 1].group("kind").lower() not in ("question", "q")
            if kind in ("question", "q"):
                inline = _INLINE_ANSWER.search(body)
                if inline and not next_is_answer:          # "Question: ... Answer: ..." on one line
                    add(body[:inline.start()], body[inline.end():])
                    question = None
                else:
                    question = body
            elif question is not None:
                add(question, body)
                question = None
        if not pairs:                                      # a numbered exercise list: "3. ... Answer: ..."
            for m in _NUMBERED_ITEM.finditer(text):
                add(m.group("q"), m.group("a"))
        if pairs:
            return pairs
        return [] if _NO_QA_LINE.search(text) else None
    except Exception:  # noqa: BLE001 - a parser of model output must never raise
        return None


class ExtractQA(LLMStage):
    name = "extract_qa"
    summary = "question-answer pairs from each chunk, high and low standard (paper §2.2; Llama-3.3-70B-Instruct)"
    inputs = (records.ID, records.PROVENANCE, "subject")          # plus `chunk_text` or `text`
    outputs = ("question", "answer", "chunk_id", "standard")
    default_prompts = {f"{s}_{d}": f"extract_{s}_{d}.txt" for s in STANDARDS for d in DISCIPLINES}

    @dataclass(frozen=True)
    class Params:
        standards: list[Literal["high", "low"]] = param(
            ["high", "low"], "the extraction standards to run on each chunk (the paper ran both)")

        def __post_init__(self):
            if not self.standards or len(set(self.standards)) != len(self.standards):
                raise ValueError(f"parameter 'standards' must be a non-empty list drawn from {list(STANDARDS)} "
                                 f"without repeats, got {self.standards!r}")

    def check_schema(self, schema: pa.Schema) -> None:
        super().check_schema(schema)
        if "chunk_text" not in schema.names and "text" not in schema.names:
            raise StageError(f"stage {self.label!r} needs the chunk text in column 'chunk_text' or 'text', "
                             f"but its input has only {schema.names}")

    def output_columns(self, input_names):
        return list(OUTPUT_SCHEMA.names)

    def process(self, batch: pa.Table, ctx) -> StageOutput:
        rows = batch.to_pylist()
        text_column = "chunk_text" if "chunk_text" in batch.column_names else "text"
        out = Outcome()
        jobs: list[tuple[int, str, str]] = []        # (chunk position, standard, slot)
        reqs = []
        for i, row in enumerate(rows):
            discipline = discipline_of(row.get("subject"))
            if discipline is None:
                out.drop(i, "unknown_subject")
                continue
            text = row.get(text_column)
            row["chunk_text"] = text
            if not isinstance(text, str) or not text.strip():
                out.drop(i, "empty_chunk")
                continue
            for standard in self.settings.standards:
                jobs.append((i, standard, f"{standard}_{discipline}"))
                reqs.append(self.request(ctx, jobs[-1][2], chunk=text))

        llm = ctx.llm()
        results = llm.generate(reqs) if reqs else []
        pair_rows: list[dict] = []
        outcome: dict[int, list[str]] = {}           # chunk position -> reasons of requests that gave no pair
        for (i, standard, slot), result in zip(jobs, results):
            failed = self.failure(result)
            pairs = None if failed else parse_qa_pairs(result.text)
            reason = failed or ("unparseable" if pairs is None else None if pairs else "no_qa")
            if reason:
                out.count(f"{standard}_{reason}")
                outcome.setdefault(i, []).append(reason)
                continue
            out.count(f"{standard}_pairs", len(pairs))
            pair_rows.extend(self._pair_rows(rows[i], standard, self.step(ctx, llm, slot, standard=standard), pairs))

        with_pairs = {r["chunk_id"] for r in pair_rows}
        for i, reasons in sorted(outcome.items()):
            if rows[i][records.ID] in with_pairs:
                continue
            generation = [r for r in reasons if r.startswith("generation_")]
            out.drop(i, generation[0] if generation else "unparseable" if "unparseable" in reasons else "no_qa")
        out.counters["chunks_with_pairs"] = len(with_pairs)
        out.counters["pairs"] = len(pair_rows)
        kept = pa.Table.from_pylist(pair_rows, schema=OUTPUT_SCHEMA)
        return StageOutput(kept=kept, dropped=sorted(out.dropped), counters=out.counters)

    def _pair_rows(self, chunk: dict, standard: str, step: dict, pairs: list[tuple[str, str]]):
        chunk_id = chunk[records.ID]
        prov = chunk.get(records.PROVENANCE) or "{}"
        try:
            origin = dict(json.loads(prov).get("origin") or {})
        except (ValueError, AttributeError):
            raise StageError(f"stage {self.label!r}: row {chunk_id!r} field 'provenance' is not a JSON object") from None
        origin["chunk_id"] = chunk_id
        for key in ("book_id", "pages", "chunk_index"):
            if chunk.get(key) is not None:
                origin[key] = chunk[key]
        if chunk.get("pages") is None and chunk.get("page_start") is not None:
            origin["pages"] = [chunk["page_start"], chunk.get("page_end", chunk["page_start"])]
        for k, (question, answer) in enumerate(pairs):
            yield {
                records.ID: records.content_id(chunk_id, standard, k),
                "question": question, "answer": answer, "subject": chunk.get("subject"),
                "chunk_id": chunk_id, "chunk_text": chunk["chunk_text"], "standard": standard,
                records.PROVENANCE: provenance_with_step(prov, {**step, "pair_index": k}, origin=origin),
            }


def provenance_with_step(prov: str, step: Mapping[str, Any], signals: Mapping[str, Any] | None = None,
                         origin: Mapping[str, Any] | None = None) -> str:
    """One row's provenance JSON with a step appended (and signals merged, origin replaced if given).

    records.add_step appends the same step to a whole table; here each pair row carries its own step (a prompt
    per discipline and standard, its pair index) and its chunk's origin.
    """
    data = json.loads(prov) if prov else {}
    if origin is not None:
        data["origin"] = dict(origin)
    data.setdefault("origin", {})
    data.setdefault("steps", []).append(dict(step))
    data.setdefault("signals", {}).update(signals or {})
    return json.dumps(data, sort_keys=True, ensure_ascii=False)
