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


def _paper_table(text: str, heading: str) -> dict[str, list[str]]:
    """{row name: cells} of the first markdown table after `heading` in paper.md (bold marks dropped)."""
    lines = text[text.index(heading):].splitlines()
    start = next(k for k, ln in enumerate(lines) if ln.startswith("|"))
    block = []
    for ln in lines[start:]:
        if not ln.startswith("|"):
            break
        block.append([c.strip().strip("*") for c in ln.strip().strip("|").split("|")])
    return {r[0]: r[1:] for r in block[2:]}


def test_published_scores_are_the_papers_tables(shared_benchmarks):
    paper = shared_benchmarks.parent / "reference" / "paper.md"     # the shared folder's facts about the paper
    assert paper.is_file(), f"expected the paper's tables in {paper}"
    text = paper.read_text(encoding="utf-8")
    pub = published()
    columns = {"Table 6": ("### 5.2", ["Qwen2.5-7B-Instruct", "Qwen2.5-7B + SCP-116K-DC", "Qwen2.5-7B + NaturalReasoning-DC",
                                       "Qwen2.5-7B + Nemotron-Science-DC", "Qwen2.5-7B + TextbookReasoning",
                                       "Qwen2.5-7B-MegaScience"]),
               "Table 12": ("**Table 12", [f"{m}-{k}" for m in ("Llama3.1-8B", "Qwen2.5-1.5B", "Qwen2.5-3B", "Qwen2.5-7B")
                                           for k in ("Instruct", "MegaScience")]),
               "Table 13": ("**Table 13", [f"Qwen3-{m}-{k}" for m in ("1.7B", "4B", "8B", "14B", "30B-A3B")
                                           for k in ("Instruct", "MegaScience")])}
    checked = 0
    for heading, names in columns.values():
        rows = _paper_table(text, heading)
        for k, name in enumerate(names):
            for bench in ALL14:
                assert pub[name]["benchmarks"][bench] == pytest.approx(float(rows[bench][k])), (name, bench)
                checked += 1
            assert pub[name]["average"] == pytest.approx(float(rows["Average"][k])), name
    t7 = _paper_table(text, "### 5.3")
    for name, cells in t7.items():
        assert [pub[name]["aggregates"][g] for g in ("General", "Specific", "Math", "All")] == \
            pytest.approx([float(c) for c in cells]), name
    assert checked == 14 * (6 + 8 + 10)
