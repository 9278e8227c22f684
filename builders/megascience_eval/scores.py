"""Scores from the instance table: per sub-part, per paper benchmark, and the paper's aggregates.

Accuracy is in percent (as the paper prints it). A benchmark with several sub-parts (ChemBench: multiple
choice + string match; CS-Bench: assertion + multiple choice; SciBench: physics, chemistry, math; MATH:
seven subjects) is scored sample-weighted: all its questions pooled, which is what the authors' toolkit's
`aggregate_metrics` does (the paper does not say; see its reference notes); the macro mean over
sub-parts is kept beside it. Aggregates follow the paper's §4 (verified against its tables):
  General  = mean of MMLU-Pro, GPQA-D, SuperGPQA, SciBench, OlympicArena
  Specific = mean of ChemBench, CS-Bench, MedQA, MedMCQA, PubMedQA, PIQA
  Math     = mean of GSM8K, MATH, MATH500
  All      = unweighted mean of the 14 (MMLU is reported apart, never averaged in)
An aggregate over a run that lacks some of its benchmarks is the mean of those present, marked partial
with how many it covers; it is not comparable with the paper's number until it is complete.
"""
from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from typing import Any, Iterable, Mapping

GENERAL = ("MMLU-Pro", "GPQA-D", "SuperGPQA", "SciBench", "OlympicArena")
SPECIFIC = ("ChemBench", "CS-Bench", "MedQA", "MedMCQA", "PubMedQA", "PIQA")
MATH = ("GSM8K", "MATH", "MATH500")
ALL14 = GENERAL + SPECIFIC + MATH
APART = ("MMLU",)
AGGREGATES = {"General": GENERAL, "Specific": SPECIFIC, "Math": MATH, "All": ALL14}
COMBINATION = ("sub-parts pooled (sample-weighted mean, as the authors' toolkit aggregates); "
               "macro mean over sub-parts shown beside it")


def _pct(correct: int, n: int) -> float | None:
    return round(100.0 * correct / n, 2) if n else None


def _tally(rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    rows = list(rows)
    n = len(rows)
    correct = sum(1 for r in rows if r["correct"])
    status = Counter(r["status"] for r in rows)
    finish = Counter(r["finish_reason"] for r in rows)
    return {"n": n, "correct": correct, "accuracy": _pct(correct, n), "no_answer": status.get("no_answer", 0),
            "truncated": finish.get("length", 0), "errors": finish.get("error", 0),
            "methods": dict(sorted(Counter(r["method"] for r in rows).items()))}


def compute_scores(instances: list[Mapping[str, Any]]) -> dict[str, Any]:
    """{"subparts": {benchmark entry: tally}, "benchmarks": {paper name: tally + macro}, "aggregates": ...}."""
    by_entry: dict[str, list] = defaultdict(list)
    by_paper: dict[str, list] = defaultdict(list)
    entry_paper: dict[str, tuple[str, str]] = {}
    groups: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for r in instances:
        by_entry[r["benchmark"]].append(r)
        by_paper[r["paper"]].append(r)
        entry_paper[r["benchmark"]] = (r["paper"], r["subpart"])
        if r.get("group"):
            groups[r["benchmark"]][r["group"]].append(r)
    subparts = {e: {"paper": entry_paper[e][0], "subpart": entry_paper[e][1], **_tally(rs),
                    "questions_sha256": questions_digest(rs)} for e, rs in sorted(by_entry.items())}
    benchmarks = {}
    for paper, rs in sorted(by_paper.items()):
        parts = [s for s in subparts.values() if s["paper"] == paper]
        accs = [p["accuracy"] for p in parts if p["accuracy"] is not None]
        benchmarks[paper] = {**_tally(rs), "subparts": [p["subpart"] for p in parts],
                             "macro_accuracy": round(sum(accs) / len(accs), 2) if accs else None}
    return {"subparts": subparts, "benchmarks": benchmarks, "aggregates": aggregates(
        {k: v["accuracy"] for k, v in benchmarks.items()}),
        "groups": {e: {g: _tally(rs)["accuracy"] for g, rs in sorted(gs.items())} for e, gs in sorted(groups.items())},
        "combination": COMBINATION,
        "no_answer": sum(s["no_answer"] for s in subparts.values()), "questions": len(instances)}


def questions_digest(rows: Iterable[Mapping[str, Any]]) -> str:
    """sha256 over the sorted question ids: two runs scored the same questions exactly when it is equal."""
    return hashlib.sha256("\n".join(sorted(str(r["id"]) for r in rows)).encode()).hexdigest()


def aggregates(scores: Mapping[str, float | None]) -> dict[str, dict[str, Any]]:
    """The paper's group means over whichever of their benchmarks `scores` has."""
    out = {}
    for name, members in AGGREGATES.items():
        have = [scores[m] for m in members if scores.get(m) is not None]
        out[name] = {"value": round(sum(have) / len(have), 2) if have else None, "covered": len(have),
                     "of": len(members), "complete": len(have) == len(members)}
    return out
