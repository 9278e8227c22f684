"""Stage 10: project to the released TextbookReasoning schema plus `id` and provenance.

Columns out, in order: id, question, answer, subject, reference_answer, provenance (all strings).
Text fields are stripped of surrounding whitespace; a row with an empty question or answer is dropped
as `empty_field`. `subject` is written in the lowercase short form seen in the released data
(the paper's description of the released data: `math`, `physics`, `chemistry`, `biology`, `medicine`, `cs`; `economics` assumed):

    mathematics -> math         computer science -> cs         economics -> economics
    physics, chemistry, biology, medicine -> unchanged (lowercased)

Any other value is kept lowercased (the released value set is not published, so `subject` stays an
open string) and counted as `subject_unmapped`.
"""
from __future__ import annotations

import pyarrow as pa

from ..engine import records
from ..engine.stage import Stage, StageOutput
from .disciplines import discipline_of

RELEASED_SUBJECT = {"mathematics": "math", "physics": "physics", "chemistry": "chemistry", "biology": "biology",
                    "medicine": "medicine", "computer_science": "cs", "economics": "economics"}
RELEASED_COLUMNS = ("question", "answer", "subject", "reference_answer")
OUTPUT_SCHEMA = pa.schema([(records.ID, pa.string()), *((c, pa.string()) for c in RELEASED_COLUMNS),
                           (records.PROVENANCE, pa.string())])


def released_subject(subject: object) -> tuple[str, bool]:
    """(released value, whether it was one of the seven disciplines)."""
    key = discipline_of(subject)
    if key:
        return RELEASED_SUBJECT[key], True
    return (subject.strip().lower() if isinstance(subject, str) else ""), False


class Finalize(Stage):
    name = "finalize"
    summary = "the released schema (question, answer, subject, reference_answer) plus id and provenance"
    kind = "map"
    inputs = (records.ID, records.PROVENANCE, *RELEASED_COLUMNS)
    outputs = RELEASED_COLUMNS

    def output_columns(self, input_names):
        return list(OUTPUT_SCHEMA.names)

    def process(self, batch: pa.Table, ctx) -> StageOutput:
        counters: dict[str, int] = {}
        dropped: list[tuple[int, str]] = []
        out: list[dict] = []
        for i, row in enumerate(batch.select(list(OUTPUT_SCHEMA.names)).to_pylist()):
            question = (row["question"] or "").strip()
            answer = (row["answer"] or "").strip()
            if not question or not answer:
                dropped.append((i, "empty_field"))
                continue
            subject, known = released_subject(row["subject"])
            if not known:
                counters["subject_unmapped"] = counters.get("subject_unmapped", 0) + 1
            out.append({**row, "question": question, "answer": answer, "subject": subject,
                        "reference_answer": (row["reference_answer"] or "").strip()})
        kept = pa.Table.from_pylist(out, schema=OUTPUT_SCHEMA)
        if len(kept):
            kept = records.add_step(kept, {"stage": self.label})
        counters["empty_field"] = len(dropped)
        return StageOutput(kept=kept, dropped=dropped, counters=counters)
