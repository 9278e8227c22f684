"""The catalogue of built-in stages: `stage:` name -> module and class, in pipeline order.

Nothing registers itself: `find_stage` imports only the module of the stage it is asked for (so a GPU image
without pypdf can still load `decontaminate`), and a pipeline's `plugins:` modules add stages by exposing
`STAGES = [StageClass, ...]`.
"""
from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any, Sequence

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
