"""Assembling configurations from finished work directories: for each configuration the catalogue's `build:`
names, the rows of its stage's output (or of a subset of them) in its feature columns, and its manifest fields
(pipeline, stage, upstream, models, prompt hashes, row counts, and for selections the subset records
recomputed from the stored signals). The output is what megascience_datasets.repo_folder.write_repo_folder
takes."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from megascience_datasets.catalogue import Build

from ..engine.workdir import WorkDir, WorkDirError
from . import mixture_configs
from .arguments import ReleaseError
from .catalogue_builds import builder_of, catalogue_columns, layout


def read_manifest(pipeline: str, work: Path) -> dict:
    if not Path(work).is_dir():
        raise ReleaseError(f"work directory {work} (for {pipeline!r}) does not exist")
    try:
        return WorkDir(work).read_manifest()
    except WorkDirError as exc:
        raise ReleaseError(f"{exc} (the {pipeline!r} work directory)") from None


def _stage_of(wd: WorkDir, manifest: dict, build: Build, config: str) -> dict:
    if build.stage is None:
        return manifest["stages"][-1]
    for stage in manifest["stages"]:
        if stage["label"] == build.stage:
            return stage
    raise ReleaseError(f"{wd.manifest_path}: pipeline {manifest['name']!r} has no stage {build.stage!r} "
                       f"(needed for configuration {config!r})")


def _stage_table(wd: WorkDir, stage: dict, config: str) -> pa.Table:
    parts = wd.stage_parts(stage["index"], stage["label"])
    if not parts:
        raise ReleaseError(f"{wd.stage_path(stage['index'], stage['label'])}: no shards of stage "
                           f"{stage['label']!r} (needed for configuration {config!r}); did it finish?")
    return pa.concat_tables([pq.read_table(p) for p in parts])


def _input_record(wd: WorkDir, manifest: dict) -> dict[str, Any]:
    """What a run read, without the builder's local paths: kind, rows and the sha256 of each input shard."""
    given = manifest.get("input", {})
    return {"kind": given.get("kind"), "rows": given.get("rows"), "limit": given.get("limit"),
            "shards_sha256": [hashlib.sha256(p.read_bytes()).hexdigest() for p in wd.input_parts()]}


def _run_fields(wd: WorkDir, manifest: dict, stage: dict, build: Build) -> dict[str, Any]:
    """The manifest fields of one configuration: the run, its upstream, models, prompts and counts up to its stage."""
    stages = manifest["stages"][:stage["index"] + 1]
    models = sorted({json.dumps(m, sort_keys=True) for s in stages for m in s["models"]})
    prompts = sorted({(p["name"], p["sha256"]) for s in stages for p in s["prompts"]})
    upstream = ({"input": _input_record(wd, manifest)} if build.upstream == "input"
                else mixture_configs.upstream_revision(manifest))
    return {
        "pipeline": {"name": manifest["name"], "sha256": manifest["pipeline"]["sha256"],
                     "seed": manifest["pipeline"]["seed"]},
        "stage": stage["label"],
        "upstream": upstream,
        "models": [json.loads(m) for m in models],
        "prompts": [{"name": n, "sha256": h} for n, h in prompts],
        "counts": [{"stage": s["label"], "rows_in": s.get("rows_in"), "rows_out": s.get("rows_out"),
                    "dropped": s.get("dropped", {}), "counters": s.get("counters", {})} for s in stages],
    }


def _project(table: pa.Table, columns: list[str], stage_dir: Path, config: str) -> pa.Table:
    if "source" in columns and "source" not in table.column_names:
        table = mixture_configs.with_source(table)
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise ReleaseError(f"{stage_dir}: the stage output lacks column(s) {missing} of configuration {config!r}")
    return table.select(columns)


def assemble(works: Mapping[str, str | Path], columns_of: Mapping[str, list[str]]) -> tuple[dict, dict]:
    """works: {pipeline name: its work directory}; columns_of: {configuration: its feature columns}. Returns
    ({configuration: [table]}, {configuration: manifest fields}) for write_repo_folder."""
    configs: dict[str, list[pa.Table]] = {}
    extra: dict[str, dict[str, Any]] = {}
    for pipeline, work in works.items():
        wd, manifest, mine = WorkDir(work), read_manifest(pipeline, Path(work)), layout(pipeline)
        config_of_member = {b.member: c for c, b in mine.items() if b.member is not None}
        tables: dict[str, pa.Table] = {}
        selections: dict[str, tuple] = {}
        for config, build in mine.items():
            if config not in columns_of:
                continue
            stage = _stage_of(wd, manifest, build, config)
            label = stage["label"]
            if label not in tables:
                tables[label] = _stage_table(wd, stage, config)
            table, fields = tables[label], _run_fields(wd, manifest, stage, build)
            if build.member is not None or build.signals:
                if label not in selections:
                    selections[label] = mixture_configs.verified_selection(tables[label], stage, manifest)
                plan, verified = selections[label]
                table = mixture_configs.subset_rows(table, build, plan, verified, columns_of[config], fields,
                                                    config_of_member)
            stage_dir = wd.stage_path(stage["index"], label)
            configs[config] = [_project(table, list(columns_of[config]), stage_dir, config)]
            extra[config] = fields
    return configs, extra


def assemble_release(works: Mapping[str, Path], configs: Sequence[str] | None = None,
                     complete: bool = False) -> tuple[dict[str, list], dict[str, dict], dict[str, Any]]:
    """({config: [table]}, {config: manifest fields}, {pipeline: upstream revision}) in catalogue order."""
    columns_all = catalogue_columns()
    offered = {c: p for p in works for c in layout(p)}
    wanted = list(configs) if configs is not None else list(offered)
    unknown = [c for c in wanted if c not in columns_all]
    if unknown:
        raise ReleaseError(f"configuration(s) {unknown} are not in the catalogue (`megascience list`)")
    if complete:
        # configurations no pipeline builds (views the loader derives from released data) are not required
        absent = [c for c in columns_all if c not in wanted and builder_of(c) is not None]
        if absent:
            raise ReleaseError("a complete release lacks configuration(s): " + "; ".join(
                f"{c} (from the {builder_of(c)!r} work directory)" for c in absent))
    without = [c for c in wanted if c not in offered]
    if without:
        raise ReleaseError("no work directory given for configuration(s): " + "; ".join(
            f"{c} (give --work {builder_of(c)}=WORKDIR)" for c in without))
    used = {p: Path(w) for p, w in works.items() if any(offered[c] == p for c in wanted)}
    for pipeline, work in used.items():      # every manifest is checked before any data is read
        read_manifest(pipeline, work)
    tables: dict[str, list] = {}
    extra: dict[str, dict] = {}
    for pipeline, work in used.items():
        try:
            t, e = assemble({pipeline: work}, {c: columns_all[c] for c in wanted if offered[c] == pipeline})
        except (ValueError, KeyError) as exc:   # e.g. a subset column that disagrees with its stored signals
            raise ReleaseError(f"work directory {work} ({pipeline!r}): {exc}") from None
        tables.update(t)
        extra.update(e)
    lost = [c for c in wanted if c not in tables]
    if lost:
        raise ReleaseError(f"the work directories gave no data for configuration(s) {lost}")
    order = [c for c in columns_all if c in tables]
    sources = {p: extra[c]["upstream"] for c in order for p in [offered[c]] if extra[c].get("upstream")}
    return {c: tables[c] for c in order}, {c: extra[c] for c in order}, sources
