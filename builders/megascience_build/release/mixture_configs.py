"""The mixture side of a release: selection subsets and stored signals recomputed and checked from a
select_subsets output, the `source` column of mixture configurations, and the upstream Hub revision a
pipeline's adapt_source stage read."""
from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from megascience_datasets.catalogue import Build

from ..engine import records
from ..selection import subsets as sel
from ..stages.mixture import source_of, verified_subset_records
from ..upstream.adapters import SOURCES, source_spec


def verified_selection(table: pa.Table, stage: dict, manifest: dict) -> tuple[sel.PoolPlan, list[dict]]:
    """The selection a select_subsets stage ran (from its recorded parameters) and its subset records,
    recomputed from the stored signals and checked against the membership columns of its output."""
    p = stage["params"]
    seed = manifest["pipeline"]["seed"] if p.get("seed") is None else p["seed"]
    plan = sel.PoolPlan(p["parent"], sel.DifficultyBounds(float(p["low"]), float(p["high"]), bool(p["strict"])),
                        int(seed), distill_below=p.get("distill_below"))
    return plan, verified_subset_records(table, plan)


def subset_rows(table: pa.Table, build: Build, plan: sel.PoolPlan, verified: list[dict], columns: list[str],
                fields: dict[str, Any], config_of_member: dict[str, str]) -> pa.Table:
    """A subset's rows (build.member) or a pool's stored signals (build.signals); adds their records to the
    configuration's manifest fields."""
    if build.member is not None:
        fields["subset"] = {r["column"]: r for r in verified}[build.member]
        return table.filter(pc.fill_null(table.column(build.member), False))
    # the stored signals alone (a small configuration): with the parent's public rows they give every subset,
    # which the loader checks against these counts and id digests
    fields["subsets"] = {config_of_member.get(r["column"], r["name"]): r for r in verified}
    fields["signals"] = {"columns": list(columns), "models": fields["models"], "seed": plan.seed,
                         "bounds": plan.bounds.as_dict()}
    return table


def with_source(table: pa.Table) -> pa.Table:
    """The `source` column of the mixture configurations, from each row's provenance."""
    repo_sources = {s.repo: s.source_value for s in SOURCES.values()}
    return records.set_column(table, "source", pa.array(
        [source_of(p, repo_sources) for p in table.column(records.PROVENANCE).to_pylist()], pa.string()))


def upstream_revision(manifest: dict) -> dict[str, Any]:
    """The Hub dataset, configuration, split and revision the run's adapt_source stage read ({} if none)."""
    for s in manifest["stages"]:
        if s["stage"] == "adapt_source":
            spec = source_spec(s["params"]["source"])
            return {"repo": spec.repo, "config": spec.config, "split": spec.split,
                    "revision": s["params"].get("revision") or spec.revision}
    return {}
