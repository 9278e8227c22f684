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
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pyarrow as pa

from ..backends.base import GenerationRequest, SamplingParams
from ..engine import records
from ..engine.llm_stage import LLMStage, Outcome
from ..engine.params import param
from ..engine.stage import Stage, StageOutput
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


# --------------------------------------------------------------------------------------------- stages
class ResponseLength(LLMStage):
    name = "response_length"
    summary = "tokens of a reference model's response; over the limit: length_excluded (paper §3.3; Qwen2.5-72B)"
    inputs = (records.ID, records.PROVENANCE, "question")
    outputs = ("response_length", "length_excluded")
    default_prompts = {"response": "reference_response.txt"}

    @dataclass(frozen=True)
    class Params:
        tokenizer: str | None = param("Qwen/Qwen2.5-7B-Instruct", "tokenizer that counts the response's tokens "
                                                                  "(null: the model's own count)")
        max_response_tokens: int = param(10_000, "longer (or failed) responses are length_excluded", min=1)

    def side_inputs(self):
        return {"tokenizer_sha256": tokenizer_sha256(self.settings.tokenizer)}

    def process(self, batch: pa.Table, ctx) -> StageOutput:
        p = self.settings
        gen = ctx.llm()
        results = self.ask(ctx, "response", [{"question": q} for q in batch.column("question").to_pylist()], llm=gen)
        ok = [i for i, r in enumerate(results) if r.ok]
        counts = count_tokens([results[i].text for i in ok], p.tokenizer, [results[i].completion_tokens for i in ok])
        lengths: list[int | None] = [None] * len(results)
        for i, n in zip(ok, counts):
            lengths[i] = int(n)
        # a truncated or failed response has no length; it is excluded from length selection only
        excluded = [n is None or n > p.max_response_tokens for n in lengths]
        out = Outcome(counters={"reference_truncated": sum(r.finish_reason == "length" for r in results),
                                "reference_error": sum(r.finish_reason == "error" for r in results),
                                "length_excluded": sum(excluded)})
        for i, (n, e) in enumerate(zip(lengths, excluded)):
            out.keep(i, {"response_length": n, "length_excluded": e}, response_length=n, length_excluded=e)
        step = self.step(ctx, gen, "response", tokenizer=p.tokenizer, max_response_tokens=p.max_response_tokens)
        return self.finish(batch, out, step, {"response_length": pa.int64(), "length_excluded": pa.bool_()},
                           step_when_empty=True, take=False)


class Difficulty(LLMStage):
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
    summary = ("k policy answers per question graded 0-10 against the reference answer; their mean "
               "(paper §3.3; Qwen2.5-7B x16, Qwen2.5-32B grader)")
    inputs = (records.ID, records.PROVENANCE, "question", "reference_answer")
    outputs = ("difficulty", "difficulty_grades", "difficulty_unparseable", "difficulty_failed_samples",
               "difficulty_status")
    default_prompts = {"policy": "difficulty_policy.txt", "grader": "grade_response.txt"}
    COLUMNS = {"difficulty": pa.float64(), "difficulty_grades": pa.list_(pa.float64()),
               "difficulty_unparseable": pa.int32(), "difficulty_failed_samples": pa.int32(),
               "difficulty_status": pa.string()}

    @dataclass(frozen=True)
    class Params:
        samples: int = param(16, "policy answers per question", min=1)
        policy_role: str = param("policy", "model role (one of the stage's `llm:`) that answers")
        grader_role: str = param("grader", "model role that grades")
        grader_temperature: float = param(0.0, "the grader's sampling temperature", min=0)
        grader_top_p: float = param(1.0, "the grader's top_p", min=0, max=1)
        grader_max_tokens: int = param(2048, "the grader's max_tokens", min=1)
        ungraded_as_zero: bool = param(False, "a question without a parseable grade gets difficulty 0 (the "
                                              "authors' code) instead of null")

    def process(self, batch: pa.Table, ctx) -> StageOutput:
        p, k = self.settings, self.settings.samples
        policy, grader = ctx.llm(p.policy_role), ctx.llm(p.grader_role)
        questions = batch.column("question").to_pylist()
        references = [(r or "").strip() for r in batch.column("reference_answer").to_pylist()]
        todo = [i for i, ref in enumerate(references) if ref]

        # the j-th sample of a question is a request of its own (its own cache key)
        answers = policy.generate([GenerationRequest(ctx.prompt("policy").render(question=questions[i]),
                                                     ctx.sampling, j) for i in todo for j in range(k)])
        grader_sampling = SamplingParams(temperature=p.grader_temperature, top_p=p.grader_top_p,
                                         max_tokens=p.grader_max_tokens, seed=ctx.sampling.seed)
        pairs = [(i, a) for n, i in enumerate(todo) for a in answers[n * k:(n + 1) * k]]
        graded = [(i, a) for i, a in pairs if a.ok]
        verdicts = grader.generate([self.request(ctx, "grader", grader_sampling, question=questions[i],
                                                 reference_answer=references[i], response=a.text)
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
        no_grade_mean = 0.0 if p.ungraded_as_zero else None
        means = [float(np.mean(g)) if s == "ok" else no_grade_mean if s == "no_grade" else None
                 for g, s in zip(grades, status)]
        out = Outcome(counters={"no_reference": status.count("no_reference"), "no_grade": status.count("no_grade"),
                                "unparseable_grades": sum(unparseable), "failed_policy_samples": sum(failed),
                                "grader_failed": sum(not v.ok for v in verdicts)})
        for i in range(n):
            out.keep(i, {"difficulty": means[i], "difficulty_grades": grades[i], "difficulty_status": status[i]},
                     difficulty=means[i], difficulty_grades=grades[i], difficulty_unparseable=unparseable[i],
                     difficulty_failed_samples=failed[i], difficulty_status=status[i])
        step = self.step(ctx, policy, "policy", samples=k, policy_temperature=ctx.sampling.temperature,
                         **self.model_ref(grader, key="grader_"), **self.prompt_ref(ctx, "grader", key="grader_prompt"),
                         ungraded_as_zero=p.ungraded_as_zero)
        return self.finish(batch, out, step, self.COLUMNS, step_when_empty=True, take=False)


class RandomSignal(Stage):
    name = "random_signal"
    summary = "uniform_u01(seed, id): a seeded number in [0, 1) per row"
    inputs = (records.ID, records.PROVENANCE)
    outputs = ("random_u01",)

    @dataclass(frozen=True)
    class Params:
        seed: int | None = param(None, "seed of the numbers (null: the pipeline seed)")

    def process(self, batch: pa.Table, ctx) -> StageOutput:
        seed = ctx.seed if self.settings.seed is None else int(self.settings.seed)
        values = uniform_u01(seed, batch.column(records.ID).to_pylist())
        table = records.set_column(batch, "random_u01", pa.array(values, pa.float64()))
        table = records.add_step(table, {"stage": self.label, "seed": seed, "method": "blake2b(seed, id) -> [0, 1)"},
                                 [{"random_u01": float(v)} for v in values])
        return StageOutput(kept=table)
