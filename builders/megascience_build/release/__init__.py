"""`megascience-build release`: finished pipeline work directories -> the dataset repository folder, optionally
committed to git (any git-backed Hub mirror, e.g. olah, serves it) and/or published to a Hub repository with a
tag through huggingface_hub.

Which work directory gives which configuration is declared once, by the `build:` key of each entry of
megascience_datasets/catalogue.yaml (pipeline, stage, membership column or stored signals). The folder's files
depend only on the work directories' data and the release's tag: a replay from the request cache gives the
same shards byte for byte, and the same folder gives the same git commit.

    arguments.py         ReleaseOptions, release.yaml, ReleaseError
    catalogue_builds.py  the catalogue's configuration -> pipeline stage mapping
    configurations.py    reading each configuration from its work directory (rows and manifest fields)
    mixture_configs.py   selection subsets and stored signals, the `source` column, upstream revisions
    folder.py            writing the folder and moving it into --dest
    git_repo.py          the git commit and tag
    hub_publish.py       the Hub commit and tag
"""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from .arguments import TAG_RE, ReleaseError, ReleaseOptions, load_release_file, parse_work
from .catalogue_builds import builder_of, layout
from .configurations import assemble_release
from .folder import RELEASE_JSON, check_dest, swap_into, write_release_folder
from .git_repo import git_commit
from .hub_publish import hub_token, publish

__all__ = ["RELEASE_JSON", "ReleaseError", "ReleaseOptions", "assemble_release", "builder_of", "check_options",
           "git_commit", "layout", "load_release_file", "parse_work", "publish", "release", "write_release_folder"]


def check_options(opts: ReleaseOptions) -> None:
    if not opts.works:
        raise ReleaseError("no work directories: give --work NAME=WORKDIR (repeatable) or --from-config FILE")
    for name in opts.works:
        layout(name)
    if opts.tag is not None and not TAG_RE.match(opts.tag):
        raise ReleaseError(f"--tag {opts.tag!r}: expected letters, digits, '.', '_' or '-' (e.g. v1.0)")
    if opts.publish:
        if not opts.tag:
            raise ReleaseError("--publish needs --tag: the published commit is tagged so that it can be cited")
        if opts.publish.count("/") != 1 or not all(opts.publish.split("/")):
            raise ReleaseError(f"--publish {opts.publish!r}: expected a Hub repo id ORG/NAME")
        hub_token(opts.token_env)
    elif opts.endpoint or opts.token_env:
        raise ReleaseError("--endpoint and --token-env only apply with --publish REPO_ID")


def release(opts: ReleaseOptions) -> dict:
    """Assemble, optionally commit and publish; return the RELEASE.json record."""
    check_options(opts)
    opts.dest = Path(opts.dest).resolve()
    check_dest(opts)
    message = opts.message or f"MegaScience release {opts.tag or '(untagged)'}"
    opts.dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{opts.dest.name}-release-", dir=opts.dest.parent))
    try:
        staged = tmp / "folder"
        manifest = write_release_folder(opts, staged)
        record: dict[str, Any] = {"tag": opts.tag, "message": message, "default": manifest["default"],
                                  "configs": {n: {"rows": c["rows"], "shards": len(c["shards"])}
                                              for n, c in manifest["configs"].items()}}
        if opts.git:
            record["git"] = {"path": str(opts.dest), "branch": "main",
                             "sha": git_commit(opts.dest, staged, opts.tag, message)}
        else:
            swap_into(opts.dest, staged)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if opts.publish:
        sha = publish(opts.dest, opts.publish, endpoint=opts.endpoint, token=hub_token(opts.token_env),
                      tag=opts.tag, message=message)
        record["hub"] = {"repo": opts.publish, "endpoint": opts.endpoint or "https://huggingface.co", "sha": sha}
    record["sha"] = (record.get("hub") or record.get("git") or {}).get("sha")
    (opts.dest / RELEASE_JSON).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return record
