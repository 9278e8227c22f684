"""Assemble the mixture side's configurations from finished pipeline work directories into the inputs of
megascience_datasets.repo_folder.write_repo_folder: {configuration: [tables]} plus, per configuration, the
manifest fields (pipeline, stage, upstream revision, models, prompt hashes, row counts and, for selection
subsets, the subset record recomputed from the stored signals). Publishing is not done here.

Which stage output is which catalogue configuration (see the pipeline files' headers):

    natural_reasoning   dedup -> natural_reasoning; decontaminate -> natural_reasoning_dc;
                        select_subsets + selected_{difficulty,length,random} -> natural_reasoning_dc_<rule>
    nemotron_science    the same with nemotron_science
    scp116k             dedup -> scp116k; decontaminate -> scp116k_dc
    textbook_selection  select_subsets + selected_{difficulty,length,random} -> textbook_<rule>;
                        + selected_difficulty_distill -> textbook_hardest (Table 11's hardest questions)
    <pool>_signals      select_subsets' id and signal columns (response_length, length_excluded, difficulty,
                        random_u01) with the models that made them and every subset's count and id digest:
                        a small configuration from which the loader derives the subsets from public rows
    megascience         mixture -> megascience
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .selection import subsets as sel
from .engine import records
from .stages.mixture import SUBSET_COLUMNS, source_of, verified_subset_records
from .upstream.adapters import SOURCES, source_spec

SUBSET_RULES = ("difficulty", "length", "random")


def layout(pipeline: str) -> list[tuple[str, str, str | None]]:
    """(configuration, stage label, membership column or None) for one pipeline's work directory."""
    if pipeline in ("natural_reasoning", "nemotron_science", "scp116k"):
        rows = [(pipeline, "dedup", None), (f"{pipeline}_dc", "decontaminate", None)]
        if pipeline != "scp116k":
            rows += [(f"{pipeline}_dc_{r}", "select_subsets", SUBSET_COLUMNS[r]) for r in SUBSET_RULES]
            rows.append((f"{pipeline}_dc_signals", "select_subsets", None))
        return rows
    if pipeline == "textbook_selection":
        return [*[(f"textbook_{r}", "select_subsets", SUBSET_COLUMNS[r]) for r in SUBSET_RULES],
                ("textbook_hardest", "select_subsets", SUBSET_COLUMNS["difficulty_distill"]),
                ("textbook_signals", "select_subsets", None)]
    if pipeline == "megascience":
        return [("megascience", "mixture", None)]
    raise ValueError(f"no configuration layout for pipeline {pipeline!r}; known: natural_reasoning, "
                     f"nemotron_science, scp116k, textbook_selection, megascience")


def _stage_table(work: Path, stage: dict) -> pa.Table:
    folder = work / "stages" / f"{stage['index']:02d}_{stage['label']}"
    parts = sorted(folder.glob("part-*.parquet"))
    if not parts:
        raise FileNotFoundError(f"{folder}: no shards; did stage {stage['label']!r} finish?")
    return pa.concat_tables([pq.read_table(p) for p in parts])


def _project(table: pa.Table, columns: list[str]) -> pa.Table:
    if "source" in columns and "source" not in table.column_names:
        repo_sources = {s.repo: s.source_value for s in SOURCES.values()}
        table = records.set_column(table, "source", pa.array(
            [source_of(p, repo_sources) for p in table.column(records.PROVENANCE).to_pylist()], pa.string()))
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise ValueError(f"stage output lacks column(s) {missing} of the configuration's features")
    return table.select(columns)


def assemble(works: Mapping[str, str | Path], columns_of: Mapping[str, list[str]]) -> tuple[dict, dict]:
    """works: {pipeline name: its work directory}; columns_of: {configuration: column names of its
    catalogue features}. Returns (configs, extra) for write_repo_folder."""
    configs: dict[str, list[pa.Table]] = {}
    extra: dict[str, dict[str, Any]] = {}
    for pipeline, work in works.items():
        work = Path(work)
        manifest = json.loads((work / "manifest.json").read_text())
        stages = {s["label"]: s for s in manifest["stages"]}
        revisions = _upstream_revisions(manifest)
        cache: dict[str, pa.Table] = {}
        for config, label, column in layout(pipeline):
            if config not in columns_of:
                continue
            if label not in stages:
                raise ValueError(f"{work}/manifest.json: pipeline {manifest['name']!r} has no stage {label!r} "
                                 f"(needed for configuration {config!r})")
            stage = stages[label]
            table = cache.setdefault(label, _stage_table(work, stage))
            fields: dict[str, Any] = {
                "pipeline": {"name": manifest["name"], "sha256": manifest["pipeline"]["sha256"],
                             "seed": manifest["pipeline"]["seed"]},
                "stage": label, "upstream": revisions,
                "models": sorted({json.dumps(m, sort_keys=True) for s in manifest["stages"][:stage["index"] + 1]
                                  for m in s["models"]}),
                "prompts": sorted({(p["name"], p["sha256"]) for s in manifest["stages"][:stage["index"] + 1]
                                   for p in s["prompts"]}),
                "counts": [{"stage": s["label"], "rows_in": s.get("rows_in"), "rows_out": s.get("rows_out"),
                            "dropped": s.get("dropped", {}), "counters": s.get("counters", {})}
                           for s in manifest["stages"][:stage["index"] + 1]],
            }
            fields["models"] = [json.loads(m) for m in fields["models"]]
            fields["prompts"] = [{"name": n, "sha256": h} for n, h in fields["prompts"]]
            if column is not None or config.endswith("_signals"):
                p = stage["params"]
                seed = manifest["pipeline"]["seed"] if p.get("seed") is None else p["seed"]
                plan = sel.PoolPlan(p["parent"], sel.DifficultyBounds(float(p["low"]), float(p["high"]), bool(p["strict"])),
                                    int(seed), distill_below=p.get("distill_below"))
                verified = verified_subset_records(table, plan)
            if column is not None:
                recs = {r["column"]: r for r in verified}
                fields["subset"] = recs[column]
                table_out = table.filter(pc.fill_null(table.column(column), False))
            elif config.endswith("_signals"):
                # the stored signals alone (a small configuration): with the parent's public rows they give every
                # subset, which the loader checks against these counts and id digests
                fields["subsets"] = {subset_config(r["name"], p["parent"]): r for r in verified}
                fields["signals"] = {"columns": list(columns_of[config]), "models": fields["models"],
                                     "seed": int(seed), "bounds": plan.bounds.as_dict()}
                table_out = table
            else:
                table_out = table
            configs[config] = [_project(table_out, list(columns_of[config]))]
            extra[config] = fields
    return configs, extra


def subset_config(subset_name: str, parent: str) -> str:
    """The catalogue configuration of a build subset (the hardest questions are `textbook_hardest`)."""
    return f"{parent}_hardest" if subset_name == f"{parent}_difficulty_distill" else subset_name


def catalogue_columns() -> dict[str, list[str]]:
    """{configuration: its feature columns} from the loader's catalogue."""
    from megascience_datasets.catalogue import load_catalogue

    return {e.name: list(e.arrow_schema().names) for e in load_catalogue().entries}


def _upstream_revisions(manifest: dict) -> dict[str, Any]:
    for s in manifest["stages"]:
        if s["stage"] == "adapt_source":
            spec = source_spec(s["params"]["source"])
            return {"repo": spec.repo, "config": spec.config, "split": spec.split,
                    "revision": s["params"].get("revision") or spec.revision}
    return {}
