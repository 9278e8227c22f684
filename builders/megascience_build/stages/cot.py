"""Stage 6: supplementary chain of thought (paper §2.4, Fig. 23).

Step 1, judge (slot `judge`, `prompts/judge_cot.txt`): does the answer show its reasoning? The reply
ends with `Decision: YES|NO` (replies.parse_decision).
Step 2, supplement the answers judged NO, in one of two modes (parameter `mode`):
  paper    (default; slot `supplement`, `prompts/supplement_cot.txt`): the paper's semantics, "add
           explanations and reformat the answers": the model gets the question AND the answer and
           rewrites the answer with its reasoning, keeping its final result.
  authors  (slot `distill`, `prompts/distill_cot.txt`): what the authors' code does: a new step-by-step
           solution from the question alone, final answer in \\boxed{}; the textbook answer is not shown.
The new answer replaces `answer`; column `cot_supplemented` says whether it did; the provenance step
names both prompts and models and the signals carry `cot_judgement` (yes / no / unparseable).

An unreadable judgement is counted as `unparseable_cot_judgement` and handled by `on_unparseable`:
  keep        (default) keep the answer as it is: no evidence that it lacks reasoning, and the authors'
              alternative (dropping the pair) throws away a pair the filter stage may still accept;
  supplement  treat it as NO; drop  drop the pair with reason `unparseable_cot_judgement` (authors' code).
Drops: `generation_<finish_reason>` (judge or supplement), `empty_supplement` (a blank rewrite).
The supplement model may differ from the judge (paper: Llama-3.3-70B judges, DeepSeek-V3 writes):
parameter `supplement_llm` names its model role (default: the stage's first `llm:` role); list both roles
under the stage's `llm:`, e.g. `llm: [judge, refiner]` with `params: {supplement_llm: refiner}`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import pyarrow as pa

from ..engine import records
from ..engine.llm_stage import LLMStage, Outcome
from ..engine.params import param
from ..engine.stage import StageError, StageOutput
from .replies import EMPTY_BOX, clean, parse_decision

MODES = {"paper": "supplement", "authors": "distill"}      # mode -> prompt slot of step 2

_SOLUTION_LABEL = re.compile(
    r"^[ \t#*_]*(?:rewritten[ \t]+answer|refined[ \t]+answer|answer|solution)[ \t]*[*_]*[ \t]*[:：][ \t]*[*_]*[ \t]*", re.I)


def parse_solution(text: object) -> str | None:
    """A free-form solution (supplemented or distilled answer): the reply without a leading
    `Answer:`/`Solution:` label or empty \\boxed{}; None when nothing is left."""
    if not isinstance(text, str):
        return None
    try:
        body = clean(EMPTY_BOX.sub("", _SOLUTION_LABEL.sub("", text.strip(), count=1)))
        return body or None
    except Exception:  # noqa: BLE001
        return None


class SupplementCoT(LLMStage):
    name = "cot"
    summary = ("judge whether an answer shows its reasoning; supplement it if not "
               "(paper §2.4; Llama-3.3-70B judge, DeepSeek-V3 writer)")
    inputs = (records.ID, records.PROVENANCE, "question", "answer")
    outputs = ("answer", "cot_supplemented")
    default_prompts = {"judge": "judge_cot.txt", "supplement": "supplement_cot.txt", "distill": "distill_cot.txt"}
    prompt_slots = ("judge",)           # plus the mode's slot, checked in __init__

    @dataclass(frozen=True)
    class Params:
        mode: Literal["paper", "authors"] = param(
            "paper", "paper: explain and reformat the answer (slot supplement); authors: a new solution from the "
                     "question alone (slot distill)")
        on_unparseable: Literal["keep", "supplement", "drop"] = param(
            "keep", "what an unreadable judgement does: keep the answer, supplement it, or drop the pair")
        supplement_llm: str | None = param(None, "model role of the writer (null: the stage's first `llm:` role)")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        mode = self.settings.mode
        if self.prompts and MODES[mode] not in self.prompts:
            raise StageError(f"stage {self.label!r}: mode {mode!r} needs prompt slot {MODES[mode]!r} "
                             f"(e.g. {MODES[mode]}: {MODES[mode]}_cot.txt); slots given: {sorted(self.prompts)}")

    def process(self, batch: pa.Table, ctx) -> StageOutput:
        p = self.settings
        questions = batch.column("question").to_pylist()
        answers = batch.column("answer").to_pylist()
        judge = ctx.llm()
        verdicts = self.ask(ctx, "judge", [{"question": q or "", "answer": a or ""}
                                           for q, a in zip(questions, answers)], llm=judge)
        out = Outcome()
        judgement: dict[int, str] = {}
        to_supplement: list[int] = []
        for i, result in enumerate(verdicts):
            reason = self.failure(result)
            if reason:
                out.drop(i, reason, counter=f"judge_{reason}")
                continue
            label = {True: "yes", False: "no", None: "unparseable"}[parse_decision(result.text)]
            judgement[i] = label
            out.count(f"cot_{label}")
            if label == "unparseable":
                out.count("unparseable_cot_judgement")
                if p.on_unparseable == "drop":
                    out.drop(i, "unparseable_cot_judgement")
                    continue
            if label == "no" or (label == "unparseable" and p.on_unparseable == "supplement"):
                to_supplement.append(i)

        slot = MODES[p.mode]
        writer = ctx.llm(p.supplement_llm) if p.supplement_llm else judge
        fields = [{"question": questions[i] or ""} if slot == "distill" else
                  {"question": questions[i] or "", "answer": answers[i] or ""} for i in to_supplement]
        supplemented: set[int] = set()
        for i, result in zip(to_supplement, self.ask(ctx, slot, fields, llm=writer)):
            reason = self.failure(result)
            text = None if reason else parse_solution(result.text)
            if reason is None and text is None:
                reason = "empty_supplement"
            if reason:
                out.drop(i, reason, counter=reason if reason == "empty_supplement" else f"supplement_{reason}")
                continue
            out.keep(i, answer=text)
            supplemented.add(i)
        out.counters["cot_supplemented"] = len(supplemented)
        for i, label in judgement.items():
            done = i in supplemented
            out.keep(i, {"cot_judgement": label, "cot_supplemented": done}, cot_supplemented=done)

        step = {"stage": self.label, "mode": p.mode, **self.model_ref(judge), **self.prompt_ref(ctx, "judge"),
                "on_unparseable": p.on_unparseable, **self.model_ref(writer, key="supplement_"),
                **self.prompt_ref(ctx, slot, key="supplement_prompt")}
        return self.finish(batch, out, step, {"answer": pa.string(), "cot_supplemented": pa.bool_()})
