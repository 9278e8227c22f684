"""The evaluation pipeline's stages, a plugin of the build engine (pipelines name this module in `plugins:`;
the engine reads its `STAGES`): `eval_generate` asks the model, `eval_score` extracts and judges. Loading the
questions is done before the run (megascience_eval.run writes them as the pipeline's parquet input).

Neither stage drops a row: a question whose generation failed (finish_reason "length" or "error") keeps
its row, is extracted from whatever text came back, and is counted under its finish reason; one with no
extractable answer is counted as no_answer. So every question of the benchmark is in the output.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow as pa

from megascience_build.backends.base import GenerationRequest
from megascience_build.engine import records
from megascience_build.engine.llm_stage import LLMStage, Outcome
from megascience_build.engine.stage import Stage, StageError, StageOutput

from .extract import extract
from .judge import judge

_SCORING_CODE = ("extract.py", "mathnorm.py", "units.py", "judge.py")


def render_options(options: list[str]) -> str:
    return "\n".join(f"{chr(65 + i)}. {o}" for i, o in enumerate(options))


def messages_for(ctx, template: str, question: str, options: list[str]) -> tuple[dict, ...]:
    return ctx.prompt(template).render(question=question, options=render_options(options))


class EvalGenerate(LLMStage):
    name = "eval_generate"
    summary = "each benchmark question asked with its template (prompt slot = the row's `template`)"
    kind = "map"
    inputs = (records.ID, records.PROVENANCE, "template", "question", "options")
    outputs = ("messages", "reply", "finish_reason", "completion_tokens")
    COLUMNS = {"messages": pa.string(), "reply": pa.string(), "finish_reason": pa.string(),
               "completion_tokens": pa.int64()}

    def process(self, batch: pa.Table, ctx) -> StageOutput:
        templates = batch.column("template").to_pylist()
        missing = sorted(set(templates) - set(self.prompts))
        if missing:
            raise StageError(f"stage {self.label!r}: rows use template(s) {missing} that the pipeline's "
                             f"`prompts:` does not give ({sorted(self.prompts)})")
        convs = [messages_for(ctx, t, q, json.loads(o)) for t, q, o in
                 zip(templates, batch.column("question").to_pylist(), batch.column("options").to_pylist())]
        llm = ctx.llm()
        results = llm.generate([GenerationRequest(messages=m, sampling=ctx.sampling) for m in convs])
        out = Outcome()
        for i, (m, r) in enumerate(zip(convs, results)):
            out.count(f"finish_{r.finish_reason}")
            out.keep(i, messages=json.dumps(list(m), ensure_ascii=False), reply=r.text,
                     finish_reason=r.finish_reason, completion_tokens=r.completion_tokens)
        step = {"stage": self.label, **self.model_ref(llm),
                "prompts": {t: ctx.prompt(t).sha256 for t in sorted(set(templates))}}
        return self.finish(batch, out, step, self.COLUMNS, step_when_empty=True, take=False)


def scoring_code_sha256() -> str:
    """sha256 over the extraction and judging code, so an edited rule rescores finished shards."""
    h = hashlib.sha256()
    for name in _SCORING_CODE:
        h.update((Path(__file__).resolve().parent / name).read_bytes())
    return h.hexdigest()


class EvalScore(Stage):
    name = "eval_score"
    summary = "the answer extracted from each reply and judged against the gold answer"
    kind = "map"
    inputs = (records.ID, records.PROVENANCE, "qtype", "options", "gold", "gold_unit", "metric", "reply")
    outputs = ("extracted", "method", "status", "correct", "note")

    def side_inputs(self):
        return {"scoring_code": scoring_code_sha256()}

    def process(self, batch: pa.Table, ctx) -> StageOutput:
        cols = {c: batch.column(c).to_pylist() for c in self.inputs[2:]}
        found, methods, statuses, correct, notes = [], [], [], [], []
        counters: dict[str, int] = {}
        for qtype, options, gold, unit, metric, reply in zip(*cols.values()):
            m = json.loads(metric)
            ex = extract(qtype, reply, json.loads(options))
            v = judge(qtype, ex.answer, gold, metric=m.get("name", "em"), rel_tol=float(m.get("rel_tol", 1e-4)),
                      gold_unit=unit or "", unit_policy=m.get("unit_policy", "convert_if_given"))
            found.append(ex.answer)
            methods.append(ex.method)
            statuses.append(v.status)
            correct.append(v.correct)
            notes.append(v.note)
            counters[v.status] = counters.get(v.status, 0) + 1
        out = batch
        for name, values, type_ in (("extracted", found, pa.string()), ("method", methods, pa.string()),
                                    ("status", statuses, pa.string()), ("correct", correct, pa.bool_()),
                                    ("note", notes, pa.string())):
            out = records.set_column(out, name, values, type_)
        return StageOutput(kept=out, counters=counters)


STAGES = (EvalGenerate, EvalScore)
