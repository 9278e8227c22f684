"""The catalogue of built-in stages: `stage:` name -> module and class, in pipeline order.

Nothing registers itself: `find_stage` imports only the module of the stage it is asked for (so a GPU image
without pypdf can still load `decontaminate`), and a pipeline's `plugins:` modules add stages by exposing
`STAGES = [StageClass, ...]`.
"""
from __future__ import annotations

import importlib
import json
from types import ModuleType
from typing import Any, Sequence

from ..engine.llm_stage import LLMStage
from ..engine.params import default_of, fields_of, type_name
from ..engine.stage import Stage, StageError

CATALOGUE: dict[str, str] = {
    "ingest_books": "ingest:IngestBooks",
    "book_dedup": "ingest:DedupBooks",
    "book_metadata": "book_metadata:ClassifyBooks",
    "chunk": "chunk:ChunkBooks",
    "extract_qa": "extract_qa:ExtractQA",
    "dedup_questions": "dedup_questions:DedupQuestions",
    "refine_qa": "refine_qa:RefineQA",
    "cot": "cot:SupplementCoT",
    "filter_qa": "filter_qa:FilterQA",
    "decontaminate": "decontaminate:Decontaminate",
    "reference_answer": "reference_answer:ReferenceAnswer",
    "finalize": "finalize:Finalize",
    "adapt_source": "adapt_source:AdaptSource",
    "response_length": "signals:ResponseLength",
    "difficulty": "signals:Difficulty",
    "random_signal": "signals:RandomSignal",
    "select_subsets": "mixture:SelectSubsets",
    "keep_subset": "mixture:KeepSubset",
    "annotate_solution": "annotate_solution:AnnotateSolution",
    "mixture": "mixture:Mixture",
}


def builtin_class(name: str) -> type[Stage]:
    module, _, cls = CATALOGUE[name].partition(":")
    return getattr(importlib.import_module(f"{__package__}.{module}"), cls)


def builtin_stages() -> list[type[Stage]]:
    return [builtin_class(name) for name in CATALOGUE]


def plugin_stages(plugins: Sequence[ModuleType | str]) -> dict[str, type[Stage]]:
    """name -> class over the `STAGES` of each plugin module (imported by name if given as a string)."""
    found: dict[str, type[Stage]] = {}
    for plugin in plugins:
        module = importlib.import_module(plugin) if isinstance(plugin, str) else plugin
        stages = getattr(module, "STAGES", ())
        for cls in stages:
            where = f"plugin {module.__name__!r}: `STAGES`"
            if not (isinstance(cls, type) and issubclass(cls, Stage) and cls.name):
                raise StageError(f"{where} holds {cls!r}, which is not a Stage subclass with a `name`")
            if cls.name in CATALOGUE or found.get(cls.name, cls) is not cls:
                raise StageError(f"{where}: stage name {cls.name!r} is already taken by a "
                                 f"{'built-in stage' if cls.name in CATALOGUE else 'stage of another plugin'}")
            found[cls.name] = cls
    return found


def find_stage(name: Any, plugins: Sequence[ModuleType | str] = ()) -> type[Stage]:
    if isinstance(name, str) and name in CATALOGUE:
        return builtin_class(name)
    extra = plugin_stages(plugins)
    if isinstance(name, str) and name in extra:
        return extra[name]
    known = ", ".join(sorted([*CATALOGUE, *extra]))
    hint = "" if plugins else " (a plugin's stages need its module in the pipeline's `plugins:`)"
    raise StageError(f"unknown stage {name!r}; known stages: {known}{hint}")


# -- what `megascience-build stages` and the README's stage table show ------------------------------------
def _value(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _kind(cls: type[Stage]) -> str:
    return cls.kind + (", LLM" if issubclass(cls, LLMStage) or getattr(cls, "default_prompts", None) else "")


def stage_overview(classes: Sequence[type[Stage]]) -> str:
    width = max(len(c.name) for c in classes)
    return "\n".join(f"{c.name:{width}}  {_kind(c):11}  {c.summary}" for c in classes) + "\n"


def stage_help(cls: type[Stage]) -> str:
    """A stage's summary, prompt slots with their default files, and each parameter's type, default and help."""
    lines = [f"{cls.name} ({_kind(cls)}): {cls.summary}"]
    prompts = dict(getattr(cls, "default_prompts", {}) or {})
    if prompts:
        required = set(cls.prompt_slots)
        lines.append("  prompts (slot: default file in megascience_build/prompts/):")
        lines += [f"    {slot}: {file}" + ("" if slot in required else "  (optional)")
                  for slot, file in prompts.items()]
    fields = fields_of(cls.Params)
    lines.append("  parameters:" if fields else "  parameters: none")
    for f, hint in fields:
        lines.append(f"    {f.name}: {type_name(hint)} = {_value(default_of(f))}")
        lines.append(f"        {f.metadata.get('help', '')}")
    return "\n".join(lines) + "\n"


def _prompt_cell(cls: type[Stage]) -> str:
    prompts = dict(getattr(cls, "default_prompts", {}) or {})
    if len(prompts) > 4:
        slot, file = next(iter(prompts.items()))
        return f"{len(prompts)} slots, e.g. `{slot}`: `{file}`"
    return ", ".join(f"`{slot}`: `{file}`" for slot, file in prompts.items())


def markdown_table(classes: Sequence[type[Stage]]) -> str:
    """The README's stage table."""
    rows = ["| stage (`stage:`) | kind | what it does | prompts (slot: default file) | parameters (default) |",
            "| --- | --- | --- | --- | --- |"]
    for cls in classes:
        params = ", ".join(f"`{f.name}` ({_value(default_of(f))})" for f, _ in fields_of(cls.Params))
        summary = cls.summary.replace("|", "\\|")
        rows.append(f"| `{cls.name}` | {_kind(cls)} | {summary} | {_prompt_cell(cls)} | {params} |")
    return "\n".join(rows) + "\n"
