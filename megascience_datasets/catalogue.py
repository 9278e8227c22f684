"""Load and validate catalogue.yaml, the single declarative list of configurations."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

import yaml

from .errors import UnknownConfigError, UsageError
from .safety import CONFIG_NAME, FULL_SHA, check_relpath

GROUPS = ("released", "selection", "pipeline", "decontamination")
FEATURE_TYPES = ("string", "int32", "int64", "float32", "float64", "bool")
RULES = ("decontaminate", "select_length", "select_difficulty", "select_random", "pipeline_variant",
         "difficulty_distill", "adapt_source", "source_view",
         "signals", "select_difficulty_below")
REPO_ID_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


class CatalogueError(UsageError):
    pass


@dataclass(frozen=True)
class Source:
    kind: str                     # "upstream" (a fixed Hub repo) or "release" (the project's repo)
    repo: str | None = None       # Hub repo id for upstream
    revision: str | None = None   # full sha, or None when it must be resolved
    resolve: str | None = None    # ref to resolve at load time when no sha is known
    files: str | None = None      # glob inside the repository


@dataclass(frozen=True)
class Derived:
    parent: str | None
    rule: str
    parameters: Mapping[str, Any]
    seed: int | None


UPSTREAM_RECORDS = ("source", "input")


@dataclass(frozen=True)
class Build:
    """Which output of which build pipeline is this configuration (`megascience-build release` reads it; the
    loader only checks its shape)."""
    pipeline: str                 # the pipeline's name, as given to `release --work NAME=WORKDIR`
    stage: str | None = None      # the label of the stage whose output it is; None: the pipeline's final stage
    member: str | None = None     # a boolean membership column of that output: the rows of the subset
    signals: bool = False         # the output's stored selection signals (a pool's *_signals configuration)
    upstream: str = "source"      # the release manifest's upstream record: the Hub revision the pipeline's
                                  # adapt_source stage read ("source"), or the run's input shards ("input")


@dataclass(frozen=True)
class Entry:
    name: str
    group: str
    table: str
    description: str
    features: Mapping[str, str]   # column -> type name, in column order
    feature_set: str
    source: Source
    rows: int | None
    paper_rows: int | None
    license: str
    citation: str                 # BibTeX text
    derived: Derived | None = None
    build: Build | None = None

    @property
    def columns(self) -> list[str]:
        return list(self.features)

    def hf_features(self):
        import datasets
        return datasets.Features({c: datasets.Value(t) for c, t in self.features.items()})

    def arrow_schema(self):
        return self.hf_features().arrow_schema


@dataclass(frozen=True)
class Release:
    repo: str | None
    revision: str
    files: str
    repo_env: str
    revision_env: str

    def current_repo(self) -> str | None:
        return os.environ.get(self.repo_env) or self.repo

    def current_revision(self) -> str:
        return os.environ.get(self.revision_env) or self.revision


@dataclass(frozen=True)
class Catalogue:
    entries: tuple[Entry, ...]
    release: Release
    citations: Mapping[str, str] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return [e.name for e in self.entries]

    def __iter__(self):
        return iter(self.entries)

    def __getitem__(self, name: str) -> Entry:
        for e in self.entries:
            if e.name == name:
                return e
        raise UnknownConfigError(f"unknown configuration {name!r}; known configurations: {', '.join(self.names)}")

    def __contains__(self, name: object) -> bool:
        return any(e.name == name for e in self.entries)

    def group(self, group: str) -> list[Entry]:
        return [e for e in self.entries if e.group == group]


def _fail(where: str, msg: str):
    raise CatalogueError(f"catalogue {where}: {msg}")


def _require(d: Mapping, key: str, types, where: str, allow_none: bool = False):
    if key not in d:
        _fail(where, f"missing field {key!r}")
    v = d[key]
    if v is None and allow_none:
        return None
    if not isinstance(v, types) or isinstance(v, bool) and types is int:
        _fail(where, f"field {key!r} is {v!r}; expected {types if isinstance(types, type) else ' or '.join(t.__name__ for t in types)}")
    return v


def _parse_source(raw: Any, where: str) -> Source:
    if not isinstance(raw, Mapping):
        _fail(where, f"`source` must be a mapping, got {raw!r}")
    kind = raw.get("kind")
    if kind == "release":
        return Source(kind="release")
    if kind != "upstream":
        _fail(where, f"source.kind is {kind!r}; expected 'upstream' or 'release'")
    repo = _require(raw, "repo", str, where)
    if repo.count("/") != 1 or not set(repo) - {"/"} <= REPO_ID_CHARS:
        _fail(where, f"source.repo {repo!r} is not a Hub repo id 'org/name'")
    files = _require(raw, "files", str, where)
    check_relpath(files.replace("*", "x"), "source.files")
    rev = raw.get("revision")
    if isinstance(rev, str):
        if not FULL_SHA.match(rev):
            _fail(where, f"source.revision {rev!r} must be a full 40-hex sha (or {{resolve: <ref>}} when no sha is known)")
        return Source(kind="upstream", repo=repo, revision=rev, files=files)
    if isinstance(rev, Mapping) and isinstance(rev.get("resolve"), str):
        return Source(kind="upstream", repo=repo, resolve=rev["resolve"], files=files)
    _fail(where, f"source.revision is {rev!r}; expected a full sha or {{resolve: <ref>}}")


def _parse_build(raw: Any, where: str) -> Build | None:
    if raw is None:
        return None
    bw = f"{where} build"
    if not isinstance(raw, Mapping):
        _fail(bw, f"must be a mapping {{pipeline, stage, member | signals, upstream}}, got {raw!r}")
    unknown = set(raw) - {"pipeline", "stage", "member", "signals", "upstream"}
    if unknown:
        _fail(bw, f"unknown field(s) {sorted(unknown)}")
    pipeline = _require(raw, "pipeline", str, bw)
    if not CONFIG_NAME.match(pipeline):
        _fail(bw, f"pipeline {pipeline!r} does not match {CONFIG_NAME.pattern}")
    stage = raw.get("stage")
    member = raw.get("member")
    for label, v in (("stage", stage), ("member", member)):
        if v is not None and (not isinstance(v, str) or not v):
            _fail(bw, f"field {label!r} is {v!r}; expected a name")
    signals = raw.get("signals", False)
    if not isinstance(signals, bool):
        _fail(bw, f"field 'signals' is {signals!r}; expected true or false")
    if signals and member is not None:
        _fail(bw, "give `member` (a subset's rows) or `signals: true` (the stored signals), not both")
    upstream = raw.get("upstream", "source")
    if upstream not in UPSTREAM_RECORDS:
        _fail(bw, f"upstream {upstream!r} not in {UPSTREAM_RECORDS}")
    return Build(pipeline=pipeline, stage=stage, member=member, signals=signals, upstream=upstream)


def _parse_entry(raw: Any, feature_sets: Mapping[str, Mapping[str, str]], citations: Mapping[str, str],
                 index: int) -> Entry:
    where = f"configs[{index}]"
    if not isinstance(raw, Mapping):
        _fail(where, "each configuration must be a mapping")
    name = _require(raw, "name", str, where)
    if not CONFIG_NAME.match(name):
        _fail(where, f"name {name!r} does not match {CONFIG_NAME.pattern}")
    where = f"configuration {name!r}"
    known = {"name", "group", "table", "description", "features", "source", "rows", "paper_rows", "license",
             "citation", "derived", "build"}
    unknown = set(raw) - known
    if unknown:
        _fail(where, f"unknown field(s) {sorted(unknown)}")
    group = _require(raw, "group", str, where)
    if group not in GROUPS:
        _fail(where, f"group {group!r} not in {GROUPS}")
    fset = _require(raw, "features", str, where)
    if fset not in feature_sets:
        _fail(where, f"feature set {fset!r} is not defined under `features:`")
    cit = _require(raw, "citation", str, where)
    if cit not in citations:
        _fail(where, f"citation {cit!r} is not defined under `citations:`")
    rows = _require(raw, "rows", int, where, allow_none=True)
    paper_rows = _require(raw, "paper_rows", int, where, allow_none=True)
    for label, v in (("rows", rows), ("paper_rows", paper_rows)):
        if v is not None and v <= 0:
            _fail(where, f"{label} must be positive, got {v}")
    derived = None
    if raw.get("derived") is not None:
        d = raw["derived"]
        dw = f"{where} derived"
        if not isinstance(d, Mapping):
            _fail(dw, "must be a mapping")
        rule = _require(d, "rule", str, dw)
        if rule not in RULES:
            _fail(dw, f"rule {rule!r} not in {RULES}")
        params = d.get("parameters") or {}
        if not isinstance(params, Mapping):
            _fail(dw, "parameters must be a mapping")
        derived = Derived(parent=_require(d, "parent", str, dw, allow_none=True), rule=rule,
                          parameters=dict(params), seed=_require(d, "seed", int, dw, allow_none=True))
        if rule == "select_random" and derived.seed is None:
            _fail(dw, "a random selection needs a seed")
    return Entry(
        name=name, group=group, table=_require(raw, "table", str, where),
        description=" ".join(_require(raw, "description", str, where).split()),
        features=dict(feature_sets[fset]), feature_set=fset, source=_parse_source(raw.get("source"), where),
        rows=rows, paper_rows=paper_rows, license=_require(raw, "license", str, where),
        citation=citations[cit], derived=derived,
        build=_parse_build(raw.get("build"), where))


def parse_catalogue(data: Any, origin: str = "catalogue.yaml") -> Catalogue:
    if not isinstance(data, Mapping):
        raise CatalogueError(f"{origin}: top level must be a mapping")
    if data.get("format_version") != 1:
        raise CatalogueError(f"{origin}: format_version is {data.get('format_version')!r}; this package reads 1")
    feature_sets = data.get("features")
    if not isinstance(feature_sets, Mapping) or not feature_sets:
        raise CatalogueError(f"{origin}: `features` must map feature-set names to columns")
    for fname, cols in feature_sets.items():
        if not isinstance(cols, Mapping) or not cols:
            raise CatalogueError(f"{origin}: feature set {fname!r} must map columns to types")
        for col, typ in cols.items():
            if typ not in FEATURE_TYPES:
                raise CatalogueError(f"{origin}: feature set {fname!r} column {col!r} has type {typ!r}; "
                                     f"expected one of {FEATURE_TYPES}")
    citations = data.get("citations") or {}
    rel = data.get("release")
    if not isinstance(rel, Mapping):
        raise CatalogueError(f"{origin}: `release` must be a mapping")
    release = Release(repo=rel.get("repo"), revision=str(rel.get("revision") or "main"),
                      files=str(rel.get("files") or "data/{config}/*.parquet"),
                      repo_env=str(rel.get("repo_env") or "MEGASCIENCE_RELEASE"),
                      revision_env=str(rel.get("revision_env") or "MEGASCIENCE_RELEASE_REVISION"))
    raw_configs = data.get("configs")
    if not isinstance(raw_configs, list) or not raw_configs:
        raise CatalogueError(f"{origin}: `configs` must be a non-empty list")
    entries = tuple(_parse_entry(r, feature_sets, citations, i) for i, r in enumerate(raw_configs))
    names = [e.name for e in entries]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise CatalogueError(f"{origin}: duplicate configuration name(s) {dupes}")
    builds = [(e.build.pipeline, e.build.stage, e.build.member, e.build.signals) for e in entries if e.build]
    twice = sorted({e.name for e in entries if e.build and builds.count(
        (e.build.pipeline, e.build.stage, e.build.member, e.build.signals)) > 1})
    if twice:
        raise CatalogueError(f"{origin}: configurations {twice} are declared as the same build output")
    for e in entries:
        if e.derived and e.derived.parent is not None and e.derived.parent not in names:
            raise CatalogueError(f"{origin}: configuration {e.name!r} has unknown parent {e.derived.parent!r}")
        n_from = e.derived.parameters.get("n_from") if e.derived else None
        if n_from is not None and n_from not in names:
            raise CatalogueError(f"{origin}: configuration {e.name!r} takes n from unknown {n_from!r}")
    return Catalogue(entries=entries, release=release, citations=dict(citations))


@lru_cache(maxsize=1)
def load_catalogue() -> Catalogue:
    text = (Path(__file__).parent / "catalogue.yaml").read_text(encoding="utf-8")
    return parse_catalogue(yaml.safe_load(text))
