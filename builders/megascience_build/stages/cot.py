"""Stage 6: supplementary chain of thought (paper §2.4, Fig. 23).

Step 1, judge (slot `judge`, `prompts/judge_cot.txt`): does the answer show its reasoning? The reply
ends with `Decision: YES|NO` (parsers.parse_decision).
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

import pyarrow as pa

from ..engine import records
from ..engine.stage import Stage, StageError, StageOutput, register
from ..parsers import parse_decision, parse_solution
from ._textbook_llm import bump, failure_reason, model_ref, prompt_ref, request

MODES = {"paper": "supplement", "authors": "distill"}      # mode -> prompt slot of step 2
ON_UNPARSEABLE = ("keep", "supplement", "drop")


@register
class SupplementCoT(Stage):
    name = "cot"
    kind = "map"
    inputs = (records.ID, records.PROVENANCE, "question", "answer")
    outputs = ("answer", "cot_supplemented")
    prompt_slots = ("judge",)
    defaults = {"mode": "paper", "on_unparseable": "keep", "supplement_llm": None}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        mode, policy = self.params["mode"], self.params["on_unparseable"]
        if mode not in MODES:
            raise StageError(f"stage {self.label!r}: parameter 'mode' must be one of {list(MODES)}, got {mode!r}")
        if policy not in ON_UNPARSEABLE:
            raise StageError(f"stage {self.label!r}: parameter 'on_unparseable' must be one of "
                             f"{list(ON_UNPARSEABLE)}, got {policy!r}")
        if self.prompts and MODES[mode] not in self.prompts:
            raise StageError(f"stage {self.label!r}: mode {mode!r} needs prompt slot {MODES[mode]!r} "
                             f"(e.g. {MODES[mode]}: {MODES[mode]}_cot.txt); slots given: {sorted(self.prompts)}")

    def process(self, batch: pa.Table, ctx) -> StageOutput:
        questions = batch.column("question").to_pylist()
        answers = batch.column("answer").to_pylist()
        judge = ctx.llm()
        verdicts = judge.generate([request(ctx, "judge", question=q or "", answer=a or "")
                                   for q, a in zip(questions, answers)]) if len(batch) else []

        counters: dict[str, int] = {}
        dropped: list[tuple[int, str]] = []
        judgement: dict[int, str] = {}
        to_supplement: list[int] = []
        for i, result in enumerate(verdicts):
            reason = failure_reason(result)
            if reason:
                dropped.append((i, reason))
                bump(counters, f"judge_{reason}")
                continue
            decision = parse_decision(result.text)
            label = {True: "yes", False: "no", None: "unparseable"}[decision]
            judgement[i] = label
            bump(counters, f"cot_{label}")
            if label == "unparseable":
                bump(counters, "unparseable_cot_judgement")
                if self.params["on_unparseable"] == "drop":
                    dropped.append((i, "unparseable_cot_judgement"))
                    continue
            if label == "no" or (label == "unparseable" and self.params["on_unparseable"] == "supplement"):
                to_supplement.append(i)

        slot = MODES[self.params["mode"]]
        writer = ctx.llm(self.params["supplement_llm"]) if self.params["supplement_llm"] else judge
        fields = ({"question": questions[i] or "", "answer": answers[i] or ""} for i in to_supplement)
        if slot == "distill":
            fields = ({"question": questions[i] or ""} for i in to_supplement)
        written = writer.generate([request(ctx, slot, **f) for f in fields]) if to_supplement else []

        new_answer = dict(enumerate(answers))
        supplemented: set[int] = set()
        for i, result in zip(to_supplement, written):
            reason = failure_reason(result)
            text = None if reason else parse_solution(result.text)
            if reason is None and text is None:
                reason = "empty_supplement"
            if reason:
                dropped.append((i, reason))
                bump(counters, reason if reason == "empty_supplement" else f"supplement_{reason}")
                continue
            new_answer[i] = text
            supplemented.add(i)
        counters["cot_supplemented"] = len(supplemented)

        gone = {i for i, _ in dropped}
        keep = [i for i in range(len(batch)) if i not in gone]
        kept = batch.take(pa.array(keep, pa.int64()))
        kept = records.set_column(kept, "answer", [new_answer[i] for i in keep], pa.string())
        kept = records.set_column(kept, "cot_supplemented", [i in supplemented for i in keep], pa.bool_())
        if keep:
            step = {"stage": self.label, "mode": self.params["mode"], **model_ref(judge),
                    **prompt_ref(ctx, "judge"), "on_unparseable": self.params["on_unparseable"]}
            step.update({"supplement_" + k: v for k, v in model_ref(writer).items()})
            step.update(prompt_ref(ctx, slot, key="supplement_prompt"))
            kept = records.add_step(kept, step, [{"cot_judgement": judgement[i], "cot_supplemented": i in supplemented}
                                                 for i in keep])
        return StageOutput(kept=kept, dropped=sorted(dropped), counters=counters)
