"""report.md (tables in the shape of the paper's Table 2: rows per subject after each stage) and report.png."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .storage import write_atomic
from .workdir import WorkDir


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def subject_name(subject: str) -> str:
    """One name per subject at every stage: the released short form (`math`, `cs`, ...), so the classifier's
    `mathematics` before finalize and the released `math` after it are one row."""
    from ..stages.finalize import released_subject
    return released_subject(subject)[0] or subject


def _by_released_name(counts: dict[str, int]) -> dict[str, int]:
    out: dict[str, int] = {}
    for subject, n in counts.items():
        out[subject_name(subject)] = out.get(subject_name(subject), 0) + n
    return out


def subject_matrix(manifest: dict[str, Any]) -> tuple[list[str], list[str], list[list[int | None]], list[int]]:
    """(subjects, columns, counts, totals): rows in at the first stage, then rows out after each stage.
    A count is None where the rows had no `subject` column yet (e.g. before books are classified)."""
    stages = manifest["stages"]
    points = ([(stages[0]["subjects_in"], stages[0]["rows_in"])] if stages else []) + \
        [(st["subjects_out"], st["rows_out"]) for st in stages]
    points = [(_by_released_name(by), rows) for by, rows in points]
    subjects = sorted({s for by, _ in points for s in by})
    columns = ["input"] + [st["label"] for st in stages]
    counts = [[(by.get(s, 0) if by or not rows else None) for by, rows in points] for s in subjects]
    return subjects, columns, counts, [rows for _, rows in points]


def _resumed(stage: dict[str, Any]) -> str:
    done, total = stage.get("shards_resumed", 0), stage.get("shards", 0)
    return "no" if not done else "yes" if done == total else f"{done}/{total} shards"


def render_markdown(manifest: dict[str, Any]) -> str:
    out = [f"# Build report: {manifest['name']}", "",
           f"Pipeline `{manifest['pipeline']['file']}` (sha256 `{manifest['pipeline']['sha256'][:16]}…`), "
           f"executor {manifest['executor']['name']}, megascience-build {manifest['package']['version']}, "
           f"started {manifest['started_at']}, wall time {manifest['wall_s']:.1f} s.", "",
           "## Rows per stage", ""]
    rows = []
    for st in manifest["stages"]:
        u = st["usage"]
        drops = ", ".join(f"{r}: {n}" for r, n in st["dropped"].items()) or "-"
        rows.append([st["label"], st["stage"], st["rows_in"], st["rows_out"], drops, u.get("requests", 0),
                     u.get("cache_hits", 0), u.get("tokens_in", 0), u.get("tokens_out", 0), f"{st['wall_s']:.1f}",
                     _resumed(st)])
    out += [_table(["stage", "type", "rows in", "rows out", "dropped (reason: rows)", "requests", "cache hits",
                    "tokens in", "tokens out", "time (s)", "resumed"], rows),
            "", "(`resumed`: shards this run found done and did not recompute; their counts and time are from "
            "the run that computed them)", ""]
    subjects, columns, counts, totals = subject_matrix(manifest)
    if subjects:
        out += ["## Rows per subject after each stage", "",
                "(`-`: the rows have no `subject` column at that point)", ""]
        cells = [[s, *("-" if c is None else c for c in row)] for s, row in zip(subjects, counts)]
        out += [_table(["subject", *columns], cells + [["**total**", *totals]]), ""]
    models = [[r, m["model"], f"`{m['revision']}`", m["dtype"] or "-", m["quantization"] or "-", m["backend"],
               f"`{m['digest']}`"] for r, m in manifest["models"].items()]
    if models:
        out += ["## Models", "", "(as resolved from what was loaded; `identity` keys the request cache)", "",
                _table(["role", "model", "revision", "dtype", "quantization", "backend", "identity"], models), ""]
    prompts = [[st["label"], p["slot"], p["name"], f"`{p['sha256'][:16]}`"] for st in manifest["stages"] for p in st["prompts"]]
    if prompts:
        out += ["## Prompts", "", _table(["stage", "slot", "template", "sha256"], prompts), ""]
    out += ["## Output shards", "",
            _table(["file", "rows", "bytes", "sha256"],
                   [[o["file"], o["rows"], o["bytes"], f"`{o['sha256']}`"] for o in manifest["outputs"]]),
            "", "![rows per stage per subject](report.png)", ""]
    return "\n".join(out)


def render_png(manifest: dict[str, Any]) -> bytes:
    import io

    from matplotlib.figure import Figure   # the object API: no pyplot, no GUI backend, thread-safe

    subjects, columns, counts, totals = subject_matrix(manifest)
    fig = Figure(figsize=(max(6.5, 0.9 * len(columns) + 2.5), 4.8), dpi=100)
    ax = fig.subplots()
    x = list(range(len(columns)))
    bottom = [0.0] * len(columns)
    colours = [f"C{i % 10}" for i in range(len(subjects))]
    for subject, row, colour in zip(subjects, counts, colours):     # stacked bars: one colour per subject
        heights = [0.0 if c is None else float(c) for c in row]
        ax.bar(x, heights, bottom=bottom, color=colour, label=subject, width=0.7)
        bottom = [b + h for b, h in zip(bottom, heights)]
    unlabelled = [t - b for t, b in zip(totals, bottom)]             # rows before subjects are assigned
    if any(u > 0 for u in unlabelled):
        ax.bar(x, unlabelled, bottom=bottom, color="lightgrey", label="(no subject yet)", width=0.7)
    for xi, total in zip(x, totals):
        ax.annotate(f"{total:,}", (xi, total), ha="center", va="bottom", fontsize="small")
    ax.set_xticks(x, columns, rotation=30, ha="right")
    ax.set_ylabel("rows")
    ax.set_title(f"{manifest['name']}: rows after each stage, by subject")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def write_report(manifest: dict[str, Any], root: str | Path) -> None:
    work = WorkDir(root)
    write_atomic(work.report_path, render_markdown(manifest).encode("utf-8"))
    write_atomic(work.report_png_path, render_png(manifest))
