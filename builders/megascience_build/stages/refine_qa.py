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

import re
from dataclasses import dataclass
from typing import Literal

import pyarrow as pa

from ..engine import records
from ..engine.llm_stage import LLMStage, Outcome
from ..engine.params import param
from ..engine.stage import StageOutput
from .replies import EMPTY_BOX, clean

UNUSABLE = "UNUSABLE"
_UNUSABLE_LINE = re.compile(r"^[ \t*_\[(`\"'#]*UNUSABLE\b[^\n]*$", re.M)
_REFINED_LABEL = re.compile(
    r"^[ \t>#*_\-]*refined[ \t]+(?P<kind>question|answer)[ \t]*[*_]*[ \t]*[:：][ \t]*[*_]*[ \t]*", re.I | re.M)


@dataclass(frozen=True)
class Refinement:
    question: str
    answer: str


def parse_refined(text: object) -> Refinement | str | None:
    """A refinement reply: Refinement(question, answer), the string UNUSABLE when the model declared
    the pair unusable (the marker on its own line after any refined fields), or None if unreadable.

    The last `Refined Question:` label wins (models often draft first); the answer runs from the
    `Refined Answer:` label after it to the end. Empty `\\boxed{}` left from the instructions are removed.
    """
    if not isinstance(text, str):
        return None
    try:
        labels = list(_REFINED_LABEL.finditer(text))
        q_labels = [m for m in labels if m.group("kind").lower() == "question"]
        unusable = [m.start() for m in _UNUSABLE_LINE.finditer(text)]
        last_q = q_labels[-1] if q_labels else None
        if unusable and (last_q is None or unusable[-1] > last_q.start()):
            return UNUSABLE
        if last_q is None:
            return None
        a_labels = [m for m in labels if m.group("kind").lower() == "answer" and m.start() > last_q.start()]
        if not a_labels:
            return None
        a = a_labels[0]
        question = clean(text[last_q.end():a.start()])
        answer = clean(EMPTY_BOX.sub("", text[a.end():]))
        if not question or not answer:
            return None
        return Refinement(question, answer)
    except Exception:  # noqa: BLE001
        return None


class RefineQA(LLMStage):
    name = "refine_qa"
    summary = "rewrite each pair self-contained, with its source chunk (paper §2.4; DeepSeek-V3)"
    inputs = (records.ID, records.PROVENANCE, "question", "answer", "chunk_text")
    outputs = ("question", "answer")
    default_prompts = {"refine": "refine_qa.txt"}

    @dataclass(frozen=True)
    class Params:
        max_chunk_chars: int = param(20000, "the chunk text sent to the model is cut to this many characters", min=1)
        on_unparseable: Literal["drop", "keep_extracted"] = param(
            "drop", "an unreadable reply drops the pair, or keeps the extracted pair (demonstration models only)")

    def process(self, batch: pa.Table, ctx) -> StageOutput:
        limit = self.settings.max_chunk_chars
        questions = batch.column("question").to_pylist()
        answers = batch.column("answer").to_pylist()
        llm = ctx.llm()
        chunks = batch.column("chunk_text").to_pylist()
        results = self.ask(ctx, "refine", [{"chunk": (c or "")[:limit], "question": q or "", "answer": a or ""}
                                           for q, a, c in zip(questions, answers, chunks)], llm=llm)
        out = Outcome()
        refined = 0
        for i, result in enumerate(results):
            reason = self.failure(result)
            parsed = None if reason else parse_refined(result.text)
            if reason is None and parsed is None:
                reason = "unparseable_refinement"
            elif parsed == UNUSABLE:
                reason = "refine_rejected"
            if reason == "unparseable_refinement" and self.settings.on_unparseable == "keep_extracted":
                out.count(reason)
                out.keep(i, {"refined": False, "refined_answer_boxed": "\\boxed" in (answers[i] or "")})
            elif reason:
                out.drop(i, reason, counter=reason)
            else:
                refined += 1
                out.keep(i, {"refined": True, "refined_answer_boxed": "\\boxed" in parsed.answer},
                         question=parsed.question, answer=parsed.answer)
        out.counters["refined"] = refined
        return self.finish(batch, out, self.step(ctx, llm, "refine"),
                           {"question": pa.string(), "answer": pa.string()})
