"""Names and paths that come from users, lock files or manifests: validated before any file access."""
from __future__ import annotations

import os
import re
from pathlib import Path

from .errors import UsageError

CONFIG_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
FULL_SHA = re.compile(r"^[0-9a-f]{40}$")
# git ref names we accept: no "..", no leading "-" or "/", no control characters or spaces
REVISION = re.compile(r"^(?!.*\.\.)(?![-/.])[A-Za-z0-9._/-]{1,128}(?<![/.])$")
# one path component of a shard file name
FILE_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")


def check_config_name(name: object) -> str:
    if not isinstance(name, str) or not CONFIG_NAME.match(name):
        raise UsageError(f"invalid configuration name {name!r}: expected lower-case letters, digits and "
                         f"underscores, starting with a letter (regex {CONFIG_NAME.pattern})")
    return name


def check_revision(rev: object) -> str:
    if not isinstance(rev, str) or not REVISION.match(rev):
        raise UsageError(f"invalid revision {rev!r}: expected a branch, tag or full 40-hex commit sha "
                         f"(letters, digits, '.', '_', '-', '/'; no '..')")
    return rev


def check_sha(sha: object, what: str = "revision") -> str:
    if not isinstance(sha, str) or not FULL_SHA.match(sha):
        raise UsageError(f"invalid {what} {sha!r}: expected a full 40-hex commit sha")
    return sha


def check_relpath(path: object, what: str = "file") -> str:
    """A relative POSIX path inside a repository: components validated, no '..', no absolute paths."""
    if not isinstance(path, str) or not path or "\\" in path or path.startswith("/"):
        raise UsageError(f"unsafe {what} path {path!r}: expected a relative path inside the repository")
    parts = path.split("/")
    if not parts or any(not FILE_PART.match(p) for p in parts):
        raise UsageError(f"unsafe {what} path {path!r}: each component must match {FILE_PART.pattern}")
    return path


def contained(root: str | os.PathLike, relpath: str, what: str = "file") -> Path:
    """root/relpath, refusing anything whose resolved location is not inside root (symlinks included)."""
    check_relpath(relpath, what)
    base = Path(root).resolve()
    target = (base / relpath).resolve()
    if target != base and base not in target.parents:
        raise UsageError(f"unsafe {what} path {relpath!r}: resolves to {target}, outside {base}")
    return target
