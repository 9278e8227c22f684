"""Which configuration is which pipeline's output: the `build:` keys of megascience_datasets/catalogue.yaml,
the one place that says it (pipeline, stage label, membership column or stored signals)."""
from __future__ import annotations

from megascience_datasets.catalogue import Build, load_catalogue

from .arguments import ReleaseError


def builds() -> dict[str, Build]:
    """{configuration: how it is built} for every configuration a pipeline builds, in catalogue order."""
    return {e.name: e.build for e in load_catalogue() if e.build is not None}


def pipelines() -> list[str]:
    """The pipelines that build configurations, in catalogue order."""
    return list(dict.fromkeys(b.pipeline for b in builds().values()))


def layout(pipeline: str) -> dict[str, Build]:
    """{configuration: build} of the configurations one pipeline's work directory gives."""
    mine = {c: b for c, b in builds().items() if b.pipeline == pipeline}
    if not mine:
        raise ReleaseError(f"no configurations known for pipeline {pipeline!r}; known: {', '.join(pipelines())}")
    return mine


def builder_of(config: str) -> str | None:
    """The pipeline whose work directory gives this configuration (None: a view the loader derives)."""
    build = builds().get(config)
    return build.pipeline if build else None


def catalogue_columns() -> dict[str, list[str]]:
    """{configuration: its feature columns} from the loader's catalogue."""
    return {e.name: list(e.arrow_schema().names) for e in load_catalogue().entries}
