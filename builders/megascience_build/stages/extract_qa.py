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

import pyarrow as pa

from ..engine import records
from ..engine.stage import Stage, StageError, StageOutput, register
from ..parsers import parse_qa_pairs
from ._textbook_llm import PROMPT_FILES, bump, discipline_of, failure_reason, model_ref, provenance_with_step, request

STANDARDS = ("high", "low")
OUTPUT_SCHEMA = pa.schema([
    (records.ID, pa.string()), ("question", pa.string()), ("answer", pa.string()), ("subject", pa.string()),
    ("chunk_id", pa.string()), ("chunk_text", pa.string()), ("standard", pa.string()),
    (records.PROVENANCE, pa.string()),
])


@register
class ExtractQA(Stage):
    name = "extract_qa"
    kind = "map"
    inputs = (records.ID, records.PROVENANCE, "subject")          # plus `chunk_text` or `text`
    outputs = ("question", "answer", "chunk_id", "standard")
    prompt_slots = tuple(PROMPT_FILES["extract_qa"])
    defaults = {"standards": ["high", "low"]}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        standards = self.params["standards"]
        if (not isinstance(standards, (list, tuple)) or not standards
                or any(s not in STANDARDS for s in standards) or len(set(standards)) != len(standards)):
            raise StageError(f"stage {self.label!r}: parameter 'standards' must be a non-empty list drawn from "
                             f"{list(STANDARDS)} without repeats, got {standards!r}")

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
        counters: dict[str, int] = {}
        dropped: list[tuple[int, str]] = []
        jobs: list[tuple[int, str, str]] = []        # (chunk position, standard, slot)
        reqs = []
        for i, row in enumerate(rows):
            discipline = discipline_of(row.get("subject"))
            if discipline is None:
                dropped.append((i, "unknown_subject"))
                continue
            text = row.get(text_column)
            row["chunk_text"] = text
            if not isinstance(text, str) or not text.strip():
                dropped.append((i, "empty_chunk"))
                continue
            for standard in self.params["standards"]:
                slot = f"{standard}_{discipline}"
                jobs.append((i, standard, slot))
                reqs.append(request(ctx, slot, chunk=text))

        llm = ctx.llm()
        results = llm.generate(reqs) if reqs else []
        model = model_ref(llm)
        out: list[dict] = []
        outcome: dict[int, list[str]] = {}           # chunk position -> reasons of requests that gave no pair
        for (i, standard, slot), result in zip(jobs, results):
            failed = failure_reason(result)
            pairs = None if failed else parse_qa_pairs(result.text)
            if failed:
                bump(counters, f"{standard}_{failed}")
                outcome.setdefault(i, []).append(failed)
                continue
            if pairs is None:
                bump(counters, f"{standard}_unparseable")
                outcome.setdefault(i, []).append("unparseable")
                continue
            if not pairs:
                bump(counters, f"{standard}_no_qa")
                outcome.setdefault(i, []).append("no_qa")
                continue
            bump(counters, f"{standard}_pairs", len(pairs))
            out.extend(self._pair_rows(rows[i], standard, ctx.prompt(slot), model, pairs))

        with_pairs = {r["chunk_id"] for r in out}
        for i, reasons in sorted(outcome.items()):
            if rows[i][records.ID] in with_pairs:
                continue
            generation = [r for r in reasons if r.startswith("generation_")]
            dropped.append((i, generation[0] if generation else
                            "unparseable" if "unparseable" in reasons else "no_qa"))
        counters["chunks_with_pairs"] = len(with_pairs)
        counters["pairs"] = len(out)
        kept = pa.Table.from_pylist(out, schema=OUTPUT_SCHEMA)
        return StageOutput(kept=kept, dropped=sorted(dropped), counters=counters)

    def _pair_rows(self, chunk: dict, standard: str, tmpl, model: dict, pairs: list[tuple[str, str]]):
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
        step = {"stage": self.label, **model, "prompt": tmpl.name, "prompt_sha256": tmpl.sha256, "standard": standard}
        for k, (question, answer) in enumerate(pairs):
            yield {
                records.ID: records.content_id(chunk_id, standard, k),
                "question": question, "answer": answer, "subject": chunk.get("subject"),
                "chunk_id": chunk_id, "chunk_text": chunk["chunk_text"], "standard": standard,
                records.PROVENANCE: provenance_with_step(prov, {**step, "pair_index": k}, origin=origin),
            }
