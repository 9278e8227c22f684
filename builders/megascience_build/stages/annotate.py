"""Solution annotation (paper §3.4): a step-by-step solution with the final answer in \\boxed{} replaces the
upstream response of the selected NaturalReasoning and Nemotron-Science rows (paper: DeepSeek-V3).
Annotations over `max_answer_tokens` (4,096) in the named tokenizer are dropped ("annotation_too_long");
the paper removed about 8k rows this way."""
from __future__ import annotations

import pyarrow as pa

from ..backends.base import GenerationRequest
from ..engine import records
from ..engine.stage import Stage, StageOutput, register
from .signals import count_tokens

_BOXED = "\\boxed{"


@register
class AnnotateSolution(Stage):
    name = "annotate_solution"
    kind = "map"
    inputs = (records.ID, records.PROVENANCE, "question", "answer")
    outputs = ("answer",)
    # tokenizer None: count with the annotating model's own completion tokens
    defaults = {"tokenizer": "deepseek-ai/DeepSeek-V3", "max_answer_tokens": 4096}
    prompt_slots = ("annotate",)

    def process(self, batch: pa.Table, ctx) -> StageOutput:
        gen, prompt = ctx.llm(), ctx.prompt("annotate")
        questions = batch.column("question").to_pylist()
        results = gen.generate([GenerationRequest(prompt.render(question=q), ctx.sampling) for q in questions])
        dropped = [(i, f"generation_{r.finish_reason}") for i, r in enumerate(results) if not r.ok]
        ok = [i for i, r in enumerate(results) if r.ok and r.text.strip()]
        dropped += [(i, "empty_annotation") for i, r in enumerate(results) if r.ok and not r.text.strip()]
        counts = count_tokens([results[i].text for i in ok], self.params["tokenizer"],
                              [results[i].completion_tokens for i in ok])
        limit = self.params["max_answer_tokens"]
        keep = []
        for i, n in zip(ok, counts):
            if n > limit:
                dropped.append((i, "annotation_too_long"))
            else:
                keep.append((i, n))
        positions = [i for i, _ in keep]
        table = batch.take(pa.array(positions, pa.int64()))
        table = records.set_column(table, "answer", pa.array([results[i].text.strip() for i in positions], pa.string()))
        signals = [{"annotation_tokens": int(n)} for _, n in keep]
        table = records.add_step(table, {"stage": self.label, "model": gen.model_id, "revision": gen.revision,
                                         "prompt": prompt.name, "prompt_sha256": prompt.sha256,
                                         "tokenizer": self.params["tokenizer"], "max_answer_tokens": limit},
                                 signals)
        counters = {"no_boxed_answer": sum(_BOXED not in results[i].text for i in positions)}
        return StageOutput(kept=table, dropped=sorted(dropped), counters=counters)
