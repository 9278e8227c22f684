"""Which configuration is which pipeline stage's output, as the catalogue's `build:` keys declare it: each names
a packaged pipeline and one of its stages, and the release reads its mapping from there."""
from __future__ import annotations

from pathlib import Path

import pytest

from megascience_build.engine.pipeline_config import load_pipeline
from megascience_build.release import ReleaseError
from megascience_build.release.catalogue_builds import builder_of, builds, layout, pipelines
from megascience_build.stages.mixture import SUBSET_COLUMNS

PIPELINES = Path(__file__).resolve().parents[2] / "builders" / "megascience_build" / "pipelines"


def test_every_build_names_a_packaged_pipeline_and_its_stage():
    for config, build in builds().items():
        pipeline = load_pipeline(PIPELINES / f"{build.pipeline}.yaml")
        assert pipeline.name == build.pipeline
        stages = {s.label: s.stage.name for s in pipeline.stages}
        label = build.stage or pipeline.stages[-1].label
        assert label in stages, f"{config}: pipeline {build.pipeline!r} has no stage {label!r}"
        if build.member is not None or build.signals:
            assert stages[label] == "select_subsets", config
        assert build.member in (None, *SUBSET_COLUMNS.values()), config


def test_the_paper_configurations_of_each_pipeline():
    assert {c: (b.stage, b.member) for c, b in layout("natural_reasoning").items()} == {
        "natural_reasoning_dc": ("decontaminate", None),
        "natural_reasoning_dc_length": ("select_subsets", "selected_length"),
        "natural_reasoning_dc_difficulty": ("select_subsets", "selected_difficulty"),
        "natural_reasoning_dc_random": ("select_subsets", "selected_random"),
        "natural_reasoning_dc_signals": ("select_subsets", None),
        "natural_reasoning": ("dedup", None)}
    assert {c: b.stage for c, b in layout("scp116k").items()} == {"scp116k": "dedup", "scp116k_dc": "decontaminate"}
    assert list(layout("textbook_selection")) == ["textbook_length", "textbook_difficulty", "textbook_random",
                                                  "textbook_signals", "textbook_hardest"]
    assert list(layout("textbook_no_cot")) == ["textbook_no_cot"] and layout("megascience")["megascience"].stage == "mixture"
    assert builder_of("textbook_hardest") == "textbook_selection" and builder_of("megascience_textbook") is None
    assert set(pipelines()) == {"textbook", "megascience", "natural_reasoning", "nemotron_science",
                                "textbook_selection", "textbook_no_decontam", "textbook_no_cot", "textbook_no_refine",
                                "textbook_refined_by_extractor", "textbook_difficulty_distill", "scp116k"}
    with pytest.raises(ReleaseError, match="no configurations known for pipeline 'texbook'; known: textbook, "):
        layout("texbook")
