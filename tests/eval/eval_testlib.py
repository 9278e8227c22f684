"""Helpers for the eval tests: small synthetic benchmark files and an eval registry naming them."""
from __future__ import annotations

import json
from pathlib import Path

import yaml

N = 40


def write_synthetic(root: Path) -> Path:
    """Two local benchmarks (numeric jsonl, multiple-choice json) and a registry for them; returns the registry."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "sums.jsonl", "w") as f:
        for i in range(N):
            f.write(json.dumps({"q": f"Item {i}: what is {i} plus {2 * i}?", "a": f"work...\n#### {3 * i}"}) + "\n")
    mc = [{"question": f"Item {i}: what is {i} plus 1?", "choices": [str(i + 1), str(i + 2), str(i + 3)], "label": 0}
          for i in range(N)]
    (root / "mc.json").write_text(json.dumps(mc))
    reg = {"sets": {"synthetic": ["sums", "mc"]},
           "benchmarks": {
               "sums": {"paper": "GSM8K", "source": {"file": {"path": "sums.jsonl"}}, "type": "numeric",
                        "template": "math", "question": "q", "answer": "a", "answer_format": "gsm8k"},
               "mc": {"paper": "MedQA", "source": {"file": {"path": "mc.json"}}, "type": "multiple_choice",
                      "template": "multiple_choice", "question": "question", "options": ["choices"],
                      "answer": "label", "answer_format": "index"}}}
    path = root / "registry.yaml"
    path.write_text(yaml.safe_dump(reg, sort_keys=False))
    return path


SCRIPTED = {"backend": "scripted", "model": "scripted-eval", "batch_size": 8,
            "options": {"responder": "eval_responder:answer"}}
