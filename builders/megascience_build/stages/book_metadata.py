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

import pyarrow as pa

from ..backends.base import GenerationRequest
from ..engine import records
from ..engine.stage import Stage, StageError, StageOutput, register
from ..textbooks.metadata import LEVEL_RANK, LEVELS, OTHER, SUBJECTS, normalise_level, normalise_subject, \
    parse_book_metadata

log = logging.getLogger(__name__)
PROMPT_SLOT = "classify"


@register
class ClassifyBooks(Stage):
    name = "book_metadata"
    kind = "map"
    inputs = (records.ID, records.PROVENANCE, "title", "text", "declared_subject", "declared_level")
    outputs = ("subject", "level")
    defaults = {"use_declared": True, "fallback_to_declared": True, "excerpt_chars": 2000,
                "min_level": "undergraduate"}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.params["min_level"] not in LEVELS:
            raise StageError(f"stage {self.label!r}: parameter 'min_level' must be one of {list(LEVELS)}, "
                             f"got {self.params['min_level']!r}")

    def process(self, batch: pa.Table, ctx) -> StageOutput:
        cols = {c: batch.column(c).to_pylist() for c in self.inputs}
        n = batch.num_rows
        declared = [(normalise_subject(s), normalise_level(l))
                    for s, l in zip(cols["declared_subject"], cols["declared_level"])]
        decided: dict[int, tuple[str, str, str]] = {}      # pos -> (subject, level, source)
        ask = []
        for pos, (subj, lvl) in enumerate(declared):
            if self.params["use_declared"] and subj and lvl:
                decided[pos] = (subj, lvl, "declared")
            else:
                ask.append(pos)

        dropped: list[tuple[int, str]] = []
        counters = {"declared_metadata": len(decided), "classified_by_model": 0}
        step = {"stage": self.label, "use_declared": self.params["use_declared"]}
        if ask:
            tmpl = ctx.prompt(PROMPT_SLOT)
            llm = ctx.llm(None)
            limit = int(self.params["excerpt_chars"])
            requests = [GenerationRequest(messages=tmpl.render(title=cols["title"][p] or "(untitled)",
                                                               excerpt=cols["text"][p][:limit].strip()),
                                          sampling=ctx.sampling) for p in ask]
            results = llm.generate(requests)
            step.update({"model": llm.model_id, "revision": llm.revision, "prompt": tmpl.name,
                         "prompt_sha256": tmpl.sha256})
            for pos, res in zip(ask, results):
                outcome = self._from_model(res, declared[pos], counters)
                if isinstance(outcome, str):
                    log.info("%s: book %s (%s): dropped %s; model said %r", self.label, cols[records.ID][pos],
                             cols["title"][pos], outcome, (res.text or "")[:200])
                    dropped.append((pos, outcome))
                else:
                    decided[pos] = outcome

        for pos in sorted(decided):
            subj, lvl, _ = decided[pos]
            reason = None
            if subj == OTHER or subj not in SUBJECTS:
                reason = "unsupported_subject"
            elif LEVEL_RANK[lvl] < LEVEL_RANK[self.params["min_level"]]:
                reason = "below_university_level"
            if reason:
                dropped.append((pos, reason))
                del decided[pos]

        keep = sorted(decided)
        kept = batch.take(pa.array(keep, pa.int64()))
        kept = records.set_column(kept, "subject", [decided[p][0] for p in keep], pa.string())
        kept = records.set_column(kept, "level", [decided[p][1] for p in keep], pa.string())
        signals = [{"book_subject": decided[p][0], "book_level": decided[p][1], "book_metadata_source": decided[p][2]}
                   for p in keep]
        kept = records.add_step(kept, step, signals)
        return StageOutput(kept=kept, dropped=sorted(dropped), counters=counters)

    def _from_model(self, res, declared: tuple[str | None, str | None], counters: dict):
        """(subject, level, source) or a drop reason."""
        if not res.ok:
            return f"generation_{res.finish_reason}"
        counters["classified_by_model"] += 1
        parsed = parse_book_metadata(res.text)
        if parsed.ok:
            return parsed.subject, parsed.level, "model"
        subj = parsed.subject or (declared[0] if self.params["fallback_to_declared"] else None)
        lvl = parsed.level or (declared[1] if self.params["fallback_to_declared"] else None)
        if subj and lvl:
            counters["declared_fallback"] = counters.get("declared_fallback", 0) + 1
            return subj, lvl, "model+declared"
        if parsed.error == "unknown_subject" and lvl:
            return "unsupported_subject"
        return "unparseable_metadata"
