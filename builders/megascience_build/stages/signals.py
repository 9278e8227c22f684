"""Selection signals, computed once per row and stored as columns (paper §3.3; selection.py reads them).

response_length  tokens of a reference model's response (paper: Qwen2.5-72B-Instruct, counted with the
                 Qwen2.5-7B tokenizer); over `max_response_tokens` (10,000) -> length_excluded.
difficulty       k policy samples per question (paper: 16 from Qwen2.5-7B-Instruct), each graded 0-10
                 against the reference answer by a grader (paper: Qwen2.5-32B-Instruct); the mean of the
                 parseable grades.
random_u01       uniform_u01(seed, id): a seeded number in [0, 1) per row.

Rows are never dropped here: a row whose signal cannot be computed keeps a null signal and a status, so
the pool every subset is drawn from is the same for all three selection methods.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from functools import lru_cache

import numpy as np
import pyarrow as pa

from ..backends.base import GenerationRequest, SamplingParams
from ..engine import records
from ..engine.stage import Stage, StageError, StageOutput, register
from ..selection.subsets import uniform_u01

# --------------------------------------------------------------------------------------------- parsing
_SCORE = re.compile(r"score\s*\**\s*[:：]\s*\**\s*(\d{1,2}(?:\.\d+)?)", re.I)
_BOXED = re.compile(r"\\boxed\{\s*(\d{1,2}(?:\.\d+)?)\s*\}")


def parse_grade(text: str | None) -> float | None:
    """The grade of a grader reply: the last `Score: N` (N in 0..10, `**Score:** 7`, `Score: 7/10`),
    else the last `\\boxed{N}`; None when neither gives a number in range. Never raises."""
    if not isinstance(text, str):
        return None
    for pattern in (_SCORE, _BOXED):
        matches = pattern.findall(text)
        if matches:
            value = float(matches[-1])
            return value if 0.0 <= value <= 10.0 else None
    return None


# --------------------------------------------------------------------------------------------- tokens
@lru_cache(maxsize=4)
def load_tokenizer(name: str):
    """A Hugging Face tokenizer by name or directory, or from a GGUF file path (offline SmolLM2)."""
    from transformers import AutoTokenizer

    if name.endswith(".gguf"):
        return AutoTokenizer.from_pretrained(os.path.dirname(name) or ".", gguf_file=os.path.basename(name))
    return AutoTokenizer.from_pretrained(name)


@lru_cache(maxsize=4)
def tokenizer_sha256(name: str | None) -> str | None:
    """The content of a named counting tokenizer (its serialised vocabulary and rules), for fingerprints."""
    if name is None:
        return None
    tok = load_tokenizer(name)
    backend = getattr(tok, "backend_tokenizer", None)
    blob = backend.to_str() if backend is not None else json.dumps(tok.get_vocab(), sort_keys=True)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def count_tokens(texts: list[str], tokenizer: str | None, fallback: list[int]) -> list[int]:
    """Token counts in the named tokenizer; with no tokenizer, the generating model's own counts."""
    if tokenizer is None:
        return list(fallback)
    tok = load_tokenizer(tokenizer)
    return [len(ids) for ids in tok(texts, add_special_tokens=False)["input_ids"]] if texts else []


def _step(stage: Stage, gen, prompt, **extra) -> dict:
    return {"stage": stage.label, "model": gen.model_id, "revision": gen.revision,
            "prompt": prompt.name, "prompt_sha256": prompt.sha256, **extra}


# --------------------------------------------------------------------------------------------- stages
@register
class ResponseLength(Stage):
    name = "response_length"
    kind = "map"
    inputs = (records.ID, records.PROVENANCE, "question")
    outputs = ("response_length", "length_excluded")
    defaults = {"tokenizer": "Qwen/Qwen2.5-7B-Instruct", "max_response_tokens": 10_000}

    def side_inputs(self):
        return {"tokenizer_sha256": tokenizer_sha256(self.params["tokenizer"])}
    prompt_slots = ("response",)

    def process(self, batch: pa.Table, ctx) -> StageOutput:
        gen, prompt = ctx.llm(), ctx.prompt("response")
        questions = batch.column("question").to_pylist()
        results = gen.generate([GenerationRequest(prompt.render(question=q), ctx.sampling) for q in questions])
        ok = [i for i, r in enumerate(results) if r.ok]
        counts = count_tokens([results[i].text for i in ok], self.params["tokenizer"],
                              [results[i].completion_tokens for i in ok])
        lengths: list[int | None] = [None] * len(results)
        for i, n in zip(ok, counts):
            lengths[i] = int(n)
        limit = self.params["max_response_tokens"]
        # a truncated or failed response has no length; it is excluded from length selection only
        excluded = [n is None or n > limit for n in lengths]
        counters = {"reference_truncated": sum(r.finish_reason == "length" for r in results),
                    "reference_error": sum(r.finish_reason == "error" for r in results),
                    "length_excluded": sum(excluded)}
        table = records.set_column(batch, "response_length", pa.array(lengths, pa.int64()))
        table = records.set_column(table, "length_excluded", pa.array(excluded, pa.bool_()))
        signals = [{"response_length": n, "length_excluded": e} for n, e in zip(lengths, excluded)]
        table = records.add_step(table, _step(self, gen, prompt, tokenizer=self.params["tokenizer"],
                                              max_response_tokens=limit), signals)
        return StageOutput(kept=table, counters=counters)


@register
class Difficulty(Stage):
    """k policy answers per question, each graded 0-10 against the reference answer; the mean grade.

    Unparseable grades (and grader failures) are left out of the mean and counted. A policy sample that
    fails (truncated or error) is not graded and is counted. Status per row:
      ok            at least one parseable grade; difficulty = their mean
      no_reference  empty reference answer: nothing generated, difficulty null (the row stays eligible
                    for length and random selection, never for difficulty selection)
      no_grade      no parseable grade: difficulty null by default, so the row is in no difficulty
                    subset; `ungraded_as_zero: true` gives the authors' 0 (then it falls below the low bound)
    """
    name = "difficulty"
    kind = "map"
    inputs = (records.ID, records.PROVENANCE, "question", "reference_answer")
    outputs = ("difficulty", "difficulty_grades", "difficulty_unparseable", "difficulty_failed_samples",
               "difficulty_status")
    defaults = {"samples": 16, "policy_role": "policy", "grader_role": "grader",
                "grader_temperature": 0.0, "grader_top_p": 1.0, "grader_max_tokens": 2048,
                "ungraded_as_zero": False}
    prompt_slots = ("policy", "grader")

    def __init__(self, params=None, **kw):
        super().__init__(params, **kw)
        if not isinstance(self.params["samples"], int) or self.params["samples"] < 1:
            raise StageError(f"stage {self.label!r}: parameter 'samples' must be a positive integer, "
                             f"got {self.params['samples']!r}")

    def process(self, batch: pa.Table, ctx) -> StageOutput:
        k = self.params["samples"]
        policy, grader = ctx.llm(self.params["policy_role"]), ctx.llm(self.params["grader_role"])
        ask, grade = ctx.prompt("policy"), ctx.prompt("grader")
        questions = batch.column("question").to_pylist()
        references = [(r or "").strip() for r in batch.column("reference_answer").to_pylist()]
        todo = [i for i, ref in enumerate(references) if ref]

        answers = policy.generate([GenerationRequest(ask.render(question=questions[i]), ctx.sampling, j)
                                   for i in todo for j in range(k)])
        grader_sampling = SamplingParams(temperature=self.params["grader_temperature"],
                                         top_p=self.params["grader_top_p"],
                                         max_tokens=self.params["grader_max_tokens"], seed=ctx.sampling.seed)
        pairs = [(i, a) for n, i in enumerate(todo) for a in answers[n * k:(n + 1) * k]]
        graded = [(i, a) for i, a in pairs if a.ok]
        verdicts = grader.generate([GenerationRequest(grade.render(question=questions[i], reference_answer=references[i],
                                                                   response=a.text), grader_sampling)
                                    for i, a in graded])

        n = batch.num_rows
        grades: list[list[float]] = [[] for _ in range(n)]
        unparseable, failed = [0] * n, [0] * n
        for i, a in pairs:
            failed[i] += not a.ok
        for (i, _), v in zip(graded, verdicts):
            g = parse_grade(v.text) if v.ok else None
            if g is None:
                unparseable[i] += 1
            else:
                grades[i].append(g)

        status = ["no_reference" if not references[i] else "ok" if grades[i] else "no_grade" for i in range(n)]
        no_grade_mean = 0.0 if self.params["ungraded_as_zero"] else None
        means = [float(np.mean(g)) if s == "ok" else no_grade_mean if s == "no_grade" else None
                 for g, s in zip(grades, status)]

        table = batch
        for name, values, type_ in (("difficulty", means, pa.float64()),
                                    ("difficulty_grades", grades, pa.list_(pa.float64())),
                                    ("difficulty_unparseable", unparseable, pa.int32()),
                                    ("difficulty_failed_samples", failed, pa.int32()),
                                    ("difficulty_status", status, pa.string())):
            table = records.set_column(table, name, pa.array(values, type_))
        signals = [{"difficulty": m, "difficulty_grades": g, "difficulty_status": s}
                   for m, g, s in zip(means, grades, status)]
        step = _step(self, policy, ask, samples=k, policy_temperature=ctx.sampling.temperature,
                     grader_model=grader.model_id, grader_revision=grader.revision,
                     grader_prompt=grade.name, grader_prompt_sha256=grade.sha256,
                     ungraded_as_zero=self.params["ungraded_as_zero"])
        table = records.add_step(table, step, signals)
        counters = {"no_reference": status.count("no_reference"), "no_grade": status.count("no_grade"),
                    "unparseable_grades": sum(unparseable), "failed_policy_samples": sum(failed),
                    "grader_failed": sum(not v.ok for v in verdicts)}
        return StageOutput(kept=table, counters=counters)


@register
class RandomSignal(Stage):
    name = "random_signal"
    kind = "map"
    inputs = (records.ID, records.PROVENANCE)
    outputs = ("random_u01",)
    defaults = {"seed": None}          # None: the pipeline seed

    def process(self, batch: pa.Table, ctx) -> StageOutput:
        seed = ctx.seed if self.params["seed"] is None else int(self.params["seed"])
        values = uniform_u01(seed, batch.column(records.ID).to_pylist())
        table = records.set_column(batch, "random_u01", pa.array(values, pa.float64()))
        table = records.add_step(table, {"stage": self.label, "seed": seed, "method": "blake2b(seed, id) -> [0, 1)"},
                                 [{"random_u01": float(v)} for v in values])
        return StageOutput(kept=table)
