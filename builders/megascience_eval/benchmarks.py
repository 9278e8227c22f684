"""Evaluation benchmarks: what each one asks, how its gold answer is read, and how it is scored.

An eval registry (YAML; default `benchmarks.yaml` beside this file) declares entries:

    gsm8k_pkg:
      paper: GSM8K                  # the paper's benchmark this entry scores (several entries = sub-parts)
      subpart: test                 # the sub-part's label (default: the entry name)
      source: {registry: gsm8k_pkg} # a build-registry entry, or hub:/file:/package: spelled as there
      type: numeric                 # multiple_choice | true_false | numeric | math | numeric_unit | free_text
      template: math                # prompt file prompts/<template>.txt (the team's wording, zero-shot CoT)
      question: question            # field paths (dotted keys, [index]) as in the build registry
      context: null                 # optional passage put before the question (PubMedQA)
      options: null                 # a list/mapping field, several fields, or `choices:` literal options
      answer: answer
      answer_format: gsm8k          # letter | index | index1 | option_text | first_option | scores | gsm8k |
                                    # boxed | text | bool
      unit: null                    # field path of the gold unit (numeric_unit)
      metric: {name: em, rel_tol: 1.0e-6}   # em | em_unit (+ unit_policy: required | convert_if_given)
      group_by: null                # optional field kept per instance for finer tables (MMLU subject ...)
      shuffle: false                # shuffle options per question (seeded by its id), e.g. GPQA
      withheld: null                # a reason the gold answers are not available (OlympicArena test)
      filter: null                  # {field: PATH, in: [values]}: only records whose field is one of them

Problems raise EvalSpecError naming the registry, entry, file, record and field.
"""
from __future__ import annotations

import ast
import hashlib
import json
import os
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from megascience_build.contamination import registry as br
from megascience_build.engine.records import content_id

from .extract import MC, QUESTION_TYPES, TF
from .judge import METRICS, UNIT_POLICIES
from .mathnorm import strip_wrappers
from .extract import boxed_spans

DEFAULT_EVAL_REGISTRY = Path(__file__).resolve().parent / "benchmarks.yaml"
PROMPTS_DIR = Path(__file__).resolve().parent / "prompts"
ANSWER_FORMATS = ("letter", "index", "index1", "option_text", "first_option", "scores", "gsm8k", "boxed", "text",
                  "bool")
_KEYS = {"paper", "subpart", "source", "type", "template", "question", "context", "options", "choices", "answer",
         "answer_format", "unit", "metric", "group_by", "shuffle", "withheld", "notes", "filter"}


class EvalSpecError(ValueError):
    """A benchmark that cannot be evaluated as declared; the message names entry, file, record and field."""


@dataclass(frozen=True)
class EvalSpec:
    name: str
    paper: str
    subpart: str
    source: br.BenchmarkSpec | None
    qtype: str
    template: str
    question: str
    answer: str
    answer_format: str
    context: str | None = None
    options: tuple[str, ...] = ()
    choices: tuple[str, ...] = ()
    unit: str | None = None
    metric: Mapping[str, Any] = field(default_factory=lambda: {"name": "em"})
    group_by: str | None = None
    shuffle: bool = False
    withheld: str | None = None
    notes: str = ""
    filter_field: str | None = None
    filter_values: tuple[str, ...] = ()


@dataclass
class EvalRegistry:
    benchmarks: dict[str, EvalSpec]
    sets: dict[str, list[str]]
    path: str

    def select(self, names: str | Sequence[str]) -> list[EvalSpec]:
        wanted = [names] if isinstance(names, str) else list(names)
        out: dict[str, EvalSpec] = {}
        for n in wanted:
            for m in self.sets.get(n, [n]):
                if m not in self.benchmarks:
                    raise EvalSpecError(f"eval registry {self.path}: unknown benchmark or set {m!r}; "
                                        f"sets: {sorted(self.sets)}; benchmarks: {sorted(self.benchmarks)}")
                out[m] = self.benchmarks[m]
        return list(out.values())


def _source(name: str, raw: Any, where: str, base_dir: Path, build: br.Registry | None) -> br.BenchmarkSpec:
    if not isinstance(raw, Mapping) or len(raw) != 1:
        raise EvalSpecError(f"{where}: 'source' must be one of {{registry: NAME}}, {{hub: ...}}, {{file: ...}}, "
                            f"{{package: ...}}, got {raw!r}")
    (kind, value), = raw.items()
    if kind == "registry":
        build = build or br.load_registry()
        if value not in build.benchmarks:
            raise EvalSpecError(f"{where}: source registry entry {value!r} is not in {build.path}")
        return build.benchmarks[value]
    try:
        return br.spec_from_dict(name, {kind: value, "question": "_"}, base_dir=base_dir)
    except br.BenchmarkError as exc:
        raise EvalSpecError(f"{where}: source: {exc}") from None


def spec_from_entry(name: str, entry: Mapping[str, Any], *, base_dir: Path, where: str = "",
                    build: br.Registry | None = None) -> EvalSpec:
    where = f"{where}benchmark {name!r}"
    if not isinstance(entry, Mapping):
        raise EvalSpecError(f"{where}: expected a mapping")
    unknown = set(entry) - _KEYS
    if unknown:
        raise EvalSpecError(f"{where}: unknown key(s) {sorted(unknown)}; accepted: {sorted(_KEYS)}")
    for key in ("paper", "type", "template"):
        if not entry.get(key):
            raise EvalSpecError(f"{where}: needs '{key}'")
    withheld = entry.get("withheld")
    if not withheld:
        needed = ["source", "question", "answer_format"]
        if entry.get("answer_format") not in ("first_option", "scores"):
            needed.append("answer")
        for key in needed:
            if not entry.get(key):
                raise EvalSpecError(f"{where}: needs '{key}'")
    qtype = entry["type"]
    if qtype not in QUESTION_TYPES:
        raise EvalSpecError(f"{where}: type {qtype!r} is not one of {QUESTION_TYPES}")
    fmt = entry.get("answer_format", "text")
    if fmt not in ANSWER_FORMATS:
        raise EvalSpecError(f"{where}: answer_format {fmt!r} is not one of {ANSWER_FORMATS}")
    if not (PROMPTS_DIR / f"{entry['template']}.txt").is_file():
        raise EvalSpecError(f"{where}: template {entry['template']!r} has no file {PROMPTS_DIR}/{entry['template']}.txt")
    metric = dict(entry.get("metric") or {"name": "em"})
    if metric.get("name", "em") not in METRICS:
        raise EvalSpecError(f"{where}: metric name {metric.get('name')!r} is not one of {METRICS}")
    if metric.get("unit_policy", "convert_if_given") not in UNIT_POLICIES:
        raise EvalSpecError(f"{where}: metric unit_policy must be one of {UNIT_POLICIES}")
    options = entry.get("options") or []
    options = [options] if isinstance(options, str) else list(options)
    choices = [str(c) for c in (entry.get("choices") or [])]
    if qtype == MC and not options and not choices:
        raise EvalSpecError(f"{where}: a multiple_choice benchmark needs 'options' or 'choices'")
    for p in [entry.get("question"), entry.get("answer"), entry.get("context"), entry.get("unit"),
              entry.get("group_by"), *options]:
        if p:
            try:
                br.parse_field_path(p)
            except ValueError as exc:
                raise EvalSpecError(f"{where}: {exc}") from None
    flt = entry.get("filter") or {}
    if flt and (not isinstance(flt, Mapping) or set(flt) != {"field", "in"} or not isinstance(flt["in"], list)):
        raise EvalSpecError(f"{where}: 'filter' must be {{field: PATH, in: [values]}}, got {flt!r}")
    source = None if withheld else _source(name, entry["source"], where, base_dir, build)
    return EvalSpec(name=name, paper=str(entry["paper"]), subpart=str(entry.get("subpart") or name), source=source,
                    qtype=qtype, template=str(entry["template"]), question=str(entry.get("question") or ""),
                    answer=str(entry.get("answer") or ""), answer_format=fmt, context=entry.get("context"),
                    options=tuple(options), choices=tuple(choices), unit=entry.get("unit"), metric=metric,
                    group_by=entry.get("group_by"), shuffle=bool(entry.get("shuffle")),
                    withheld=str(withheld) if withheld else None, notes=str(entry.get("notes") or ""),
                    filter_field=flt.get("field"), filter_values=tuple(str(v) for v in flt.get("in", ())))


def load_eval_registry(path: str | os.PathLike | None = None, *, data_dir: str | os.PathLike | None = None
                       ) -> EvalRegistry:
    """Read an eval registry. `data_dir` is where relative `file:` paths are found (default: the registry's
    folder), e.g. the folder holding the benchmark files published with the paper's pipeline."""
    path = Path(path) if path else DEFAULT_EVAL_REGISTRY
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise EvalSpecError(f"eval registry {path}: cannot read ({exc})") from None
    if not isinstance(raw, Mapping) or not isinstance(raw.get("benchmarks"), Mapping):
        raise EvalSpecError(f"eval registry {path}: needs a top-level 'benchmarks:' mapping")
    base = Path(data_dir) if data_dir else path.parent
    build = br.load_registry()
    specs = {str(n): spec_from_entry(str(n), e, base_dir=base, where=f"eval registry {path}: ", build=build)
             for n, e in raw["benchmarks"].items()}
    sets = {str(k): list(v) for k, v in (raw.get("sets") or {}).items()}
    for s, members in sets.items():
        missing = [m for m in members if m not in specs]
        if missing:
            raise EvalSpecError(f"eval registry {path}: set {s!r} names unknown benchmark(s) {missing}")
    return EvalRegistry(benchmarks=specs, sets=sets, path=str(path))


# -- reading questions and gold answers ----------------------------------------------------------------

def _decoded(value: Any) -> Any:
    """A JSON- or Python-literal-encoded list/dict inside a string field (ChemBench target_scores), decoded."""
    if isinstance(value, str) and value.strip()[:1] in "[{":
        for parse in (json.loads, ast.literal_eval):
            try:
                return parse(value)
            except (ValueError, SyntaxError):
                continue
    return value


def _get(record: Any, path: str, where: str) -> Any:
    try:
        return br.resolve_field(record, path)
    except br.FieldPathError as exc:
        raise EvalSpecError(f"{where}, field {path!r}: {exc}") from None


def _options_of(spec: EvalSpec, record: Any, where: str) -> tuple[list[str], list[float] | None]:
    """Option texts in order, and their scores when the field is a {text: score} mapping."""
    if spec.choices:
        return list(spec.choices), None
    texts: list[str] = []
    scores: list[float] | None = None
    for path in spec.options:
        value = _decoded(_get(record, path, where))
        if isinstance(value, Mapping):
            items = [(k, v) for k, v in value.items() if v is not None]
            if all(isinstance(v, (int, float)) for _, v in items):
                texts += [str(k) for k, _ in items]
                scores = (scores or []) + [float(v) for _, v in items]
            else:                                           # {"A": text, ...}: in label order
                texts += [str(v) for _, v in sorted(items)]
        elif isinstance(value, (list, tuple)):
            texts += [str(v) for v in value]
        elif value is not None and str(value).strip():
            texts.append(str(value))
    return [t.strip() for t in texts], scores


def _letter(i: int) -> str:
    return chr(65 + i)


def gold_of(spec: EvalSpec, record: Any, options: list[str], scores: list[float] | None, where: str) -> str:
    """The gold answer in the form the judge compares (a letter, true/false, a number or expression text)."""
    fmt = spec.answer_format
    if fmt == "scores":                                 # ChemBench: every option scored 1 is correct
        if not scores or max(scores) <= 0:
            raise EvalSpecError(f"{where}: answer_format 'scores' needs an option with a positive score, got {scores}")
        return ",".join(_letter(i) for i, v in enumerate(scores) if v == max(scores))
    if fmt == "first_option":
        return "A"                                      # before any shuffle
    raw = _get(record, spec.answer, where)
    if fmt in ("index", "index1"):
        try:
            i = int(str(raw).strip()) - (fmt == "index1")
        except ValueError:
            raise EvalSpecError(f"{where}, field {spec.answer!r}: expected an option number, got {raw!r}") from None
        if not 0 <= i < len(options):
            raise EvalSpecError(f"{where}, field {spec.answer!r}: option {raw!r} out of range ({len(options)} options)")
        return _letter(i)
    text = "" if raw is None else str(raw).strip()
    if fmt == "letter":
        m = re.fullmatch(r"\(?([A-Za-z])\)?\.?", text)
        if not m or not 0 <= ord(m.group(1).upper()) - 65 < len(options):
            raise EvalSpecError(f"{where}, field {spec.answer!r}: expected one of {len(options)} option letters, got {raw!r}")
        return m.group(1).upper()
    if fmt == "option_text":
        norm = [o.strip().lower() for o in options]
        if text.lower() not in norm:
            raise EvalSpecError(f"{where}, field {spec.answer!r}: {raw!r} is none of the options {options}")
        return _letter(norm.index(text.lower()))
    if fmt == "bool":
        value = {"true": "true", "false": "false", "yes": "true", "no": "false", "1": "true", "0": "false"}.get(text.lower())
        if value is None:
            raise EvalSpecError(f"{where}, field {spec.answer!r}: expected True/False, got {raw!r}")
        return value
    if fmt == "gsm8k":
        if "####" not in text and not re.fullmatch(r"[-\d.,]+", text):
            raise EvalSpecError(f"{where}, field {spec.answer!r}: no '#### <answer>' line")
        text = text.rsplit("####", 1)[-1].strip().replace(",", "")
    elif fmt == "boxed":
        boxes = boxed_spans(text)
        if not boxes:
            raise EvalSpecError(f"{where}, field {spec.answer!r}: no \\boxed{{...}} answer in the solution")
        text = boxes[-1][1]
    text = strip_wrappers(text)
    if not text:
        raise EvalSpecError(f"{where}, field {spec.answer!r}: empty gold answer")
    return text


def _shuffled(qid: str, options: list[str], gold: str) -> tuple[list[str], str]:
    order = list(range(len(options)))
    random.Random(int(hashlib.sha256(qid.encode()).hexdigest()[:16], 16)).shuffle(order)
    return [options[i] for i in order], _letter(order.index(ord(gold) - 65))


def question_rows(spec: EvalSpec, *, sample: int | None = None, seed: int = 0, snapshot_download=None
                  ) -> list[dict[str, Any]]:
    """One row per record of the benchmark (repeats kept: the paper scores every record), in source order;
    with `sample`, a seeded subset of that many (stable: the same seed picks the same questions)."""
    if spec.withheld:
        raise EvalSpecError(f"benchmark {spec.name!r} cannot be scored here: {spec.withheld}")
    rows: list[dict[str, Any]] = []
    try:
        sources = list(br.record_sources(spec.source, snapshot_download))
        for source, records in sources:
            for i, record in enumerate(records):
                if spec.filter_field and str(_get(record, spec.filter_field, f"benchmark {spec.name!r}, file "
                                                  f"{_short(source)}, record {i}")) not in spec.filter_values:
                    continue
                rows.append(_row(spec, record, f"benchmark {spec.name!r}, file {_short(source)}, record {i}",
                                 f"{_short(source)}#{i}", len(rows)))
    except br.BenchmarkError as exc:
        raise EvalSpecError(f"{exc}") from None
    if not rows:
        raise EvalSpecError(f"benchmark {spec.name!r}: no records")
    if sample is not None and sample < len(rows):
        rank = sorted(range(len(rows)), key=lambda k: hashlib.sha256(f"{seed}:{rows[k]['id']}".encode()).hexdigest())
        keep = sorted(rank[:sample])
        rows = [rows[k] for k in keep]
    return rows


def _short(source: str) -> str:
    parts = Path(source).parts
    return source if "@" in source else "/".join(parts[-3:])


def _row(spec: EvalSpec, record: Any, where: str, origin: str, position: int) -> dict[str, Any]:
    stem = _get(record, spec.question, where)
    if not isinstance(stem, str) or not stem.strip():
        raise EvalSpecError(f"{where}, field {spec.question!r}: expected non-empty question text, got {stem!r:.80}")
    question = stem.strip()
    if spec.context:
        ctx = _decoded(_get(record, spec.context, where))
        ctx = "\n".join(map(str, ctx)) if isinstance(ctx, (list, tuple)) else str(ctx or "")
        question = f"{ctx.strip()}\n\n{question}" if ctx.strip() else question
    options, scores = _options_of(spec, record, where) if (spec.options or spec.choices) else ([], None)
    if spec.qtype == MC and len(options) < 2:
        raise EvalSpecError(f"{where}, field(s) {list(spec.options)}: fewer than two options ({options})")
    gold = gold_of(spec, record, options, scores, where)
    qid = content_id("eval", spec.name, position, question, options)
    if spec.shuffle and spec.qtype == MC:
        options, gold = _shuffled(qid, options, gold)
    template = spec.template
    if "," in gold and spec.qtype == MC and template == "multiple_choice":
        template = "multiple_select"                    # several correct options: the prompt says so
    unit = str(_get(record, spec.unit, where) or "").strip() if spec.unit else ""
    group = str(_get(record, spec.group_by, where)) if spec.group_by else ""
    if spec.qtype == TF and gold not in ("true", "false"):
        raise EvalSpecError(f"{where}, field {spec.answer!r}: a true_false gold must read True/False (answer_format: bool)")
    return {"id": qid, "benchmark": spec.name, "paper": spec.paper, "subpart": spec.subpart, "group": group,
            "qtype": spec.qtype, "template": template, "question": question,
            "options": json.dumps(options, ensure_ascii=False), "gold": gold, "gold_unit": unit,
            "metric": json.dumps(dict(spec.metric), sort_keys=True), "source": origin}
