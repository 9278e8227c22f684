"""Pipeline files: every mistake is a StageError naming file, stage and field, raised before any work."""
from __future__ import annotations

import pytest
import yaml

from engine_testlib import write_pipeline
from megascience_build.engine.pipeline_config import load_pipeline
from megascience_build.engine.stage import StageError
from megascience_build.engine.workdir import WorkDir


def edit(path, fn):
    doc = yaml.safe_load(path.read_text())
    fn(doc)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def test_loads_and_resolves(pipeline):
    cfg = load_pipeline(pipeline)
    assert [s.label for s in cfg.stages] == ["tag", "answer", "dedup", "upper"]
    answer = cfg.stages[1]
    assert answer.llm_roles == ("gen",) and answer.uses_model and not cfg.stages[0].uses_model
    assert answer.sampling.max_tokens == 32 and answer.sampling.seed == 0
    assert answer.prompts["ask"].name == "ask" and len(answer.prompts["ask"].sha256) == 64
    assert cfg.input.kind == "parquet" and cfg.input.rows_per_shard == 5
    assert WorkDir.stage_dirname(answer.index, answer.label) == "01_answer"


@pytest.mark.parametrize("mutate, expected", [
    (lambda d: d["stages"][1].update(stage="no_such_stage"), ["stage #1", "unknown stage 'no_such_stage'"]),
    (lambda d: d["stages"][1].update(llm="writer"), ["stage #1 ('answer')", "unknown model role 'writer'"]),
    (lambda d: d["stages"][1].update(prompts={"ask": "missing.txt"}), ["stage #1 ('answer')", "prompts.ask", "missing.txt"]),
    (lambda d: d["stages"][1].update(prompts={}), ["stage #1 ('answer')", "lacks slot(s) ['ask']"]),
    (lambda d: d["stages"][0].update(params={"min_lenght": 3}), ["stage #0", "unknown parameter(s) ['min_lenght']"]),
    (lambda d: d["stages"][0].update(params={"min_len": "3"}), ["stage #0", "field 'params'", "stage 'tag'",
                                                                "parameter 'min_len' must be an integer, got '3'"]),
    (lambda d: d.pop("plugins"), ["stage #0 ('tag')", "unknown stage 'test_tag_length'", "`plugins:`"]),
    (lambda d: d["stages"][1].update(sampling={"temprature": 1}), ["stage #1 ('answer')", "sampling", "temprature"]),
    (lambda d: d["stages"][0].update(colour="red"), ["stage #0 ('tag')", "colour"]),
    (lambda d: d.pop("input"), ["field 'input'"]),
    (lambda d: d["input"].update(parquet=["nothing/*.parquet"]), ["input.parquet", "matches no file"]),
    (lambda d: d["models"]["gen"].pop("model"), ["model role 'gen' has no `model`"]),
    (lambda d: d["stages"].append({"stage": "test_upper", "label": "upper"}), ["label 'upper' is used twice"]),
])
def test_bad_configuration_is_named(tmp_path, mutate, expected):
    from megascience_build.engine.executor_local import run_local
    from megascience_build.engine.orchestration import RunOptions
    path = edit(write_pipeline(tmp_path / "p"), mutate)
    with pytest.raises(StageError) as err:
        run_local(load_pipeline(path), tmp_path / "work", RunOptions(progress=False))
    message = str(err.value)
    for part in expected:
        assert part in message, message
    assert not (tmp_path / "work" / "stages").exists()


def test_model_and_backend_overrides(pipeline):
    edit(pipeline, lambda d: d["models"]["gen"].pop("options"))   # they were the fake backend's
    cfg = load_pipeline(pipeline, backend="scripted", models={"gen": "other/model@abc"}, limit=3)
    assert (cfg.models["gen"]["backend"], cfg.models["gen"]["model"], cfg.models["gen"]["revision"]) == \
        ("scripted", "other/model", "abc")
    assert cfg.limit == 3
    with pytest.raises(StageError, match="unknown model role 'judge'"):
        load_pipeline(pipeline, models={"judge": "x"})
    with pytest.raises(StageError, match="--limit"):
        load_pipeline(pipeline, limit=0)


def test_unreadable_and_invalid_yaml(tmp_path):
    with pytest.raises(StageError, match="cannot read"):
        load_pipeline(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("stages: [\n")
    with pytest.raises(StageError, match="not valid YAML"):
        load_pipeline(bad)


@pytest.mark.parametrize("model, expected", [
    ({"backend": "no-such-backend", "model": "m"}, "unknown generation backend 'no-such-backend'"),
    ({"backend": "sentence-transformers", "model": "m"}, "unknown generation backend 'sentence-transformers'"),
    ({"backend": "scripted", "model": "m", "options": {"rulez": []}}, "does not accept ['rulez']"),
    ({"backend": "scripted", "model": "m", "temperature": 0}, "unknown field(s) ['temperature']"),
    ({"backend": "scripted", "model": "m", "batch_size": 0}, "'batch_size' must be a positive integer"),
    ({"backend": "engine_plugins:NoSuchFactory", "model": "m"}, "cannot import backend factory"),
])
def test_bad_model_spec_is_named(tmp_path, model, expected):
    path = edit(write_pipeline(tmp_path / "p"), lambda d: d["models"].update(gen=model))
    with pytest.raises(StageError) as err:
        load_pipeline(path)
    assert "model role 'gen'" in str(err.value) and expected in str(err.value)


def test_backend_override_applies_to_generation_roles_only(tmp_path):
    path = edit(write_pipeline(tmp_path / "p"),
                lambda d: d["models"].update(emb={"backend": "sentence-transformers", "model": "minilm"}))
    with pytest.raises(StageError, match=r"backend 'scripted' does not accept \['calls_file'\]"):
        load_pipeline(path, backend="scripted")        # the options were written for the other backend
    path = edit(path, lambda d: d["models"]["gen"].pop("options"))
    cfg = load_pipeline(path, backend="scripted")
    assert cfg.models["gen"]["backend"] == "scripted" and cfg.models["emb"]["backend"] == "sentence-transformers"
    with pytest.raises(StageError, match="unknown generation backend 'nope'"):
        load_pipeline(path, backend="nope")


PACKAGED = __import__("pathlib").Path(__file__).resolve().parents[2] / "builders" / "megascience_build" / "pipelines"


def test_variant_removes_and_overrides_stages_of_its_base(tmp_path):
    variant = tmp_path / "variant.yaml"
    variant.write_text(yaml.safe_dump({
        "extends": str(PACKAGED / "textbook.yaml"), "name": "v",
        "remove_stages": ["cot"],
        "override_stages": {"refine": {"llm": "extractor", "params": {"max_chunk_chars": 1000}},
                            "dedup": {"params": {"threshold": 0.7}}}}))
    base = load_pipeline(PACKAGED / "textbook.yaml")
    config = load_pipeline(variant)
    labels = [s.label for s in config.stages]
    assert "cot" not in labels and labels == [s.label for s in base.stages if s.label != "cot"]
    refine = next(s for s in config.stages if s.label == "refine")
    assert refine.llm_roles == ("extractor",) and refine.stage.params["max_chunk_chars"] == 1000
    dedup = next(s for s in config.stages if s.label == "dedup")
    assert dedup.stage.params["threshold"] == 0.7 and dedup.stage.params["mode"] == "paper"   # merged, not replaced
    # the base's relative input still points next to the base file, not next to the variant
    assert config.input.patterns == base.input.patterns
    assert config.name == "v" and config.sha256 != base.sha256


@pytest.mark.parametrize("change, expected", [
    ({"remove_stages": ["nope"]}, r"remove_stages': no stage labelled 'nope'"),
    ({"override_stages": {"nope": {"gpus": 1}}}, r"override_stages': no stage labelled 'nope'"),
    ({"extends": "missing.yaml"}, r"field 'extends': cannot load .*missing\.yaml"),
])
def test_variant_errors_name_the_field_and_label(tmp_path, change, expected):
    doc = {"extends": str(PACKAGED / "textbook.yaml"), **change}
    (tmp_path / "variant.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(StageError, match=expected):
        load_pipeline(tmp_path / "variant.yaml")
