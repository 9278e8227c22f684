"""Measure decontamination on planted leaks: benchmark questions copied verbatim, lightly edited (a few
words replaced or deleted) and reordered (sentences or clauses swapped) into a training set, next to
unrelated science questions written by the team. Used by tests/decontam and benchmarks/decontam.py.

The judge here is a scripted backend that answers YES exactly for the planted (training question,
source benchmark question) pairs: it tests the plumbing (retrieval puts the source in the top k, the
stage routes every pair to the judge and acts on the verdict), not a model's judgement.
"""
from __future__ import annotations

import random
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import pyarrow as pa

from ..backends.base import GenerationResult
from .registry import BenchmarkQuestion
from .matching import normalize
from ..engine import records

# The question files in ../shared/benchmarks (as published with the paper's pipeline) and their question field.
SHARED_BENCHMARK_FILES = {
    "chembench_mc": ("chembench_multi_choise.json", "examples[0].input"),
    "chembench_str": ("chembench_str_match.json", "examples[0].input"),
    "cs_bench_assertion": ("cs_bench_assertion.json", "Question"),
    "cs_bench_mc": ("cs_bench_multiple_choice.json", "Question"),
    "gsm8k": ("gsm8k.jsonl", "question"),
    "medmcqa": ("medmcqa.json", "question"),
    "medqa_us": ("medqa_US.jsonl", "question"),
    "newton": ("newton_confident_questions.json", "question"),
    "piqa": ("piqa_valid.json", "goal"),
    "pubmedqa": ("pubmedqa.json", "question"),
}


def write_shared_registry_yaml(folder: str | Path, names: Sequence[str], out: str | Path) -> Path:
    """A registry file (set "shared") over the benchmark files in `folder`."""
    import yaml
    doc = {"sets": {"shared": list(names)},
           "benchmarks": {n: {"file": {"path": str(Path(folder) / SHARED_BENCHMARK_FILES[n][0])},
                              "question": SHARED_BENCHMARK_FILES[n][1]} for n in names}}
    Path(out).write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return Path(out)


# -- edits --------------------------------------------------------------------------------------------

_SYNONYMS = {
    "calculate": "compute", "compute": "work out", "determine": "find", "find": "determine",
    "what": "which", "which": "what", "following": "listed", "patient": "individual", "man": "person",
    "woman": "person", "shows": "reveals", "most": "best", "likely": "probably", "each": "every",
    "total": "overall", "many": "numerous", "large": "big", "small": "little", "bought": "purchased",
    "buys": "purchases", "uses": "utilizes", "use": "employ", "increase": "rise", "decrease": "drop",
    "because": "since", "during": "while", "after": "following", "before": "prior to", "true": "correct",
    "false": "incorrect", "answer": "response", "problem": "question", "number": "count", "makes": "earns",
    "years": "yrs", "old": "aged", "presents": "comes in", "history": "record",
}
_DELETABLE = {"the", "a", "an", "very", "also", "then", "just", "really", "that", "of", "to", "in"}


def edit_lightly(text: str, rng: random.Random, max_edits: int = 3) -> str:
    """Replace up to `max_edits` words by synonyms or delete filler words; never a no-op if possible."""
    words = text.split(" ")
    candidates = [i for i, w in enumerate(words) if re.sub(r"\W", "", w).lower() in _SYNONYMS or
                  re.sub(r"\W", "", w).lower() in _DELETABLE]
    rng.shuffle(candidates)
    chosen = sorted(candidates[:max_edits], reverse=True)
    if not chosen and len(words) > 3:          # nothing listed: drop one word in the middle
        chosen = [len(words) // 2]
    for i in chosen:
        core = re.sub(r"\W", "", words[i]).lower()
        if core in _SYNONYMS:
            new = _SYNONYMS[core]
            if words[i][:1].isupper():
                new = new[:1].upper() + new[1:]
            words[i] = re.sub(r"[A-Za-z]+", lambda _: new, words[i], count=1)
        else:
            del words[i]
    return " ".join(words)


_SENTENCE = re.compile(r"(?<=[.?!])\s+(?=[A-Z0-9])")


def reorder(text: str, rng: random.Random) -> str:
    """Swap sentences (moving the last, usually the question, to the front); with one sentence, swap the
    clauses around its first comma or semicolon; otherwise move the second half of the words to the front."""
    sentences = [s for s in _SENTENCE.split(text.strip()) if s]
    if len(sentences) >= 2:
        return " ".join([sentences[-1], *sentences[:-1]])
    m = re.search(r"[,;]\s+", text)
    if m and 2 <= len(text[:m.start()].split()) and 2 <= len(text[m.end():].split()):
        first, second = text[:m.start()], text[m.end():].rstrip(" ?.!")
        end = text.rstrip()[-1] if text.rstrip()[-1:] in "?.!" else ""
        return f"{second[:1].upper()}{second[1:]}, {first[:1].lower()}{first[1:]}{end}"
    words = text.split()
    half = len(words) // 2
    return " ".join(words[half:] + words[:half])


# -- unrelated questions (written by the team; none is from any benchmark) ---------------------------------

UNRELATED_QUESTIONS = [
    "A cyclist rides 18 km north and then 24 km east. How far is she from her starting point in a straight line?",
    "Explain why the boiling point of water drops when a kettle is heated at the top of a high mountain.",
    "A capacitor of 47 microfarads is charged to 12 V. How much energy does it store?",
    "Why do the leaves of deciduous trees change colour in autumn? Describe the pigments involved.",
    "Balance the equation for the combustion of propane and give the mass of carbon dioxide produced by 11 g of propane.",
    "Show that the sum of the interior angles of a convex pentagon is 540 degrees.",
    "A bakery sells loaves for 3.20 dollars each and rolls at 4 for 2 dollars. What does an order of 7 loaves and 12 rolls cost?",
    "Describe how the loop of Henle lets the kidney produce urine more concentrated than blood plasma.",
    "What is the time complexity of inserting n keys one by one into an initially empty binary heap, and why?",
    "A monopolist faces demand P = 120 - 2Q and constant marginal cost 20. Find the profit-maximising quantity and price.",
    "Find all real solutions of x^4 - 5x^2 + 4 = 0.",
    "A 2 kg block slides down a frictionless ramp from a height of 3 m. What is its speed at the bottom?",
    "Why does adding salt to an ice bath lower its temperature below 0 degrees Celsius?",
    "Outline the steps by which a bacteriophage injects its DNA into a bacterium and hijacks its machinery.",
    "Given a sorted array of distinct integers, describe an O(log n) algorithm that finds an index i with a[i] = i, if one exists.",
    "In a closed economy, consumption is C = 50 + 0.8Y and investment is 100. Find equilibrium output and the multiplier.",
    "Compute the definite integral of x times e^x from 0 to 1.",
    "Describe the mechanism by which beta-blockers lower blood pressure and name one common side effect.",
    "A gas occupies 5.0 L at 300 K and 1 atm. What volume does it occupy at 450 K and 2 atm?",
    "Why is the sky red at sunset while it is blue at noon?",
    "Prove that there are infinitely many prime numbers of the form 4k + 3.",
    "Explain the difference between a process and a thread in an operating system.",
    "A population of rabbits grows by 12 percent per year. How many years does it take to double, to the nearest year?",
    "What role does the enzyme helicase play during DNA replication?",
    "How many grams of sodium chloride are needed to make 250 mL of a 0.40 M solution?",
    "Explain how comparative advantage can make trade beneficial for two countries even if one is more productive in every good.",
    "A pendulum of length 0.80 m swings on the Moon, where g is 1.62 m/s^2. What is its period?",
    "Describe the symptoms and the usual first-line treatment of iron-deficiency anaemia.",
    "Find the eigenvalues of the matrix with rows (2, 1) and (1, 2) and one eigenvector for each.",
    "Why do metals conduct electricity well while most ceramics do not?",
    "Write the Lewis structure of the nitrate ion and explain why all three N-O bonds have the same length.",
    "A train leaves a station at 9:15 and travels 210 km at an average of 84 km/h. When does it arrive?",
    "How does a hash table handle collisions when open addressing with linear probing is used?",
    "What happens to the equilibrium price and quantity of coffee when the price of tea, a substitute, rises?",
    "Describe how vaccination produces long-term immunity, naming the cells involved.",
    "A lens has a focal length of 15 cm and an object stands 25 cm in front of it. Where is the image and how large is it relative to the object?",
    "Find the derivative of f(x) = ln(x^2 + 1) and the points where the tangent is horizontal.",
    "Explain why the first ionisation energy drops from magnesium to aluminium.",
    "What is the function of the myelin sheath, and what disease results from its breakdown in the central nervous system?",
    "Describe the difference between TCP and UDP and give one application suited to each.",
    "A farmer has 240 m of fencing to enclose a rectangular field along a straight river, fencing only three sides. What dimensions give the largest area?",
    "Why does a spinning ice skater speed up when she pulls her arms in?",
    "Explain how a buffer made of acetic acid and sodium acetate resists changes in pH when a small amount of acid is added.",
    "How does the Federal Reserve's purchase of government bonds affect the money supply and short-term interest rates?",
    "A fair die is rolled three times. What is the probability that the sum is exactly 10?",
    "Describe the stages of mitosis and what happens to the chromosomes in each.",
    "Why must a recursive function have a base case? Give an example of what happens without one.",
    "How much heat is needed to warm 2.0 kg of water from 20 to 80 degrees Celsius?",
    "A loan of 10,000 dollars is repaid over 5 years at 6 percent annual interest compounded yearly. What is the yearly payment?",
    "Explain why the greenhouse effect warms the lower atmosphere, naming two greenhouse gases.",
]


@dataclass(frozen=True)
class PlantedRow:
    id: str
    question: str
    kind: str                  # "verbatim" | "edited" | "reordered" | "unrelated"
    source: BenchmarkQuestion | None


KINDS = ("verbatim", "edited", "reordered")


def plant(questions_by_benchmark: dict[str, list[BenchmarkQuestion]], per_kind_per_benchmark: int,
          seed: int = 0) -> list[PlantedRow]:
    """Distinct benchmark questions per kind and benchmark, plus every unrelated question."""
    rng = random.Random(seed)
    rows: list[PlantedRow] = []
    for bench in sorted(questions_by_benchmark):
        pool = [q for q in questions_by_benchmark[bench] if len(q.stem.split()) >= 4]
        picked = rng.sample(pool, min(len(pool), 3 * per_kind_per_benchmark))
        for k, kind in enumerate(KINDS):
            for q in picked[k::3]:
                text = q.text if kind == "verbatim" else \
                    edit_lightly(q.text, rng) if kind == "edited" else reorder(q.text, rng)
                rows.append(PlantedRow(records.content_id("planted", kind, q.id), text, kind, q))
    for text in UNRELATED_QUESTIONS:
        rows.append(PlantedRow(records.content_id("unrelated", text), text, "unrelated", None))
    return rows


def planted_table(rows: Sequence[PlantedRow]) -> pa.Table:
    return pa.table({
        records.ID: [r.id for r in rows],
        records.PROVENANCE: [records.new_provenance({"kind": "planted", "planted_kind": r.kind}) for r in rows],
        "question": [r.question for r in rows],
    })


class PlantedPairJudge:
    """A scripted judge backend: YES for the rendered prompt of each planted pair, NO for any other pair."""

    model_id = "scripted/planted-pair-judge"
    revision = "0"

    def __init__(self, template, rows: Sequence[PlantedRow]):
        self._yes = {template.render(question=r.question, candidate=r.source.text)[-1]["content"]
                     for r in rows if r.source is not None}
        self.calls = 0

    def generate(self, requests) -> list[GenerationResult]:
        self.calls += len(requests)
        out = []
        for req in requests:
            same = req.messages[-1]["content"] in self._yes
            out.append(GenerationResult(text=f"Analysis: scripted.\nDecision: {'YES' if same else 'NO'}",
                                        finish_reason="stop"))
        return out

    def close(self) -> None:
        pass


def score(rows: Sequence[PlantedRow], dropped: Sequence[tuple[int, str]]) -> dict[str, dict[str, float]]:
    """Per kind: planted rows, rows removed, recall (or false-positive rate for "unrelated"), removals by method."""
    reasons = dict(dropped)
    out: dict[str, dict[str, float]] = {}
    for kind in (*KINDS, "unrelated"):
        idx = [i for i, r in enumerate(rows) if r.kind == kind]
        by = Counter(reasons[i] for i in idx if i in reasons)
        removed = sum(by.values())
        out[kind] = {"rows": len(idx), "removed": removed, "rate": removed / len(idx) if idx else 0.0,
                     **{m: by.get(f"contaminated_{m}", 0) for m in ("exact", "ngram", "judge")}}
    return out


def frequent_runs(questions: Sequence[BenchmarkQuestion], n: int = 13, top: int = 20) -> list[tuple[str, int]]:
    """The `top` word runs of length n that the most distinct benchmark questions share (stock preambles,
    instructions), with how many share each: the material of boilerplate false positives."""
    counts: Counter[str] = Counter()
    for q in questions:
        words = normalize(q.stem).split()
        counts.update({" ".join(words[i:i + n]) for i in range(len(words) - n + 1)})
    runs = [(run, c) for run, c in counts.most_common() if c > 1]
    picked: list[tuple[str, int]] = []
    for run, c in runs:                    # one run per preamble: skip runs overlapping a picked one
        if not any(len(set(run.split()) & set(p.split())) > n // 2 for p, _ in picked):
            picked.append((run, c))
        if len(picked) == top:
            break
    return picked


def boilerplate_rows(runs: Sequence[tuple[str, int]], per_run: int = 3) -> list[str]:
    """Training questions made of a frequent benchmark run followed by an unrelated question."""
    out = []
    for i, (run, _) in enumerate(runs):
        for j in range(per_run):
            out.append(f"{run}. {UNRELATED_QUESTIONS[(i * per_run + j) % len(UNRELATED_QUESTIONS)]}")
    return out


# -- labelled pairs for measuring the judge ------------------------------------------------------------

# Hand-written paraphrases (both sides by the team): the same problem with the same given values, reworded.
PARAPHRASE_PAIRS = [
    ("A car travels 150 km in 2.5 hours. What is its average speed in km/h?",
     "What average speed, in kilometres per hour, does a car have if it covers 150 km in two and a half hours?"),
    ("How many grams of sodium chloride are needed to make 500 mL of a 0.2 M solution?",
     "To prepare half a litre of 0.2 molar NaCl solution, what mass of sodium chloride must be dissolved?"),
    ("What is the probability of getting exactly two heads in three tosses of a fair coin?",
     "A fair coin is tossed three times. Find the chance that heads comes up exactly twice."),
    ("Which enzyme unwinds the DNA double helix at the replication fork?",
     "At the replication fork, what enzyme is responsible for separating the two strands of the DNA helix?"),
    ("A 10 ohm resistor carries a current of 3 A. How much power does it dissipate?",
     "Find the power dissipated by a resistor of 10 ohms through which 3 amperes flow."),
    ("What is the derivative of x^3 sin(x) with respect to x?",
     "Differentiate the function x^3 times sin x with respect to x."),
    ("A patient presents with polyuria, polydipsia and weight loss. Which hormone deficiency is most likely?",
     "Weight loss together with excessive urination and thirst in a patient points to a deficiency of which hormone?"),
    ("What is the time complexity of binary search on a sorted array of n elements?",
     "On a sorted array holding n items, how does the running time of binary search grow with n?"),
    ("If the price of a good rises from $4 to $5 and demand falls from 100 to 80 units, what is the price "
     "elasticity of demand (simple percentage method)?",
     "Demand drops from 100 units to 80 units when the price goes up from 4 dollars to 5 dollars. Using simple "
     "percentage changes, compute the price elasticity of demand."),
    ("Calculate the pH of a 0.01 M solution of hydrochloric acid.",
     "What pH does hydrochloric acid have at a concentration of 0.01 mol per litre?"),
    ("A ball is dropped from a height of 20 m. How long does it take to hit the ground? (g = 9.8 m/s^2)",
     "Taking g as 9.8 m/s^2, find the time a ball released from rest 20 m above the ground needs to reach it."),
    ("Janet has 12 apples and gives a third of them to her brother. How many apples does she have left?",
     "After giving one third of her 12 apples to her brother, how many apples remain with Janet?"),
]

PAIR_CLASSES = ("copy", "edited", "reordered", "paraphrase", "neighbour", "shared_phrasing", "changed_number")
POSITIVE = ("copy", "edited", "reordered", "paraphrase")      # the judge should say YES
NEGATIVE = ("neighbour", "shared_phrasing")                   # different problems: NO
# "changed_number": the same wording with one given value changed, reported apart (a policy case)

_NUMBER = re.compile(r"(?<![\w.])(\d+)(?![\w.])")


def change_a_number(text: str) -> str | None:
    m = _NUMBER.search(text)
    if m is None:
        return None
    return text[:m.start()] + str(int(m.group(1)) + 3) + text[m.end():]


@dataclass(frozen=True)
class LabelledPair:
    kind: str
    question: str          # the training side
    candidate: str         # the benchmark side


def labelled_pairs(questions: Sequence[BenchmarkQuestion], embeddings, per_class: int, seed: int = 0
                   ) -> list[LabelledPair]:
    """`per_class` pairs of each PAIR_CLASSES kind from benchmark questions (and the hand-written
    paraphrases): copies, light edits, reorderings; hard negatives: a question's nearest other question of
    the same benchmark by embedding (same topic, different problem) and two questions sharing one of the
    most frequent 13-word runs (same stock phrasing); and one given number changed."""
    import numpy as np

    rng = random.Random(seed)
    pool = [i for i, q in enumerate(questions) if 6 <= len(q.stem.split()) <= 120]
    picked = rng.sample(pool, min(len(pool), per_class * 4))
    pairs = []
    for k, kind in enumerate(("copy", "edited", "reordered")):
        for i in picked[k::4][:per_class]:
            q = questions[i].text
            side = q if kind == "copy" else edit_lightly(q, rng) if kind == "edited" else reorder(q, rng)
            pairs.append(LabelledPair(kind, side, q))
    pairs += [LabelledPair("paraphrase", b, a) for a, b in PARAPHRASE_PAIRS[:per_class]]
    by_bench: dict[str, list[int]] = {}
    for i, q in enumerate(questions):
        by_bench.setdefault(q.benchmark, []).append(i)
    for i in picked[3::4][:per_class]:
        same = [j for j in by_bench[questions[i].benchmark] if j != i and questions[j].stem != questions[i].stem]
        sims = embeddings[same] @ embeddings[i]
        j = same[int(np.argmax(sims))]
        pairs.append(LabelledPair("neighbour", questions[i].text, questions[j].text))
    shared = []
    for run, _ in frequent_runs(questions, top=per_class * 2):
        owners = [q for q in questions if run in normalize(q.stem)]
        distinct = list({normalize(q.stem): q for q in owners}.values())
        if len(distinct) >= 2:
            a, b = rng.sample(distinct, 2)
            shared.append(LabelledPair("shared_phrasing", a.text, b.text))
    pairs += shared[:per_class]
    changed = []
    for i in rng.sample(pool, len(pool)):
        other = change_a_number(questions[i].text)
        if other is not None:
            changed.append(LabelledPair("changed_number", other, questions[i].text))
        if len(changed) == per_class:
            break
    return pairs + changed
