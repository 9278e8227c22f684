"""The release folder: the dataset repository folder written from the assembled configurations (README, data,
manifest, family cards), and moving it into --dest."""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Sequence

from megascience_datasets.cards import render_family_card

from .arguments import ReleaseError, ReleaseOptions
from .configurations import assemble_release

RELEASE_JSON = "RELEASE.json"


def family_cards(cards_dir: Path, groups: Sequence[str]) -> dict[str, str]:
    """{group: the family's prose paragraph} from dataset_cards/<group>.md (the paragraph under its heading)."""
    from megascience_datasets.cards import FAMILIES

    out = {}
    for g in groups:
        path = cards_dir / f"{g}.md"
        try:
            text = path.read_text(encoding="utf-8")
        except OSError:
            raise ReleaseError(f"dataset card {path} is missing (one per configuration family)") from None
        heading = f"## {FAMILIES[g][0]}\n\n"
        at = text.find(heading)
        if at < 0:
            raise ReleaseError(f"{path}: no section {heading.strip()!r}")
        out[g] = text[at + len(heading):].split("\n\n", 1)[0].strip()
    return out


def write_release_folder(opts: ReleaseOptions, staging: Path) -> dict:
    """Write the folder into `staging` (a new directory); return its manifest."""
    from megascience_datasets.catalogue import load_catalogue
    from megascience_datasets.errors import MegascienceError
    from megascience_datasets.repo_folder import write_repo_folder

    tables, extra, sources = assemble_release(opts.works, opts.configs, opts.complete)
    cat = load_catalogue()
    groups = sorted({cat[c].group for c in tables})
    default = opts.default or next((c for c in ("textbook", "megascience") if c in tables), None)
    if default is not None and default not in tables:
        raise ReleaseError(f"default configuration {default!r} is not among the released ones {list(tables)}")
    revision: dict[str, Any] = {"tag": opts.tag, "sha": None, "sources": sources}
    if opts.publish:
        revision["repo"] = opts.publish
        revision["url"] = f"{(opts.endpoint or 'https://huggingface.co').rstrip('/')}/datasets/{opts.publish}"
    try:
        manifest = write_repo_folder(staging, tables, revision=revision, extra=extra, default=default,
                                     cards=family_cards(opts.cards_dir, groups) if opts.cards_dir else None)
    except MegascienceError as exc:   # e.g. a configuration with no rows, or a column of the wrong type
        raise ReleaseError(str(exc)) from None
    (staging / "cards").mkdir()
    for g in groups:
        if opts.cards_dir:
            shutil.copyfile(opts.cards_dir / f"{g}.md", staging / "cards" / f"{g}.md")
        else:
            (staging / "cards" / f"{g}.md").write_text(render_family_card(g), encoding="utf-8")
    return manifest


def swap_into(dest: Path, staged: Path) -> None:
    """Replace everything in dest but .git (and a previous RELEASE.json) with the staged folder's content."""
    dest.mkdir(parents=True, exist_ok=True)
    for p in dest.iterdir():
        if p.name not in (".git",):
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
    for p in staged.iterdir():
        os.replace(p, dest / p.name)


def check_dest(opts: ReleaseOptions) -> None:
    d = opts.dest
    if d.exists() and not d.is_dir():
        raise ReleaseError(f"--dest {d} exists and is not a directory")
    content = [p.name for p in d.iterdir() if p.name != ".git"] if d.is_dir() else []
    if content and not opts.overwrite:
        raise ReleaseError(f"--dest {d} is not empty ({', '.join(sorted(content)[:5])}); pass --overwrite to "
                           f"replace its content (a .git directory is kept)")
    if (d / ".git").exists() and not opts.git:
        raise ReleaseError(f"--dest {d} is a git repository; pass --git to commit the new release to it")
