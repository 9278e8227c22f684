"""Solution annotation (paper §3.4): a step-by-step solution with the final answer in \\boxed{} replaces the
upstream response of the selected NaturalReasoning and Nemotron-Science rows (paper: DeepSeek-V3).
Annotations over `max_answer_tokens` (4,096) in the named tokenizer are dropped ("annotation_too_long");
the paper removed about 8k rows this way.

Difficulty-aware distillation (paper Table 11) uses the same stage on TextbookReasoning with
`only_where: selected_difficulty_distill` (rows where that boolean column is false pass through untouched)
and `on_failure: keep` (a failed or over-long annotation keeps the refined answer instead of dropping the row;
counted as `annotation_kept_original`)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pyarrow as pa

from ..engine import records
from ..engine.llm_stage import LLMStage, Outcome
from ..engine.params import param
from ..engine.stage import StageError, StageOutput
from .signals import count_tokens, tokenizer_sha256

_BOXED = "\\boxed{"


class AnnotateSolution(LLMStage):
    name = "annotate_solution"
    summary = "a step-by-step solution with a \\boxed{} answer replaces the response (paper §3.4; DeepSeek-V3)"
    inputs = (records.ID, records.PROVENANCE, "question", "answer")
    outputs = ("answer",)

    @dataclass(frozen=True)
    class Params:
        tokenizer: str | None = param("deepseek-ai/DeepSeek-V3", "tokenizer that counts the annotation's tokens "
                                                                 "(null: the annotating model's own count)")
        max_answer_tokens: int = param(4096, "longer annotations fail as annotation_too_long", min=1)
        only_where: str | None = param(None, "a boolean column: only its true rows are annotated, the others "
                                             "pass through")
        on_failure: Literal["drop", "keep"] = param("drop", "a failed or too long annotation drops the row, or "
                                                            "keeps its answer (annotation_kept_original)")

    default_prompts = {"annotate": "annotate_solution.txt"}

    def check_schema(self, schema: pa.Schema) -> None:
        super().check_schema(schema)
        column = self.settings.only_where
        if column is not None and column not in schema.names:
            raise StageError(f"stage {self.label!r}: only_where names column {column!r}, "
                             f"but its input has only {schema.names}")

    def side_inputs(self):
        return {"tokenizer_sha256": tokenizer_sha256(self.settings.tokenizer)}

    def process(self, batch: pa.Table, ctx) -> StageOutput:
        p = self.settings
        gen = ctx.llm()
        questions = batch.column("question").to_pylist()
        chosen = ([bool(v) for v in batch.column(p.only_where).to_pylist()] if p.only_where
                  else [True] * batch.num_rows)
        todo = [i for i, c in enumerate(chosen) if c]
        answers = dict(zip(todo, self.ask(ctx, "annotate", [{"question": questions[i]} for i in todo], llm=gen)))
        failures = {i: self.failure(r) for i, r in answers.items() if self.failure(r)}
        failures.update({i: "empty_annotation" for i, r in answers.items() if r.ok and not r.text.strip()})
        ok = [i for i in todo if i not in failures]
        counts = dict(zip(ok, count_tokens([answers[i].text for i in ok], p.tokenizer,
                                           [answers[i].completion_tokens for i in ok])))
        failures.update({i: "annotation_too_long" for i, n in counts.items() if n > p.max_answer_tokens})
        keep_original = p.on_failure == "keep"
        out = Outcome()
        for i in todo:
            if i in failures and keep_original:
                out.keep(i, {"annotation_kept_original": failures[i]})
            elif i in failures:
                out.drop(i, failures[i])
            else:
                out.keep(i, {"annotation_tokens": int(counts[i])}, answer=answers[i].text.strip())
        out.counters["no_boxed_answer"] = sum(_BOXED not in v["answer"] for v in out.values.values() if "answer" in v)
        if keep_original:
            out.counters["annotation_kept_original"] = len(failures)
        step = self.step(ctx, gen, "annotate", tokenizer=p.tokenizer, max_answer_tokens=p.max_answer_tokens)
        return self.finish(batch, out, step, {"answer": pa.string()}, step_when_empty=True)
