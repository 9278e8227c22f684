"""Committing a release folder to git: the next commit of branch main of the repository at --dest, tagged. The
same folder gives the same commit (fixed author, committer and date), so any git-backed Hub mirror serves it."""
from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path
from typing import Mapping

from .arguments import ReleaseError
from .folder import RELEASE_JSON, swap_into

# the same folder gives the same commit: who and when are fixed (SOURCE_DATE_EPOCH overrides the date)
GIT_AUTHOR = ("megascience-build", "release@megascience.invalid")
GIT_DATE = "2025-07-22T00:00:00+00:00"   # the paper's date


def _git(repo: Path, *args: str, env: Mapping[str, str] | None = None, input: str | None = None) -> str:
    base = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    cmd = ["git", "-c", "commit.gpgsign=false", "-c", "tag.gpgsign=false", "-c", "core.hooksPath=/dev/null",
           "-c", "core.autocrlf=false", "-C", str(repo), *args]
    out = subprocess.run(cmd, env={**base, **(env or {})}, capture_output=True, text=True, input=input)
    if out.returncode != 0:
        raise ReleaseError(f"git {' '.join(args)} in {repo} failed: {out.stderr.strip()}")
    return out.stdout.strip()


def _git_date() -> str:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    return f"@{int(epoch)} +0000" if epoch and epoch.isdigit() else GIT_DATE


def git_commit(dest: Path, staged: Path, tag: str | None, message: str) -> str:
    """Commit the staged folder as the next commit of branch main of the repository at dest, tag it, and move
    the folder in. The tag is checked before anything in dest changes. Returns the commit sha."""
    dest.mkdir(parents=True, exist_ok=True)
    if not (dest / ".git").exists():
        _git(dest, "init", "-q", "-b", "main")
    head = subprocess.run(["git", "-C", str(dest), "rev-parse", "-q", "--verify", "refs/heads/main^{commit}"],
                          capture_output=True, text=True).stdout.strip() or None
    with tempfile.TemporaryDirectory() as tmp:
        index = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        _git(staged, f"--git-dir={dest / '.git'}", "--work-tree=.", "add", "-A", env=index)
        tree = _git(dest, "write-tree", env=index)
    if head and _git(dest, "rev-parse", f"{head}^{{tree}}") == tree:
        commit = head   # the same folder: the same commit, nothing new to record
    else:
        name, email = GIT_AUTHOR
        when = _git_date()
        env = {"GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email, "GIT_AUTHOR_DATE": when,
               "GIT_COMMITTER_NAME": name, "GIT_COMMITTER_EMAIL": email, "GIT_COMMITTER_DATE": when}
        commit = _git(dest, "commit-tree", tree, *(["-p", head] if head else []), env=env, input=message + "\n")
    if tag:
        existing = subprocess.run(["git", "-C", str(dest), "rev-parse", "-q", "--verify", f"refs/tags/{tag}^{{commit}}"],
                                  capture_output=True, text=True).stdout.strip()
        if existing and existing != commit:
            raise ReleaseError(f"tag {tag!r} already names commit {existing} in {dest}, not this release's {commit}; "
                               f"choose a new tag")
    swap_into(dest, staged)
    _git(dest, "update-ref", "refs/heads/main", commit)
    _git(dest, "symbolic-ref", "HEAD", "refs/heads/main")
    _git(dest, "read-tree", "HEAD")
    _git(dest, "update-index", "-q", "--refresh")
    if tag:
        _git(dest, "tag", "-f", tag, commit)   # lightweight: the tag resolves straight to the commit
    exclude = dest / ".git" / "info" / "exclude"
    exclude.parent.mkdir(parents=True, exist_ok=True)
    excluded = exclude.read_text().splitlines() if exclude.exists() else []
    if RELEASE_JSON not in excluded:   # the record of a commit's sha cannot be part of that commit
        with open(exclude, "a") as f:
            f.write(f"{RELEASE_JSON}\n")
    return commit
