"""The published scores transcribed from the paper are self-consistent, and runs match them by model id."""
from __future__ import annotations

import pytest

from megascience_eval.published import match_model, published
from megascience_eval.scores import ALL14, GENERAL, MATH, SPECIFIC, aggregates


@pytest.mark.parametrize("name", list(published()))
def test_every_published_average_is_the_mean_of_its_14_scores(name):
    entry = published()[name]
    scores = entry["benchmarks"]
    assert list(scores) == list(ALL14)
    assert sum(scores.values()) / 14 == pytest.approx(entry["average"], abs=0.006)
    if "aggregates" in entry:                                       # Table 7 agrees with Tables 12/13
        ours = aggregates(scores)
        for group in ("General", "Specific", "Math", "All"):
            assert ours[group]["value"] == pytest.approx(entry["aggregates"][group], abs=0.011), group


def test_groups_and_matching():
    assert len(GENERAL) == 5 and len(SPECIFIC) == 6 and len(MATH) == 3
    assert match_model("Qwen/Qwen2.5-7B-Instruct") == "Qwen2.5-7B-Instruct"
    assert match_model("MegaScience/Qwen3-8B-MegaScience") == "Qwen3-8B-MegaScience"
    assert match_model("HuggingFaceTB/SmolLM2-135M-Instruct-Q4_1-gguf") is None
    assert published()["Qwen2.5-7B-Instruct"]["benchmarks"]["GSM8K"] == 91.96
