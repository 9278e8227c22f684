"""The stage catalogue (no registration by import), plugin stages, `megascience-build stages` and the README's
stage table, which is generated from the stage classes and must not drift from them."""
from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import pytest

from megascience_build.cli import main
from megascience_build.engine.stage import Stage, StageError, stage_class
from megascience_build.stages.catalogue import CATALOGUE, builtin_stages, markdown_table, plugin_stages

README = Path(__file__).resolve().parents[2] / "README.md"
BEGIN, END = "<!-- stage table:", "<!-- end of stage table -->"


def test_every_catalogue_entry_is_the_stage_of_that_name():
    for name, cls in zip(CATALOGUE, builtin_stages()):
        assert issubclass(cls, Stage) and cls.name == name and cls.summary, name
        assert set(cls.prompt_slots) <= set(getattr(cls, "default_prompts", {}) or cls.prompt_slots)


def test_importing_the_stages_package_imports_no_stage_module():
    code = ("import sys, megascience_build.stages; "
            "print(sorted(m for m in sys.modules if m.startswith('megascience_build.stages.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_readme_stage_table_is_the_generated_one():
    text = README.read_text(encoding="utf-8")
    start = text.index("\n", text.index(BEGIN)) + 1
    assert text[start:text.index(END)] == markdown_table(builtin_stages()), \
        "README.md's stage table is out of date: regenerate it with `megascience-build stages --markdown`"


def _plugin(name: str, stages) -> str:
    module = types.ModuleType(name)
    module.STAGES = stages
    sys.modules[name] = module
    return name


class _Mine(Stage):
    name = "my_stage"


class _Clash(Stage):
    name = "refine_qa"


def test_plugins_add_stages_through_STAGES():
    plugin = _plugin("h2_test_plugin", [_Mine])
    assert stage_class("my_stage", [plugin]) is _Mine
    with pytest.raises(StageError, match="unknown stage 'my_stage'.*plugins:"):
        stage_class("my_stage")
    with pytest.raises(StageError, match=r"plugin 'h2_clash': `STAGES`: stage name 'refine_qa' is already taken"):
        plugin_stages([_plugin("h2_clash", [_Clash])])
    with pytest.raises(StageError, match="not a Stage subclass"):
        plugin_stages([_plugin("h2_bad", [object])])


def test_cli_lists_every_stage(capsys):
    assert main(["stages"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == list(CATALOGUE)


def test_cli_prints_a_stages_parameters(capsys):
    assert main(["stages", "refine_qa", "difficulty"]) == 0
    out = capsys.readouterr().out
    assert "refine_qa (map, LLM):" in out and "    refine: refine_qa.txt" in out
    assert "    max_chunk_chars: int = 20000\n        the chunk text sent to the model" in out
    assert "    on_unparseable: 'drop' | 'keep_extracted' = \"drop\"" in out
    assert "    samples: int = 16\n        policy answers per question" in out


def test_cli_help_shows_every_parameter_and_bad_names_fail(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["stages", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "usage: megascience-build stages" in out and "    standards: list['high' | 'low'] = [\"high\", \"low\"]" in out
    assert main(["stages", "no_such_stage"]) == 2
    assert "unknown stage 'no_such_stage'" in capsys.readouterr().err


def test_cli_lists_plugin_stages_and_markdown(capsys):
    assert main(["stages", "--plugin", "megascience_eval.stages"]) == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()][-2:] == ["eval_generate", "eval_score"]
    assert main(["stages", "--markdown"]) == 0
    assert capsys.readouterr().out == markdown_table(builtin_stages())
