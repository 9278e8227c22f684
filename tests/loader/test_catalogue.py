"""The catalogue: every configuration, validated; the embedded sample matches it."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from megascience_datasets.catalogue import CatalogueError, load_catalogue, parse_catalogue
from megascience_datasets.integrity import Digest, Expected, check_digest
from megascience_datasets.errors import IntegrityError
from megascience_datasets.resolve import _expectations, sample_dir
from megascience_datasets.sources import RemoteFile

RAW = yaml.safe_load((Path(__file__).resolve().parents[2] / "megascience_datasets" / "catalogue.yaml").read_text())

EXPECTED = {
    "released": ["textbook", "megascience", "megascience_textbook", "megascience_natural_reasoning",
                 "megascience_nemotron_science"],
    "selection": ["natural_reasoning_dc", "natural_reasoning_dc_length", "natural_reasoning_dc_difficulty",
                  "natural_reasoning_dc_random", "natural_reasoning_dc_signals", "nemotron_science_dc",
                  "nemotron_science_dc_length", "nemotron_science_dc_difficulty", "nemotron_science_dc_random",
                  "nemotron_science_dc_signals", "textbook_length", "textbook_difficulty", "textbook_random",
                  "textbook_signals"],
    "pipeline": ["textbook_no_decontam", "textbook_no_cot", "textbook_no_refine", "textbook_refined_by_extractor",
                 "textbook_difficulty_distill", "textbook_hardest"],
    "decontamination": ["scp116k", "scp116k_dc", "natural_reasoning", "nemotron_science"],
}


def test_every_configuration_of_the_design():
    cat = load_catalogue()
    for group, names in EXPECTED.items():
        assert [e.name for e in cat.group(group)] == names
    tb, ms = cat["textbook"], cat["megascience"]
    assert (tb.source.repo, tb.source.revision, tb.rows) == (
        "MegaScience/TextbookReasoning", "c172938626fef7f68c979f5858ab8beb7adef5bf", 651840)
    assert (ms.source.repo, ms.source.revision, ms.source.resolve, ms.rows) == (
        "MegaScience/MegaScience", None, "main", 1253230)
    assert list(tb.features.items()) == [(c, "string") for c in ("question", "answer", "subject", "reference_answer")]
    assert list(ms.features) == ["question", "answer", "subject", "reference_answer", "source"]
    assert set(ms.features.values()) == {"string"}
    # the paper's Table 3 sizes and the selection protocol (difficulty fixes n for length and random)
    sizes = {e.name: e.paper_rows for e in cat}
    assert sizes["natural_reasoning_dc_random"] == 436400 and sizes["nemotron_science_dc_difficulty"] == 173300
    assert sizes["textbook_length"] == 297600 and sizes["natural_reasoning_dc"] == 1079000
    for e in cat:
        if e.derived and e.derived.rule in ("select_length", "select_random"):
            assert e.derived.parameters["n_from"].endswith("_difficulty")
        if e.derived and e.derived.rule == "select_random":
            assert isinstance(e.derived.seed, int)
        assert "@article{fan2025megascience" in e.citation


def _config(raw, name):
    return next(c for c in raw["configs"] if c["name"] == name)


def test_build_outputs_are_declared_once():
    """Every configuration our pipelines build says which pipeline stage gives it; the views the loader derives
    from released data (megascience_<part>) have none."""
    cat = load_catalogue()
    views = {e.name for e in cat if e.derived and e.derived.rule == "source_view"}
    assert {e.name for e in cat if e.build is None} == views == {
        "megascience_textbook", "megascience_natural_reasoning", "megascience_nemotron_science"}
    assert cat["textbook"].build.stage is None and cat["textbook"].build.upstream == "input"
    assert (cat["scp116k_dc"].build.pipeline, cat["scp116k_dc"].build.stage) == ("scp116k", "decontaminate")
    hardest = cat["textbook_hardest"].build
    assert (hardest.pipeline, hardest.stage, hardest.member) == (
        "textbook_selection", "select_subsets", "selected_difficulty_distill")
    assert cat["natural_reasoning_dc_signals"].build.signals and cat["natural_reasoning_dc_signals"].build.member is None


def _broken(mutate):
    raw = copy.deepcopy(RAW)
    mutate(raw)
    return raw


@pytest.mark.parametrize("mutate, message", [
    (lambda r: r["configs"][0].pop("license"), "configuration 'textbook': missing field 'license'"),
    (lambda r: r["configs"][0]["source"].update(revision="c1729386"), "must be a full 40-hex sha"),
    (lambda r: r["features"]["textbook_released"].update(subject="category"), "column 'subject' has type 'category'"),
    (lambda r: r["configs"].append(dict(r["configs"][0])), "duplicate configuration name(s) ['textbook']"),
    (lambda r: r["configs"][2]["derived"].update(parent="nowhere"), "unknown parent 'nowhere'"),
    (lambda r: next(c for c in r["configs"] if c["name"] == "natural_reasoning_dc_random")["derived"].update(seed=None),
     "a random selection needs a seed"),
    (lambda r: r["configs"][0].update(name="Text-Book"), "does not match"),
    (lambda r: r["configs"][0].update(rows="many"), "field 'rows' is 'many'"),
    (lambda r: r["configs"][0]["build"].update(stag="finalize"), "configuration 'textbook' build: unknown field(s) ['stag']"),
    (lambda r: r["configs"][0]["build"].pop("pipeline"), "configuration 'textbook' build: missing field 'pipeline'"),
    (lambda r: r["configs"][0]["build"].update(upstream="hub"), "upstream 'hub' not in ('source', 'input')"),
    (lambda r: _config(r, "textbook_signals")["build"].update(member="selected_random"), "not both"),
    (lambda r: _config(r, "textbook_random")["build"].update(member="selected_length"),
     "configurations ['textbook_length', 'textbook_random'] are declared as the same build output"),
])
def test_broken_catalogues_are_clear_errors(mutate, message):
    with pytest.raises(CatalogueError) as ei:
        parse_catalogue(_broken(mutate))
    assert message in str(ei.value)


def test_hub_lfs_and_git_blob_witnesses():
    listing = [RemoteFile("data/train-0.parquet", 10, sha256="a" * 64)]
    exp = _expectations("here", listing, None, None, "textbook")
    assert exp[0].origin == "hub-lfs" and exp[0].sha256 == "a" * 64
    with pytest.raises(IntegrityError, match="sha256 " + "b" * 64 + ", expected " + "a" * 64 + r" \(per hub-lfs\)"):
        check_digest(Digest(10, "b" * 64, None), exp[0], "here")
    blob = Expected("data/x.parquet", 10, None, git_oid="c" * 40, origin="git-blob")
    with pytest.raises(IntegrityError, match="git blob id"):
        check_digest(Digest(10, "b" * 64, "d" * 40), blob, "here")
    with pytest.raises(IntegrityError, match="no checksum known"):
        check_digest(Digest(10, "b" * 64, None), Expected("p", 10), "here")


def test_embedded_sample_is_current_and_marked(tmp_path):
    from megascience_datasets.make_sample import main
    main(tmp_path / "sample")
    for p in sorted(sample_dir().rglob("*")):
        if p.is_file():
            assert (tmp_path / "sample" / p.relative_to(sample_dir())).read_bytes() == p.read_bytes(), \
                f"{p} is stale: python -m megascience_datasets.make_sample"
    readme = (sample_dir() / "README.md").read_text()
    assert "**Sample.**" in readme and "hand-written" in readme
    import json
    manifest = json.loads((sample_dir() / "manifest.json").read_text())
    assert sorted(manifest["configs"]) == sorted(load_catalogue().names)
