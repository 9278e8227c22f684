"""Scripted models for the whole TextbookReasoning pipeline: one responder per model role, each answering every
prompt that role receives in the format the stage's parser expects. The answers depend only on the request
text, so every run (and every ablation) gets the same answer for the same request.

What the corpus builder (textbook_e2e_lib.make_corpus) plants and these responders do with it:
- a book whose text holds "[[no questions]]": extraction answers NO_QA (both standards);
- a book whose text holds "[[garbled]]": extraction answers prose without any pair (unparseable);
- "Exercise: ... / Solution: ..." lines: extracted verbatim (the benchmark questions are planted this way);
- other chunks: pairs built from sentences of the chunk; the high and the low standard share one sentence,
  so question dedup has a real duplicate; some low-standard questions point at "Figure 2" (the filter rejects
  them); undeclared books are classified by the classifier (one of them as primary level, dropped).
"""
from __future__ import annotations

import hashlib
import re

from megascience_build.backends.scripted import last_user_message
from megascience_build.stages.replies import last_boxed

EXTRACTOR_MARK = "Revised by the extraction model."
REFINER_MARK = "Worked solution."
GENERATED = "Explain why this holds:"     # questions made from chunk sentences (the planted ones are kept intact)


def digest(text: str) -> int:
    return int(hashlib.sha256(text.encode("utf-8")).hexdigest()[:8], 16)


def between(text: str, start: str, end: str) -> str | None:
    m = re.search(re.escape(start) + r"\n?(.*?)\n?" + re.escape(end), text, re.S)
    return m.group(1) if m else None


def after(text: str, start: str) -> str:
    return text.split(start, 1)[1].strip() if start in text else ""


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


def final_value(answer: str) -> str:
    boxed = last_boxed(answer)
    if boxed:
        return boxed
    numbers = re.findall(r"-?\d+(?:\.\d+)?", answer)
    return numbers[-1] if numbers else " ".join(answer.split()[:3]).rstrip(".,;:")


# -- prompts by kind (words from the first 200 characters of each user message: the call log keeps those) ---------------------------------
def kind_of(user: str) -> str:
    for key, kind in (("Catalogue this book.", "classify"), ("Rewrite the pair so that a student", "refine"),
                      ("The passage below comes from", "extract_high"),
                      ("The excerpt below comes from", "extract_low"),
                      ("Decide whether the answer below shows its reasoning", "cot_judge"),
                      ("Rewrite the answer so that it explains", "supplement"),
                      ("self-contained practice problems", "filter"),
                      ("Are the two questions below the same question?", "decontam_judge"),
                      ("write down only the final answer", "reference")):
        if key in user:
            return kind
    return "unknown"


def classify(user: str) -> str:
    level = "primary" if "counting" in user.lower() else "undergraduate"
    return f"Subject: mathematics\nLevel: {level}"


def sentences(chunk: str) -> list[str]:
    flat = " ".join(line for line in chunk.splitlines() if not line.lstrip().startswith(("#", "|", "$$")))
    out = []
    for s in re.split(r"(?<=[.!?])\s+", " ".join(flat.split())):
        if 10 <= len(s.split()) <= 60 and not s.startswith("**"):
            out.append(s)
    return out


def extract(user: str, standard: str) -> str:
    chunk = between(user, "<passage>", "</passage>") if standard == "high" else between(user, "<excerpt>", "</excerpt>")
    chunk = chunk or ""
    if "[[no questions]]" in chunk:
        return "NO_QA"
    if "[[garbled]]" in chunk:
        return "This excerpt is interesting. I would ask about it, but the material is only an outline, so"
    exercises = re.findall(r"^Exercise: (.+)\nSolution: (.+)$", chunk, re.M)
    if exercises:
        return "\n\n".join(f"Question: {q}\nAnswer: {a}" for q, a in exercises)
    found = sentences(chunk)
    if len(found) < 3:
        return "NO_QA"
    picks = [len(found) // 5, 2 * len(found) // 5, 3 * len(found) // 5]
    chosen = picks[:2] if standard == "high" else picks[1:]          # picks[1]: the same pair from both prompts
    pairs = []
    for k, pos in enumerate(chosen):
        s = found[pos]
        question = f"{GENERATED} {s}"
        if standard == "low" and k == 1 and digest(chunk) % 3 == 0:
            question += " Use the values read from Figure 2."
        if pos == picks[0]:
            answer = f"It holds because {' '.join(s.split()[:5])}."         # terse: the CoT judge says NO
        else:
            answer = f"The statement follows from the principles of the chapter: {s} Combining them gives it."
        pairs.append(f"Question: {question}\nAnswer: {answer}")
    return "\n\n".join(pairs)


def refine(user: str, mark: str) -> str:
    question = (between(user, "<question>", "</question>") or "").strip()
    answer = (between(user, "<answer>", "</answer>") or "").strip()
    if digest(question) % 9 == 0 and question.startswith(GENERATED):
        return "UNUSABLE"
    value = final_value(answer)
    if len(answer.split()) < 12:                                          # stays terse: supplemented by CoT
        return f"Refined Question: {question}\nRefined Answer: {answer} \\boxed{{{value}}}"
    return (f"Let me check the pair against the passage first.\nRefined Question: {question}\n"
            f"Refined Answer: {mark}\nStep 1: {answer}\nStep 2: Hence the result.\n\\boxed{{{value}}}")


def cot_judge(user: str) -> str:
    answer = after(after(user, "Now judge this pair."), "Answer:")
    if digest(answer) % 13 == 0:
        return "The answer looks fine to me."                         # no decision: counted, row kept
    shows = "Step" in answer or len(answer.split()) >= 20
    return f"Analysis: {'it explains its steps' if shows else 'only a result'}.\nDecision: {'YES' if shows else 'NO'}"


def supplement(user: str) -> str:
    answer = after(user, "\nAnswer:")
    value = final_value(answer)
    return (f"Step 1: Recall the principle the question is about.\nStep 2: Apply it to the case given.\n"
            f"Step 3: This gives {answer}\n\\boxed{{{value}}}")


def filter_qa(user: str) -> str:
    question = between(user, "Question:", "Answer:") or ""
    if "Figure" in user.split("Otherwise accept", 1)[-1]:
        return "Analysis: it relies on a figure the reader does not have.\nDecision: NO"
    if digest(question) % 11 == 0 and question.strip().startswith(GENERATED):
        return "Analysis: hard to say."                                 # no decision: dropped as unparseable
    return "Analysis: self-contained and answered.\nDecision: YES"


def decontam_judge(user: str) -> str:
    one = between(user, "Question 1:", "Question 2:") or ""
    two = between(user, "Question 2:", "Write one or two sentences") or ""
    a, b = words(one), words(two)
    same = bool(a and b) and len(a & b) / len(a | b) >= 0.6
    return f"Analysis: {'the same task' if same else 'different tasks'}.\nDecision: {'YES' if same else 'NO'}"


def reference(user: str) -> str:
    return f"Reference Answer: {final_value(after(after(user, 'Now the real one.'), 'Solution:'))}"


def respond(user: str, refine_mark: str) -> str:
    kind = kind_of(user)
    if kind == "classify":
        return classify(user)
    if kind in ("extract_high", "extract_low"):
        return extract(user, kind.split("_")[1])
    if kind == "refine":
        return refine(user, refine_mark)
    return {"cot_judge": cot_judge, "supplement": supplement, "filter": filter_qa,
            "decontam_judge": decontam_judge, "reference": reference}.get(kind, lambda u: "")(user)


def respond_classifier(req):
    return respond(last_user_message(req), REFINER_MARK)


def respond_extractor(req):                    # extraction, and refinement in textbook_refined_by_extractor
    return respond(last_user_message(req), EXTRACTOR_MARK)


def respond_refiner(req):
    return respond(last_user_message(req), REFINER_MARK)


def respond_judge(req):
    return respond(last_user_message(req), REFINER_MARK)
