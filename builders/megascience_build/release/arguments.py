"""What a release is asked to do: the options of `megascience-build release`, its release.yaml file, and the
error every release step raises."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

TAG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class ReleaseError(Exception):
    """A release that cannot be made as asked; the message names the work directory/configuration/file."""


@dataclass
class ReleaseOptions:
    works: dict[str, Path]
    dest: Path
    configs: list[str] | None = None      # None: every configuration the work directories give
    complete: bool = False                # every catalogue configuration must be present
    default: str | None = None
    tag: str | None = None
    message: str | None = None
    overwrite: bool = False
    git: bool = False
    publish: str | None = None            # Hub repo id
    endpoint: str | None = None
    token_env: str | None = None
    # family cards to publish; None: the installed package renders them (dataset_cards/ in the repository is
    # the same rendering, checked by tests/loader), so a release works from a wheel, with no checkout
    cards_dir: Path | None = None


def parse_work(text: str) -> tuple[str, Path]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise ReleaseError(f"--work expects NAME=WORKDIR, got {text!r}")
    return name, Path(path)


def load_release_file(path: str | Path) -> dict[str, Any]:
    """release.yaml: works {name: dir} (relative to the file), and optionally dest, configs, complete, default,
    tag, message, git, publish {repo, endpoint, token_env}."""
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ReleaseError(f"{path}: cannot read ({e.strerror or e})") from None
    except yaml.YAMLError as e:
        raise ReleaseError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(doc, dict):
        raise ReleaseError(f"{path}: expected a mapping at the top level")
    known = {"works", "dest", "configs", "complete", "default", "tag", "message", "git", "publish"}
    unknown = sorted(set(doc) - known)
    if unknown:
        raise ReleaseError(f"{path}: unknown key(s) {unknown}; expected some of {sorted(known)}")
    works = doc.get("works")
    if not isinstance(works, dict) or not works:
        raise ReleaseError(f"{path}: `works` must map pipeline names to work directories")
    out: dict[str, Any] = {k: doc[k] for k in doc if k not in ("works", "dest", "publish")}
    out["works"] = {str(k): (path.parent / str(v)).resolve() for k, v in works.items()}
    if doc.get("dest") is not None:
        out["dest"] = (path.parent / str(doc["dest"])).resolve()
    pub = doc.get("publish")
    if pub is not None:
        if not isinstance(pub, dict) or not pub.get("repo"):
            raise ReleaseError(f"{path}: `publish` must be a mapping with `repo` (and optional endpoint, token_env)")
        out.update(publish=str(pub["repo"]), endpoint=pub.get("endpoint"), token_env=pub.get("token_env"))
    if "configs" in out and not (isinstance(out["configs"], list) and all(isinstance(c, str) for c in out["configs"])):
        raise ReleaseError(f"{path}: `configs` must be a list of configuration names")
    return out
