"""Load and validate a pipeline file (YAML) before any work starts.

Every problem is a StageError naming the pipeline file, the stage (by label and position) and the field.
Overrides from the command line (backend, model per role, row limit) are applied here, so the rest of the
engine only ever sees one resolved configuration.
"""
from __future__ import annotations

import hashlib
import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from ..backends.base import SamplingParams
from .prompts import PROMPTS_DIR, PromptError, PromptTemplate, load_prompt
from .models import check_model_spec
from .stage import Resources, Stage, StageError, stage_class

TOP_LEVEL_KEYS = {"name", "seed", "input", "models", "stages", "plugins", "output"}
# a variant pipeline (an ablation) names its base file and what it changes
VARIANT_KEYS = {"extends", "remove_stages", "override_stages"}
INPUT_KEYS = {"files", "parquet", "rows_per_shard"}
STAGE_KEYS = {"stage", "label", "llm", "embedder", "gpus", "sampling", "prompts", "params", "replicas"}
MODEL_REQUIRED = ("backend", "model")
# `options` go to the backend class; `batch_size` and `flow` are the engine's: requests per backend call or
# per cache commit, and whether a streaming backend is fed continuously ("continuous") or batch by batch
MODEL_KEYS = {"backend", "model", "revision", "options", "batch_size", "flow"}
FLOWS = ("continuous", "batch")


@dataclass(frozen=True)
class InputSpec:
    kind: str                      # "files" or "parquet"
    patterns: tuple[str, ...]      # globs or fsspec URLs, already resolved against the pipeline directory
    rows_per_shard: int = 1000


@dataclass
class StageSpec:
    """One resolved stage entry: the instantiated Stage plus what the engine needs to run it."""
    index: int
    stage: Stage
    llm_roles: tuple[str, ...]
    embedder_role: str | None
    sampling: SamplingParams
    prompts: dict[str, PromptTemplate]
    replicas: int = 1

    @property
    def label(self) -> str:
        return self.stage.label

    @property
    def uses_model(self) -> bool:
        return bool(self.llm_roles or self.embedder_role)


@dataclass
class PipelineConfig:
    path: Path
    sha256: str
    name: str
    seed: int
    input: InputSpec
    models: dict[str, dict[str, Any]]
    stages: list[StageSpec]
    plugins: tuple[str, ...] = ()
    output: str | None = None
    limit: int | None = None
    overrides: dict[str, Any] = field(default_factory=dict)


def load_pipeline(path: str | Path, *, backend: str | None = None, models: Mapping[str, str] | None = None,
                  limit: int | None = None) -> PipelineConfig:
    path = Path(path).resolve()
    where = f"pipeline {path}"
    try:
        raw_bytes = path.read_bytes()
    except OSError as exc:
        raise StageError(f"{where}: cannot read the pipeline file ({exc.strerror or exc})") from None
    try:
        doc = yaml.safe_load(raw_bytes.decode("utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise StageError(f"{where}: not valid YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise StageError(f"{where}: expected a mapping at the top level, got {type(doc).__name__}")
    _no_unknown(doc, TOP_LEVEL_KEYS | VARIANT_KEYS, where)
    if "extends" in doc:
        doc, raw_bytes = _resolve_variant(doc, path, raw_bytes, where)

    plugins = tuple(_as_list(doc.get("plugins"), f"{where}: field 'plugins'"))
    plugin_modules = []
    for name in plugins:
        try:
            plugin_modules.append(importlib.import_module(name))
        except ImportError as exc:
            raise StageError(f"{where}: field 'plugins': cannot import {name!r} ({exc})") from None

    seed = doc.get("seed", 0)
    if not isinstance(seed, int):
        raise StageError(f"{where}: field 'seed' must be an integer, got {seed!r}")
    input_spec = _input_spec(doc.get("input"), path.parent, where)
    model_specs = _models(doc.get("models") or {}, where, models or {})

    entries = doc.get("stages")
    if not isinstance(entries, list) or not entries:
        raise StageError(f"{where}: field 'stages' must be a non-empty list")
    stages: list[StageSpec] = []
    labels: set[str] = set()
    for i, entry in enumerate(entries):
        spec = _stage_spec(i, entry, path.parent, where, model_specs, seed, plugin_modules)
        if spec.label in labels:
            raise StageError(f"{where}: stage #{i} label {spec.label!r} is used twice; give one a `label:`")
        labels.add(spec.label)
        stages.append(spec)

    llm_roles = sorted({r for s in stages for r in s.llm_roles})
    embedder_roles = sorted({s.embedder_role for s in stages if s.embedder_role})
    if backend:
        for role in llm_roles:
            model_specs[role]["backend"] = backend
    for role in llm_roles:
        check_model_spec(role, model_specs[role], "generation", where)
    for role in embedder_roles:
        check_model_spec(role, model_specs[role], "embedding", where)

    if limit is not None and limit < 1:
        raise StageError(f"--limit must be at least 1, got {limit}")
    output = doc.get("output")
    if output is not None:
        if not isinstance(output, str):
            raise StageError(f"{where}: field 'output' must be a path or URL string")
        if "://" not in output and not Path(output).is_absolute():
            output = str(path.parent / output)
    return PipelineConfig(path=path, sha256=hashlib.sha256(raw_bytes).hexdigest(), name=str(doc.get("name") or path.stem),
                          seed=seed, input=input_spec, models=model_specs, stages=stages, plugins=plugins,
                          output=output, limit=limit,
                          overrides={"backend": backend, "models": dict(models or {}), "limit": limit})


def _resolve_variant(doc: dict, path: Path, raw_bytes: bytes, where: str, depth: int = 0) -> tuple[dict, bytes]:
    """Merge a variant onto its base: top-level fields replace the base's; `remove_stages` drops stages by
    label; `override_stages` updates a stage's fields by label (its `params` and `sampling` are merged key by
    key). Relative input paths keep pointing where the base file meant. The returned bytes (base + variant)
    feed the pipeline sha256, so an edit to either file changes it."""
    if depth > 8:
        raise StageError(f"{where}: `extends` nests more than 8 levels (a cycle?)")
    base_path = (path.parent / str(doc["extends"])).resolve()
    try:
        base_bytes = base_path.read_bytes()
        base = yaml.safe_load(base_bytes.decode("utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
        raise StageError(f"{where}: field 'extends': cannot load {base_path} ({exc})") from None
    if not isinstance(base, dict):
        raise StageError(f"{where}: field 'extends': {base_path} is not a pipeline mapping")
    if "extends" in base:
        base, base_bytes = _resolve_variant(base, base_path, base_bytes, f"pipeline {base_path}", depth + 1)
    merged = {k: v for k, v in base.items() if k not in VARIANT_KEYS}
    if isinstance(merged.get("input"), dict) and "input" not in doc:
        merged["input"] = dict(merged["input"])
        for kind in ("files", "parquet"):
            if kind in merged["input"]:
                merged["input"][kind] = [p if "://" in p or Path(p).is_absolute() else str(base_path.parent / p)
                                         for p in _as_list(merged["input"][kind], f"{where}: base input")]
    merged.update({k: v for k, v in doc.items() if k not in VARIANT_KEYS})
    stages = [dict(e) for e in (merged.get("stages") or []) if isinstance(e, dict)]
    labels = [e.get("label") or e.get("stage") for e in stages]
    for label in _as_list(doc.get("remove_stages"), f"{where}: field 'remove_stages'"):
        if label not in labels:
            raise StageError(f"{where}: field 'remove_stages': no stage labelled {label!r} in {base_path}; "
                             f"stages: {labels}")
        i = labels.index(label)
        del stages[i], labels[i]
    overrides = doc.get("override_stages") or {}
    if not isinstance(overrides, dict):
        raise StageError(f"{where}: field 'override_stages' must map stage labels to fields")
    for label, changes in overrides.items():
        if label not in labels or not isinstance(changes, dict):
            raise StageError(f"{where}: field 'override_stages': no stage labelled {label!r} (stages: {labels}) "
                             f"or its value is not a mapping")
        entry = stages[labels.index(label)]
        for key, value in changes.items():
            if key in ("params", "sampling", "prompts") and isinstance(value, dict):
                entry[key] = {**(entry.get(key) or {}), **value}
            else:
                entry[key] = value
    merged["stages"] = stages
    return merged, base_bytes + b"\n---\n" + raw_bytes


def _no_unknown(d: Mapping, allowed: set[str], where: str) -> None:
    unknown = set(d) - allowed
    if unknown:
        raise StageError(f"{where}: unknown field(s) {sorted(unknown)}; accepted: {sorted(allowed)}")


def _as_list(value: Any, where: str) -> list:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise StageError(f"{where}: expected a string or a list of strings, got {value!r}")


def _input_spec(raw: Any, base: Path, where: str) -> InputSpec:
    if not isinstance(raw, dict):
        raise StageError(f"{where}: field 'input' is missing or not a mapping (expected `files:` or `parquet:`)")
    _no_unknown(raw, INPUT_KEYS, f"{where}: field 'input'")
    kinds = [k for k in ("files", "parquet") if k in raw]
    if len(kinds) != 1:
        raise StageError(f"{where}: field 'input' needs exactly one of `files:` or `parquet:`, got {kinds or 'none'}")
    kind = kinds[0]
    patterns = _as_list(raw[kind], f"{where}: field 'input.{kind}'")
    if not patterns:
        raise StageError(f"{where}: field 'input.{kind}' is empty")
    resolved = tuple(p if "://" in p or Path(p).is_absolute() else str(base / p) for p in patterns)
    rows = raw.get("rows_per_shard", 1000)
    if not isinstance(rows, int) or rows < 1:
        raise StageError(f"{where}: field 'input.rows_per_shard' must be a positive integer, got {rows!r}")
    return InputSpec(kind=kind, patterns=resolved, rows_per_shard=rows)


def _models(raw: Any, where: str, overrides: Mapping[str, str]) -> dict[str, dict]:
    if not isinstance(raw, dict):
        raise StageError(f"{where}: field 'models' must be a mapping of role -> model spec")
    models: dict[str, dict] = {}
    for role, spec in raw.items():
        at = f"{where}: model role {role!r}"
        if not isinstance(spec, dict):
            raise StageError(f"{at} must be a mapping with `backend` and `model`")
        _no_unknown(spec, MODEL_KEYS, at)
        for key in MODEL_REQUIRED:
            if not spec.get(key):
                raise StageError(f"{at} has no `{key}`")
        batch = spec.get("batch_size", 64)
        if not isinstance(batch, int) or batch < 1:
            raise StageError(f"{at}: field 'batch_size' must be a positive integer, got {batch!r}")
        if spec.get("flow", "continuous") not in FLOWS:
            raise StageError(f"{at}: field 'flow' must be one of {', '.join(FLOWS)}, got {spec.get('flow')!r}")
        if not isinstance(spec.get("options") or {}, dict):
            raise StageError(f"{at}: field 'options' must be a mapping")
        models[str(role)] = dict(spec)
    for role, model in overrides.items():
        if role not in models:
            raise StageError(f"--model {role}={model}: unknown model role {role!r}; "
                             f"roles in {where}: {sorted(models)}")
        model_id, _, revision = model.partition("@")
        models[role]["model"] = model_id
        if revision:
            models[role]["revision"] = revision
    return models


def _stage_spec(i: int, entry: Any, base: Path, where: str, models: dict[str, dict], seed: int,
                plugins: list) -> StageSpec:
    if not isinstance(entry, dict) or "stage" not in entry:
        raise StageError(f"{where}: stage #{i} must be a mapping with a `stage:` name, got {entry!r}")
    name = entry["stage"]
    label = entry.get("label") or name
    at = f"{where}: stage #{i} ({label!r})"
    _no_unknown(entry, STAGE_KEYS, at)
    try:
        cls = stage_class(name, plugins)
    except StageError as exc:
        raise StageError(f"{at}: {exc}") from None

    llm_roles = tuple(_as_list(entry.get("llm"), f"{at}: field 'llm'"))
    embedder = entry.get("embedder")
    for role in (*llm_roles, *([embedder] if embedder else [])):
        if role not in models:
            raise StageError(f"{at}: unknown model role {role!r}; roles under `models:`: {sorted(models)}")
    gpus = entry.get("gpus", 0)
    if not isinstance(gpus, (int, float)) or gpus < 0:
        raise StageError(f"{at}: field 'gpus' must be a non-negative number, got {gpus!r}")
    replicas = entry.get("replicas", 1)
    if not isinstance(replicas, int) or replicas < 1:
        raise StageError(f"{at}: field 'replicas' must be a positive integer, got {replicas!r}")

    sampling_raw = dict(entry.get("sampling") or {})
    sampling_raw.setdefault("seed", seed)
    try:
        sampling = SamplingParams.from_dict(sampling_raw)
    except (ValueError, TypeError) as exc:
        raise StageError(f"{at}: field 'sampling': {exc}") from None

    prompt_files = entry.get("prompts") or {}
    if not isinstance(prompt_files, dict):
        raise StageError(f"{at}: field 'prompts' must be a mapping of slot -> template file")
    defaults = getattr(cls, "default_prompts", {}) or {}      # a required slot left out gets its default file
    prompt_files = {**{s: defaults[s] for s in cls.prompt_slots if s in defaults and s not in prompt_files},
                    **prompt_files}
    prompts: dict[str, PromptTemplate] = {}
    for slot, file in prompt_files.items():
        local = base / str(file)
        try:
            prompts[str(slot)] = load_prompt(local if local.is_file() else file)
        except PromptError as exc:
            raise StageError(f"{at}: field 'prompts.{slot}': {exc} (also looked in {base} and {PROMPTS_DIR})") from None
    needed = set(getattr(cls, "prompt_slots", ()) or ())
    missing = sorted(needed - set(prompts))
    if missing:
        raise StageError(f"{at}: field 'prompts' lacks slot(s) {missing} that stage {name!r} needs")

    params = entry.get("params") or {}
    if not isinstance(params, dict):
        raise StageError(f"{at}: field 'params' must be a mapping")
    resources = Resources(gpus=float(gpus), llm=llm_roles[0] if llm_roles else None, embedder=embedder)
    try:
        stage = cls(params, resources=resources, prompts={k: str(v) for k, v in prompt_files.items()}, label=label)
    except StageError as exc:
        raise StageError(f"{where}: stage #{i}: field 'params': {exc}") from None
    if stage.kind not in ("map", "global"):
        raise StageError(f"{at}: stage class {cls.__qualname__} has kind {stage.kind!r}; expected 'map' or 'global'")
    return StageSpec(index=i, stage=stage, llm_roles=llm_roles, embedder_role=embedder, sampling=sampling,
                     prompts=prompts, replicas=replicas)
