"""Stage 5: refine each extracted pair with its source chunk (paper §2.4, Fig. 22).

The model sees the chunk, the question and the answer, and returns a self-contained question and a
checked, explained answer (`\\boxed{}` for exact-match results, no mention of "the text"), in the fields
`Refined Question:` / `Refined Answer:` (prompt slot `refine`, file `prompts/refine_qa.txt`). It may
instead answer `UNUSABLE` for a pair that cannot be repaired. The authors' prompt has no such way out;
we add it so a broken pair is counted instead of being rewritten into something the text never said.

Drops: `generation_<finish_reason>`, `unparseable_refinement` (no readable fields), `refine_rejected`
(UNUSABLE). The row keeps its id; question and answer are replaced in place (the extraction step of the
provenance names the chunk, standard and pair index they came from). The chunk text sent to the model
is cut to `max_chunk_chars`.

`on_unparseable: keep_extracted` keeps the extracted pair unchanged when the reply cannot be read (still
counted as `unparseable_refinement`, signal `refined: false`): for small demonstration models that never
write the two fields (SmolLM2-135M in tests/textbook_llm/fixtures), never for a real build.
"""
from __future__ import annotations

import pyarrow as pa

from ..engine import records
from ..engine.stage import Stage, StageError, StageOutput, register
from ..parsers import UNUSABLE, parse_refined
from ._textbook_llm import bump, failure_reason, model_ref, prompt_ref, request


@register
class RefineQA(Stage):
    name = "refine_qa"
    kind = "map"
    inputs = (records.ID, records.PROVENANCE, "question", "answer", "chunk_text")
    outputs = ("question", "answer")
    prompt_slots = ("refine",)
    defaults = {"max_chunk_chars": 20000, "on_unparseable": "drop"}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        limit = self.params["max_chunk_chars"]
        if not isinstance(limit, int) or limit < 1:
            raise StageError(f"stage {self.label!r}: parameter 'max_chunk_chars' must be a positive integer, got {limit!r}")
        if self.params["on_unparseable"] not in ("drop", "keep_extracted"):
            raise StageError(f"stage {self.label!r}: parameter 'on_unparseable' must be 'drop' or 'keep_extracted', "
                             f"got {self.params['on_unparseable']!r}")

    def process(self, batch: pa.Table, ctx) -> StageOutput:
        limit = self.params["max_chunk_chars"]
        questions = batch.column("question").to_pylist()
        answers = batch.column("answer").to_pylist()
        chunks = batch.column("chunk_text").to_pylist()
        llm = ctx.llm()
        reqs = [request(ctx, "refine", chunk=(c or "")[:limit], question=q or "", answer=a or "")
                for q, a, c in zip(questions, answers, chunks)]
        results = llm.generate(reqs) if reqs else []

        counters: dict[str, int] = {}
        dropped: list[tuple[int, str]] = []
        keep: list[int] = []
        new_q: list[str] = []
        new_a: list[str] = []
        refined: list[bool] = []
        for i, result in enumerate(results):
            reason = failure_reason(result)
            parsed = None if reason else parse_refined(result.text)
            if reason is None and parsed is None:
                reason = "unparseable_refinement"
            elif parsed == UNUSABLE:
                reason = "refine_rejected"
            if reason:
                bump(counters, reason)
                if reason == "unparseable_refinement" and self.params["on_unparseable"] == "keep_extracted":
                    keep.append(i)
                    new_q.append(questions[i])
                    new_a.append(answers[i])
                    refined.append(False)
                    continue
                dropped.append((i, reason))
                continue
            keep.append(i)
            new_q.append(parsed.question)
            new_a.append(parsed.answer)
            refined.append(True)

        kept = batch.take(pa.array(keep, pa.int64()))
        kept = records.set_column(kept, "question", new_q, pa.string())
        kept = records.set_column(kept, "answer", new_a, pa.string())
        counters["refined"] = sum(refined)
        if len(keep):
            kept = records.add_step(kept, {"stage": self.label, **model_ref(llm), **prompt_ref(ctx, "refine")},
                                    [{"refined": r, "refined_answer_boxed": "\\boxed" in (a or "")}
                                     for r, a in zip(refined, new_a)])
        return StageOutput(kept=kept, dropped=dropped, counters=counters)
