"""What both executors share: the plan check, running one stage over one table, shard stats, fingerprints."""
from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from dataclasses import asdict
from typing import Any, Sequence

import pyarrow as pa

from .. import __version__
from .context import ModelPool, StageContext
from .pipeline_config import PipelineConfig, StageSpec
from .stage import StageError, StageOutput

SUBJECT = "subject"


def check_plan(config: PipelineConfig, input_schema: pa.Schema) -> list[list[str]]:
    """Propagate column names through every stage; a missing column fails here, before any work.
    Returns the column names each stage receives."""
    names = list(input_schema.names)
    seen = []
    for spec in config.stages:
        schema = pa.schema([(n, pa.string()) for n in names])
        try:
            spec.stage.check_schema(schema)
        except StageError as exc:
            raise StageError(f"pipeline {config.path}: stage #{spec.index}: {exc}") from None
        seen.append(names)
        names = spec.stage.output_columns(names)
    return seen


def preflight(config: PipelineConfig) -> None:
    """Every stage's file checks (Stage.preflight), before an executor touches the work directory."""
    for spec in config.stages:
        try:
            spec.stage.preflight()
        except StageError as exc:
            raise StageError(f"pipeline {config.path.name}: stage #{spec.index}: {exc}") from None


def segments(config: PipelineConfig) -> list[list[StageSpec]]:
    """Consecutive CPU map stages run fused per shard; a model stage or a global stage stands alone."""
    groups: list[list[StageSpec]] = []
    for spec in config.stages:
        fusable = spec.stage.kind == "map" and not spec.uses_model
        if fusable and groups and groups[-1][0].stage.kind == "map" and not groups[-1][0].uses_model:
            groups[-1].append(spec)
        else:
            groups.append([spec])
    return groups


def fingerprint(config: PipelineConfig, spec: StageSpec, input_sha256: Sequence[str], models: ModelPool) -> str:
    """Everything that decides a stage's output for given input bytes (cached answers aside): the stage and
    its parameters, prompts, sampling, the models' resolved identities, the content of the files the stage
    reads besides its input (Stage.side_inputs), the seed and the input shards."""
    roles = [*spec.llm_roles, *([spec.embedder_role] if spec.embedder_role else [])]
    payload = {"engine": __version__, "stage": spec.stage.describe(), "sampling": asdict(spec.sampling),
               "prompts": {slot: t.sha256 for slot, t in spec.prompts.items()},
               "models": {r: models.identity(r).digest for r in roles},
               "side_inputs": spec.stage.side_inputs(),
               "seed": config.seed, "input": list(input_sha256)}
    blob = json.dumps(payload, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _subjects(table: pa.Table) -> dict[str, int]:
    if SUBJECT not in table.column_names:
        return {}
    return dict(sorted(Counter(str(s) for s in table.column(SUBJECT).to_pylist()).items()))


def _empty_output(spec: StageSpec, table: pa.Table, expected: list[str]) -> pa.Table:
    cols = {n: table.column(n) if n in table.column_names else pa.nulls(0) for n in expected}
    return pa.table(cols)


def run_stage(spec: StageSpec, table: pa.Table, ctx: StageContext) -> tuple[pa.Table, dict[str, Any]]:
    """Apply one stage to one table; check what it returns; count rows in/out, drops and subjects."""
    started = time.perf_counter()
    expected = spec.stage.output_columns(table.column_names)
    if table.num_rows == 0:   # nothing to do; keep the shard so downstream stages see it
        out = StageOutput(kept=_empty_output(spec, table, expected))
    else:
        out = spec.stage.process(table, ctx)
    where = f"stage {spec.label!r}"
    if not isinstance(out, StageOutput) or not isinstance(out.kept, pa.Table):
        raise RuntimeError(f"{where}: process() must return StageOutput(kept=<pyarrow.Table>, ...), got {type(out).__name__}")
    kept = out.kept
    missing = [c for c in expected if c not in kept.column_names]
    extra = [c for c in kept.column_names if c not in expected]
    if missing or extra:
        raise RuntimeError(f"{where}: output columns {kept.column_names} do not match the declared ones {expected} "
                           f"(missing {missing}, undeclared {extra})")
    kept = kept.select(expected).replace_schema_metadata(None)
    dropped: Counter[str] = Counter()
    dropped_subjects: dict[str, Counter] = {}
    subjects = table.column(SUBJECT).to_pylist() if SUBJECT in table.column_names else None
    for pos, reason in out.dropped:
        if not (isinstance(pos, int) and 0 <= pos < table.num_rows and isinstance(reason, str) and reason):
            raise RuntimeError(f"{where}: bad drop record {(pos, reason)!r}; expected (row position < "
                               f"{table.num_rows}, non-empty reason)")
        dropped[reason] += 1
        if subjects is not None:
            dropped_subjects.setdefault(str(subjects[pos]), Counter())[reason] += 1
    stats = {"rows_in": table.num_rows, "rows_out": kept.num_rows, "dropped": dict(sorted(dropped.items())),
             "subjects_in": _subjects(table), "subjects_out": _subjects(kept),
             "dropped_by_subject": {s: dict(sorted(c.items())) for s, c in sorted(dropped_subjects.items())},
             "counters": dict(sorted((k, int(v)) for k, v in out.counters.items())),
             "usage": ctx.usage.as_dict(), "wall_s": round(time.perf_counter() - started, 6)}
    return kept, stats


def merge_stats(parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Sum shard stats of one stage."""
    total: dict[str, Any] = {"rows_in": 0, "rows_out": 0, "dropped": Counter(), "subjects_in": Counter(),
                             "subjects_out": Counter(), "dropped_by_subject": {}, "counters": Counter(),
                             "usage": {}, "wall_s": 0.0}
    for p in parts:
        for key in ("rows_in", "rows_out", "wall_s"):
            total[key] += p[key]
        for key in ("dropped", "subjects_in", "subjects_out", "counters"):
            total[key].update(p[key])
        for subj, reasons in p["dropped_by_subject"].items():
            total["dropped_by_subject"].setdefault(subj, Counter()).update(reasons)
        for key, value in p["usage"].items():
            if isinstance(value, dict):
                total["usage"].setdefault(key, Counter()).update(value)
            else:
                total["usage"][key] = total["usage"].get(key, 0) + value
    total["wall_s"] = round(total["wall_s"], 6)
    for key in ("dropped", "subjects_in", "subjects_out", "counters"):
        total[key] = dict(sorted(total[key].items()))
    total["dropped_by_subject"] = {s: dict(sorted(c.items())) for s, c in sorted(total["dropped_by_subject"].items())}
    total["usage"] = {k: dict(v) if isinstance(v, Counter) else v for k, v in total["usage"].items()}
    return total


def concat(tables: Sequence[pa.Table]) -> pa.Table:
    """Concatenate shards (an empty shard may carry null-typed columns; they unify with the real type)."""
    return pa.concat_tables(list(tables), promote_options="default").combine_chunks()

