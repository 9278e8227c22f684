"""Capacity planning from a trial run: what a pipeline will ask of its models at full size, and the GPU-hours.

A trial run (`megascience-build run ... --limit 2000`) records, per stage, the rows it saw, the requests its
models answered and their prompt and generated tokens (manifest.json, cached answers included). `plan`
scales them to the full input size (each stage's rows, requests and tokens in proportion to the input rows)
and converts generated tokens into GPU-hours at a measured rate per model role: generated tokens per second
of one replica of the stage's `gpus` (a rate measured end to end, prefill included, such as those in
BENCHMARKS.md). Proportional scaling is the assumption to check: stages whose cost per row changes with size
(a global dedup, a difficulty filter that keeps more or fewer rows) scale with the trial's ratios.
"""
from __future__ import annotations

from typing import Any, Mapping


def plan(manifest: Mapping[str, Any], rows: int, rates: Mapping[str, float]) -> dict[str, Any]:
    """{"scale", "stages": [...], "total": {...}} for `rows` input rows; `rates`: role -> generated tokens/s
    per replica ("*" for every role without its own)."""
    trial_rows = int(manifest["input"]["rows"])
    if trial_rows <= 0:
        raise ValueError("the trial run read no input rows: nothing to scale from")
    scale = rows / trial_rows
    stages, total = [], {"requests": 0.0, "tokens_in": 0.0, "tokens_out": 0.0, "gpu_hours": 0.0}
    for st in manifest["stages"]:
        usage = st.get("usage") or {}
        roles = [m["role"] for m in st.get("models", []) if m.get("role")]
        rate = next((rates[r] for r in roles if r in rates), rates.get("*")) if usage.get("requests") else None
        gpus = max(float(st.get("gpus") or 0), 1.0) if usage.get("requests") else 0.0
        out = {"label": st["label"], "roles": roles, "rows_in": st["rows_in"] * scale,
               "requests": usage.get("requests", 0) * scale, "tokens_in": usage.get("tokens_in", 0) * scale,
               "tokens_out": usage.get("tokens_out", 0) * scale, "gpus": gpus, "rate": rate}
        out["gpu_hours"] = out["tokens_out"] / rate / 3600 * gpus if rate else None
        for key in ("requests", "tokens_in", "tokens_out"):
            total[key] += out[key]
        total["gpu_hours"] += out["gpu_hours"] or 0.0
        stages.append(out)
    missing = sorted({r for s in stages if s["requests"] and s["rate"] is None for r in s["roles"]})
    return {"trial_rows": trial_rows, "rows": rows, "scale": scale, "stages": stages, "total": total,
            "roles_without_rate": missing}


def render(p: Mapping[str, Any]) -> str:
    lines = [f"Plan for {p['rows']:,} input rows, scaled x{p['scale']:,.1f} from a trial run of "
             f"{p['trial_rows']:,} rows.", "",
             "| stage | roles | rows in | requests | prompt tokens | generated tokens | GPUs | tokens/s | GPU-hours |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for s in p["stages"]:
        hours = "-" if s["gpu_hours"] is None else f"{s['gpu_hours']:,.1f}"
        rate = "-" if s["rate"] is None else f"{s['rate']:,.0f}"
        lines.append(f"| {s['label']} | {', '.join(s['roles']) or '-'} | {s['rows_in']:,.0f} | {s['requests']:,.0f} | "
                     f"{s['tokens_in']:,.0f} | {s['tokens_out']:,.0f} | {s['gpus']:g} | {rate} | {hours} |")
    t = p["total"]
    lines.append(f"| **total** | | | {t['requests']:,.0f} | {t['tokens_in']:,.0f} | {t['tokens_out']:,.0f} | | | "
                 f"{t['gpu_hours']:,.1f} |")
    if p["roles_without_rate"]:
        lines += ["", f"No rate for role(s) {', '.join(p['roles_without_rate'])}: give --rate ROLE=TOKENS_PER_S "
                      f"(or --rate '*=...'); their GPU-hours are not in the total."]
    return "\n".join(lines) + "\n"
