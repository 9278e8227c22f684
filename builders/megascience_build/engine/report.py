"""report.md (tables in the shape of the paper's Table 2: rows per subject after each stage) and report.png."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .storage import write_atomic


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def subject_matrix(manifest: dict[str, Any]) -> tuple[list[str], list[str], list[list[int | None]], list[int]]:
    """(subjects, columns, counts, totals): rows in at the first stage, then rows out after each stage.
    A count is None where the rows had no `subject` column yet (e.g. before books are classified)."""
    stages = manifest["stages"]
    subjects = sorted({s for st in stages for s in (*st["subjects_in"], *st["subjects_out"])})
    columns = ["input"] + [st["label"] for st in stages]
    points = ([(stages[0]["subjects_in"], stages[0]["rows_in"])] if stages else []) + \
        [(st["subjects_out"], st["rows_out"]) for st in stages]
    counts = [[(by.get(s, 0) if by or not rows else None) for by, rows in points] for s in subjects]
    return subjects, columns, counts, [rows for _, rows in points]


def render_markdown(manifest: dict[str, Any]) -> str:
    out = [f"# Build report: {manifest['name']}", "",
           f"Pipeline `{manifest['pipeline']['path']}` (sha256 `{manifest['pipeline']['sha256'][:16]}…`), "
           f"executor {manifest['executor']['name']}, megascience-build {manifest['package']['version']}, "
           f"started {manifest['started_at']}, wall time {manifest['wall_s']:.1f} s.", "",
           "## Rows per stage", ""]
    rows = []
    for st in manifest["stages"]:
        u = st["usage"]
        drops = ", ".join(f"{r}: {n}" for r, n in st["dropped"].items()) or "-"
        rows.append([st["label"], st["stage"], st["rows_in"], st["rows_out"], drops, u.get("requests", 0),
                     u.get("cache_hits", 0), u.get("tokens_in", 0), u.get("tokens_out", 0), f"{st['wall_s']:.1f}"])
    out += [_table(["stage", "type", "rows in", "rows out", "dropped (reason: rows)", "requests", "cache hits",
                    "tokens in", "tokens out", "time (s)"], rows), ""]
    subjects, columns, counts, totals = subject_matrix(manifest)
    if subjects:
        out += ["## Rows per subject after each stage", "",
                "(`-`: the rows have no `subject` column at that point)", ""]
        cells = [[s, *("-" if c is None else c for c in row)] for s, row in zip(subjects, counts)]
        out += [_table(["subject", *columns], cells + [["**total**", *totals]]), ""]
    models = [[r, m["model"], m["revision"], m["backend"]] for r, m in manifest["models"].items()]
    if models:
        out += ["## Models", "", _table(["role", "model", "revision", "backend"], models), ""]
    prompts = [[st["label"], p["slot"], p["name"], f"`{p['sha256'][:16]}`"] for st in manifest["stages"] for p in st["prompts"]]
    if prompts:
        out += ["## Prompts", "", _table(["stage", "slot", "template", "sha256"], prompts), ""]
    out += ["## Output shards", "",
            _table(["file", "rows", "bytes", "sha256"],
                   [[Path(o["path"]).name, o["rows"], o["bytes"], f"`{o['sha256']}`"] for o in manifest["outputs"]]),
            "", "![rows per stage per subject](report.png)", ""]
    return "\n".join(out)


def render_png(manifest: dict[str, Any]) -> bytes:
    import io

    from matplotlib.figure import Figure   # the object API: no pyplot, no GUI backend, thread-safe

    subjects, columns, counts, totals = subject_matrix(manifest)
    series = [(s, [float("nan") if c is None else c for c in row]) for s, row in zip(subjects, counts)]
    series.append(("all rows", totals))
    fig = Figure(figsize=(max(6.0, 1.1 * len(columns)), 4.5), dpi=100)
    ax = fig.subplots()
    for name, row in series:
        ax.plot(range(len(columns)), row, marker="o", label=name, **({"color": "black", "linestyle": "--"}
                                                                      if name == "all rows" else {}))
    ax.set_xticks(range(len(columns)), columns, rotation=30, ha="right")
    ax.set_ylabel("rows")
    ax.set_title(f"{manifest['name']}: rows after each stage")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", ncol=2)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def write_report(manifest: dict[str, Any], root: Path) -> None:
    write_atomic(root / "report.md", render_markdown(manifest).encode("utf-8"))
    write_atomic(root / "report.png", render_png(manifest))
