"""Stage 1c: book metadata (subject among the 7 disciplines, academic level) by an LLM classifier.

The model sees the title and the opening `excerpt_chars` characters (prompt slot `classify`, default
file classify_book.txt). Books below `min_level` (default undergraduate: the paper keeps university-level
books) are dropped as below_university_level, books outside the 7 disciplines as unsupported_subject.
With `use_declared: true` a book whose front matter / PDF info / olmOCR metadata declares both subject and
level skips the model. An answer the parser cannot read is dropped as unparseable_metadata, unless
`fallback_to_declared: true` and the declared values fill the gap (recorded as source
"model+declared")."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import pyarrow as pa

from ..engine import records
from ..engine.llm_stage import LLMStage, Outcome
from ..engine.params import param
from ..engine.stage import StageOutput
from ..textbooks.metadata import (LEVEL_RANK, LEVELS, OTHER, SUBJECTS, normalise_level, normalise_subject,
                                  parse_book_metadata)

log = logging.getLogger(__name__)
PROMPT_SLOT = "classify"


class ClassifyBooks(LLMStage):
    name = "book_metadata"
    summary = "each book's subject (7 disciplines) and academic level (Llama-3.3-70B-Instruct)"
    inputs = (records.ID, records.PROVENANCE, "title", "text", "declared_subject", "declared_level")
    outputs = ("subject", "level")
    default_prompts = {PROMPT_SLOT: "classify_book.txt"}
    prompt_slots = ()           # the model is asked only for books without declared metadata

    @dataclass(frozen=True)
    class Params:
        use_declared: bool = param(True, "a book whose metadata declares subject and level skips the model")
        fallback_to_declared: bool = param(True, "declared values fill what the model's answer lacks")
        excerpt_chars: int = param(2000, "characters of the book's opening the model sees", min=1)
        min_level: Literal[LEVELS] = param(
            "undergraduate", "books below this level are dropped (below_university_level)")

    def process(self, batch: pa.Table, ctx) -> StageOutput:
        p = self.settings
        cols = {c: batch.column(c).to_pylist() for c in self.inputs}
        declared = [(normalise_subject(s), normalise_level(l))
                    for s, l in zip(cols["declared_subject"], cols["declared_level"])]
        decided: dict[int, tuple[str, str, str]] = {}      # pos -> (subject, level, source)
        ask = []
        for pos, (subj, lvl) in enumerate(declared):
            if p.use_declared and subj and lvl:
                decided[pos] = (subj, lvl, "declared")
            else:
                ask.append(pos)

        out = Outcome(counters={"declared_metadata": len(decided), "classified_by_model": 0})
        step = {"stage": self.label, "use_declared": p.use_declared}
        if ask:
            llm = ctx.llm(None)
            results = self.ask(ctx, PROMPT_SLOT, [{"title": cols["title"][i] or "(untitled)",
                                                   "excerpt": cols["text"][i][:p.excerpt_chars].strip()} for i in ask],
                               llm=llm)
            step = self.step(ctx, llm, PROMPT_SLOT, use_declared=p.use_declared)
            for pos, res in zip(ask, results):
                outcome = self._from_model(res, declared[pos], out)
                if isinstance(outcome, str):
                    log.info("%s: book %s (%s): dropped %s; model said %r", self.label, cols[records.ID][pos],
                             cols["title"][pos], outcome, (res.text or "")[:200])
                    out.drop(pos, outcome)
                else:
                    decided[pos] = outcome

        for pos in sorted(decided):
            subj, lvl, source = decided[pos]
            if subj == OTHER or subj not in SUBJECTS:
                out.drop(pos, "unsupported_subject")
            elif LEVEL_RANK[lvl] < LEVEL_RANK[p.min_level]:
                out.drop(pos, "below_university_level")
            else:
                out.keep(pos, {"book_subject": subj, "book_level": lvl, "book_metadata_source": source},
                         subject=subj, level=lvl)
        return self.finish(batch, out, step, {"subject": pa.string(), "level": pa.string()}, step_when_empty=True)

    def _from_model(self, res, declared: tuple[str | None, str | None], out: Outcome):
        """(subject, level, source) or a drop reason."""
        reason = self.failure(res)
        if reason:
            return reason
        out.count("classified_by_model")
        parsed = parse_book_metadata(res.text)
        if parsed.ok:
            return parsed.subject, parsed.level, "model"
        subj = parsed.subject or (declared[0] if self.settings.fallback_to_declared else None)
        lvl = parsed.level or (declared[1] if self.settings.fallback_to_declared else None)
        if subj and lvl:
            out.count("declared_fallback")
            return subj, lvl, "model+declared"
        if parsed.error == "unknown_subject" and lvl:
            return "unsupported_subject"
        return "unparseable_metadata"
