"""Solution annotation (paper §3.4): a step-by-step solution with the final answer in \\boxed{} replaces the
upstream response of the selected NaturalReasoning and Nemotron-Science rows (paper: DeepSeek-V3).
Annotations over `max_answer_tokens` (4,096) in the named tokenizer are dropped ("annotation_too_long");
the paper removed about 8k rows this way.

Difficulty-aware distillation (paper Table 11) uses the same stage on TextbookReasoning with
`only_where: selected_difficulty_distill` (rows where that boolean column is false pass through untouched)
and `on_failure: keep` (a failed or over-long annotation keeps the refined answer instead of dropping the row;
counted as `annotation_kept_original`)."""
from __future__ import annotations

import pyarrow as pa

from ..backends.base import GenerationRequest
from ..engine import records
from ..engine.stage import Stage, StageError, StageOutput, register
from .signals import count_tokens, tokenizer_sha256

_BOXED = "\\boxed{"


@register
class AnnotateSolution(Stage):
    name = "annotate_solution"
    kind = "map"
    inputs = (records.ID, records.PROVENANCE, "question", "answer")
    outputs = ("answer",)
    # tokenizer None: count with the annotating model's own completion tokens
    defaults = {"tokenizer": "deepseek-ai/DeepSeek-V3", "max_answer_tokens": 4096,
                "only_where": None, "on_failure": "drop"}
    prompt_slots = ("annotate",)

    def check_schema(self, schema: pa.Schema) -> None:
        super().check_schema(schema)
        if self.params["on_failure"] not in ("drop", "keep"):
            raise StageError(f"stage {self.label!r}: on_failure must be 'drop' or 'keep', "
                             f"got {self.params['on_failure']!r}")
        column = self.params["only_where"]
        if column is not None and column not in schema.names:
            raise StageError(f"stage {self.label!r}: only_where names column {column!r}, "
                             f"but its input has only {schema.names}")

    def side_inputs(self):
        return {"tokenizer_sha256": tokenizer_sha256(self.params["tokenizer"])}

    def process(self, batch: pa.Table, ctx) -> StageOutput:
        gen, prompt = ctx.llm(), ctx.prompt("annotate")
        questions = batch.column("question").to_pylist()
        column = self.params["only_where"]
        chosen = ([bool(v) for v in batch.column(column).to_pylist()] if column
                  else [True] * batch.num_rows)
        todo = [i for i, c in enumerate(chosen) if c]
        answers = dict(zip(todo, gen.generate([GenerationRequest(prompt.render(question=questions[i]), ctx.sampling)
                                                for i in todo])))
        failures = {i: f"generation_{r.finish_reason}" for i, r in answers.items() if not r.ok}
        failures.update({i: "empty_annotation" for i, r in answers.items() if r.ok and not r.text.strip()})
        ok = [i for i in todo if i not in failures]
        counts = dict(zip(ok, count_tokens([answers[i].text for i in ok], self.params["tokenizer"],
                                           [answers[i].completion_tokens for i in ok])))
        limit = self.params["max_answer_tokens"]
        failures.update({i: "annotation_too_long" for i, n in counts.items() if n > limit})
        keep_original = self.params["on_failure"] == "keep"
        dropped = [] if keep_original else sorted(failures.items())
        positions = [i for i in range(batch.num_rows) if keep_original or i not in failures]
        new_answer = {i: answers[i].text.strip() for i in todo if i not in failures}
        table = batch.take(pa.array(positions, pa.int64()))
        originals = table.column("answer").to_pylist()
        table = records.set_column(table, "answer", pa.array(
            [new_answer.get(i, original) for i, original in zip(positions, originals)], pa.string()))
        signals = [({"annotation_tokens": int(counts[i])} if i in new_answer
                    else {"annotation_kept_original": failures[i]} if i in failures else None) for i in positions]
        table = records.add_step(table, {"stage": self.label, "model": gen.model_id, "revision": gen.revision,
                                         "prompt": prompt.name, "prompt_sha256": prompt.sha256,
                                         "tokenizer": self.params["tokenizer"], "max_answer_tokens": limit},
                                 signals)
        counters = {"no_boxed_answer": sum(_BOXED not in text for text in new_answer.values())}
        if keep_original:
            counters["annotation_kept_original"] = len(failures)
        return StageOutput(kept=table, dropped=sorted(dropped), counters=counters)
