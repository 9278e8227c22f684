"""The paper's published scores (published.yaml: Tables 6, 7, 12, 13) and which model a run matches."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

PUBLISHED = Path(__file__).resolve().parent / "published.yaml"


@lru_cache(maxsize=1)
def published() -> dict[str, dict[str, Any]]:
    return yaml.safe_load(PUBLISHED.read_text(encoding="utf-8"))["models"]


def lookup(name: str) -> dict[str, Any]:
    models = published()
    if name not in models:
        raise KeyError(f"no published scores for {name!r}; the paper reports: {', '.join(models)}")
    return models[name]


def match_model(model_id: str | None) -> str | None:
    """The published model a run's model id names (its last path part, case-insensitive, equals one of the
    entry's `match` names), or None: a SmolLM2 run, or any model the paper does not report, matches nothing."""
    if not model_id:
        return None
    tail = str(model_id).rstrip("/").rsplit("/", 1)[-1].lower()
    for name, entry in published().items():
        if tail in (entry.get("match") or []):
            return name
    return None
