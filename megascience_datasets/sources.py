"""Where a configuration's shards live, and how a revision name becomes a full commit sha.

Two kinds of location:
  hub   a Hub dataset repository (HF_ENDPOINT is honoured): revisions are git refs resolved through
        the Hub API (`HfApi.dataset_info`); files are listed with their LFS sha256 or git blob id.
  path  a dataset repository folder on the local disk or any fsspec URL: its "revision" is the sha the
        folder's manifest.json records, else a fingerprint (sha1 over every shard's path, size and sha256
        in the manifest, or path and size without one); a requested revision must equal it.
"""
from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from .errors import RevisionError, UnavailableError, UsageError
from .safety import FULL_SHA, check_relpath, check_revision

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class RemoteFile:
    path: str                   # relative to the repository root
    size: int
    sha256: str | None = None   # LFS sha256 when the Hub knows it
    git_oid: str | None = None  # git blob id (sha1 of "blob <size>\0" + content) for non-LFS files


@dataclass(frozen=True)
class Location:
    kind: str      # "hub" or "path"
    target: str    # repo id, or an absolute local path / fsspec URL
    files: str     # glob relative to the repository root

    @property
    def label(self) -> str:
        return f"{self.kind}:{self.target}"

    @property
    def key(self) -> str:
        """A directory name for this location in the local store (never derived from user text unescaped)."""
        if self.kind == "hub":
            return "hub--" + self.target.replace("/", "--")
        return "path--" + hashlib.sha1(self.target.encode()).hexdigest()[:16]

    def url(self, sha: str, relpath: str) -> str:
        check_relpath(relpath)
        if self.kind == "hub":
            return f"hf://datasets/{self.target}@{sha}/{relpath}"
        return self.target.rstrip("/") + "/" + relpath

    def is_local(self) -> bool:
        return self.kind == "path" and "://" not in self.target


def location_for(spec: str, files: str) -> Location:
    """A user's `source=` string: an existing local folder, an fsspec URL, or a Hub repo id 'org/name'."""
    if not isinstance(spec, str) or not spec:
        raise UsageError(f"invalid source {spec!r}: expected a Hub repo id, a local folder or an fsspec URL")
    if spec.startswith("hf://datasets/"):
        spec = spec[len("hf://datasets/"):].rstrip("/")
    elif "://" in spec:
        return Location("path", spec.rstrip("/"), files)
    if os.path.isdir(spec) or spec.startswith((".", "/", "~")):
        p = Path(spec).expanduser().resolve()
        if not p.is_dir():
            raise UsageError(f"source folder {spec!r} does not exist")
        return Location("path", str(p), files)
    if spec.count("/") == 1 and all(part and part not in (".", "..") for part in spec.split("/")) \
            and all(c.isalnum() or c in "-_./" for c in spec):
        return Location("hub", spec, files)
    raise UsageError(f"source {spec!r} is neither an existing folder, an fsspec URL nor a Hub repo id 'org/name'")


# ----------------------------------------------------------------------------------------------- hub

def _hub_api():
    from huggingface_hub import HfApi
    return HfApi()


def _offline() -> bool:
    from huggingface_hub import constants
    return bool(constants.HF_HUB_OFFLINE)


def _hub_call(fn, loc: Location, revision: str | None):
    """Run a Hub API call, turning the library's exceptions into ours (each naming repo and revision)."""
    from huggingface_hub import errors as hf_errors
    try:
        return fn()
    except hf_errors.RevisionNotFoundError:
        raise RevisionError(f"revision {revision!r} does not exist in dataset repository {loc.target!r}") from None
    except hf_errors.EntryNotFoundError:
        raise  # a missing file: the caller decides
    except (hf_errors.RepositoryNotFoundError, hf_errors.HfHubHTTPError) as e:
        # olah (and the Hub for private repos) answers 401/404 RepoNotFound, or an error status, for an
        # unknown revision: ask for the default branch to tell a missing revision from a missing repository.
        if revision is not None and revision != "main" and _default_branch_answers(loc):
            raise RevisionError(f"revision {revision!r} does not exist in dataset repository "
                                f"{loc.target!r} (the repository answers for its default branch)") from None
        if isinstance(e, hf_errors.RepositoryNotFoundError):
            raise UsageError(f"dataset repository {loc.target!r} not found on {_endpoint()}: {e}") from None
        raise UnavailableError(f"the Hub at {_endpoint()} failed for {loc.target!r} revision {revision!r}: {e}") from None
    except hf_errors.OfflineModeIsEnabled:
        raise UnavailableError(f"HF_HUB_OFFLINE is set: cannot reach {loc.target!r}") from None
    except (OSError, ConnectionError) as e:
        raise UnavailableError(f"cannot reach the Hub at {_endpoint()} for {loc.target!r}: {e}") from None
    except Exception as e:  # httpx transport errors have no common base with OSError
        if type(e).__module__.split(".")[0] in ("httpx", "httpx2", "httpcore"):
            raise UnavailableError(f"cannot reach the Hub at {_endpoint()} for {loc.target!r}: {e}") from None
        raise


def _default_branch_answers(loc: Location) -> bool:
    import time
    for attempt in range(3):  # the server may have closed the kept-alive connection after its error reply
        try:
            _hub_api().dataset_info(loc.target, revision="main")
            return True
        except Exception as e:
            if not isinstance(e, OSError) and type(e).__module__.split(".")[0] not in ("httpx", "httpx2", "httpcore"):
                return False
            time.sleep(0.2 * (attempt + 1))
    return False


def _endpoint() -> str:
    from huggingface_hub import constants
    return constants.ENDPOINT


def hub_resolve(loc: Location, revision: str) -> str:
    check_revision(revision)
    info = _hub_call(lambda: _hub_api().dataset_info(loc.target, revision=revision), loc, revision)
    sha = getattr(info, "sha", None)
    if not isinstance(sha, str) or not FULL_SHA.match(sha):
        raise RevisionError(f"the Hub returned no full commit sha for {loc.target!r} revision {revision!r} (got {sha!r})")
    if FULL_SHA.match(revision) and sha != revision:
        raise RevisionError(f"asked for commit {revision} of {loc.target!r} but the Hub answered with commit {sha}")
    return sha


def hub_list(loc: Location, sha: str) -> list[RemoteFile]:
    from huggingface_hub.hf_api import RepoFile
    prefix = loc.files.split("*")[0].rsplit("/", 1)[0] if "/" in loc.files.split("*")[0] else None
    entries = _hub_call(lambda: list(_hub_api().list_repo_tree(loc.target, path_in_repo=prefix, recursive=True,
                                                               revision=sha, repo_type="dataset")), loc, sha)
    out = []
    for e in entries:
        if isinstance(e, RepoFile) and fnmatch.fnmatchcase(e.path, loc.files):
            lfs = getattr(e, "lfs", None)
            out.append(RemoteFile(path=e.path, size=int(e.size), sha256=getattr(lfs, "sha256", None) if lfs else None,
                                  git_oid=None if lfs else getattr(e, "blob_id", None)))
    return sorted(out, key=lambda f: f.path)


def hub_read_text(loc: Location, sha: str, relpath: str) -> str | None:
    """A small file of the repository at `sha` (e.g. manifest.json), or None if the commit has none."""
    from huggingface_hub import errors as hf_errors
    from huggingface_hub import hf_hub_download
    try:
        p = _hub_call(lambda: hf_hub_download(loc.target, relpath, repo_type="dataset", revision=sha), loc, sha)
    except UsageError:
        return None
    except RevisionError:
        raise
    except hf_errors.EntryNotFoundError:
        return None
    return Path(p).read_text(encoding="utf-8")


def hub_cache_ref(loc: Location, revision: str) -> str | None:
    """The sha that huggingface_hub's own cache maps `revision` to (refs/<revision>), if any."""
    from huggingface_hub import constants
    ref = Path(constants.HF_HUB_CACHE) / ("datasets--" + loc.target.replace("/", "--")) / "refs" / revision
    try:
        sha = ref.read_text().strip()
    except OSError:
        return None
    return sha if FULL_SHA.match(sha) else None


# ---------------------------------------------------------------------------------------------- path

def _fs(loc: Location):
    import fsspec
    fs, root = fsspec.core.url_to_fs(loc.target)
    return fs, root.rstrip("/")


def path_list(loc: Location) -> list[RemoteFile]:
    fs, root = _fs(loc)
    pattern = f"{root}/{loc.files}"
    out = []
    for p in sorted(fs.glob(pattern)):
        rel = p[len(root) + 1:] if p.startswith(root + "/") else p
        check_relpath(rel)
        out.append(RemoteFile(path=rel, size=int(fs.size(p))))
    return out


def path_read_text(loc: Location, relpath: str) -> str | None:
    fs, root = _fs(loc)
    check_relpath(relpath)
    try:
        with fs.open(f"{root}/{relpath}", "rb") as f:
            return f.read().decode("utf-8")
    except FileNotFoundError:
        return None


def path_revision(loc: Location, manifest: dict | None) -> str:
    """The folder's own revision: the sha its manifest records, else a content fingerprint."""
    if manifest:
        rev = (manifest.get("revision") or {}).get("sha")
        if isinstance(rev, str) and FULL_SHA.match(rev):
            return rev
        shards = sorted((s["path"], s["bytes"], s["sha256"]) for c in manifest.get("configs", {}).values()
                        for s in c.get("shards", []))
        return hashlib.sha1(json.dumps(shards).encode()).hexdigest()
    files = [(f.path, f.size) for f in path_list(Location(loc.kind, loc.target, "data/**/*.parquet"))]
    return hashlib.sha1(json.dumps(files).encode()).hexdigest()


def quote_ref(revision: str) -> str:
    return urllib.parse.quote(check_revision(revision), safe="")
