"""From (configuration, revision, source, lock) to verified shard files at one full commit sha.

Steps: pick the location; resolve the revision to a full sha (online: the Hub API; offline: refs in our
store or in huggingface_hub's cache, never "the newest cached copy"); decide what every shard must be
(lock > manifest > Hub LFS sha256 / git blob id); then either use verified local copies, or download to
a staging directory, verify every shard of the configuration, and only then install them.
"""
from __future__ import annotations

import fnmatch
import logging
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from . import sources
from .catalogue import Catalogue, Entry, load_catalogue
from .errors import IntegrityError, RevisionError, UnavailableError, UsageError
from .integrity import Digest, Expected, check_digest, check_parquet, copy_and_hash, hash_file, needs_git_blob
from .lockfile import Lock, LockedConfig, LockedFile
from .manifest import parse_manifest
from .safety import FULL_SHA, check_config_name, check_revision, contained
from .sources import Location, RemoteFile
from .store import Store

log = logging.getLogger(__name__)
SAMPLE = "sample"


def sample_dir() -> Path:
    return Path(__file__).parent / "sample"


@dataclass
class Resolved:
    entry: Entry
    location: Location
    source_label: str
    revision: str              # what was asked for
    sha: str                   # full commit sha (or folder revision) it resolved to
    files: list[Expected]      # what every shard must be, in order
    data_files: list[str]      # local paths (verified) or URLs (streaming), same order
    local: bool
    rows: int | None = None
    pending: list = field(default_factory=list)   # (path, Expected) whose sha256 is still to be checked
    store: Store | None = None

    def finish_verification(self, progress: bool = False) -> None:
        """Hash the shards left pending (in parallel threads; hashlib releases the GIL) and check them."""
        if not self.pending:
            return
        from concurrent.futures import ThreadPoolExecutor
        total = sum(e.size or 0 for _, e in self.pending)
        with tqdm(total=total, unit="B", unit_scale=True, desc=f"verify {self.entry.name}", disable=not progress) as bar, \
                ThreadPoolExecutor(max_workers=min(4, len(self.pending))) as pool:
            digests = list(pool.map(lambda pe: hash_file(pe[0], bar.update if progress else None), self.pending))
        for (p, e), d in zip(self.pending, digests):
            check_digest(d, e, self.where())
            if self.store is not None:
                self.store.remember_local_digest(p, d.sha256)
        self.pending = []

    def where(self) -> str:
        return f"configuration {self.entry.name!r} at revision {self.revision!r} ({self.sha}) of {self.source_label}"

    def locked(self) -> LockedConfig:
        missing = [f.path for f in self.files if f.sha256 is None]
        if missing:
            raise IntegrityError(f"{self.where()}: no sha256 known for {missing}; download the data to lock it")
        return LockedConfig(source=self.source_label, revision=self.revision, sha=self.sha, rows=self.rows,
                            files=tuple(LockedFile(f.path, f.size, f.sha256) for f in self.files))


def _offline() -> bool:
    from huggingface_hub import constants
    return bool(constants.HF_HUB_OFFLINE)


def pick_location(entry: Entry, catalogue: Catalogue, source: str | None, sample: bool) -> tuple[Location, str, str]:
    """(location, source label, default revision) for a configuration."""
    release_files = catalogue.release.files.format(config=entry.name)
    if sample:
        return Location("path", str(sample_dir()), release_files), "sample:megascience-datasets", SAMPLE
    if source is not None:
        loc = sources.location_for(source, release_files)
        return loc, loc.label, "main"
    if entry.source.kind == "upstream":
        loc = Location("hub", entry.source.repo, entry.source.files)
        return loc, loc.label, entry.source.revision or entry.source.resolve
    repo = catalogue.release.current_repo()
    if not repo:
        raise UsageError(f"configuration {entry.name!r} comes from the project's release repository, which is not "
                         f"set: export {catalogue.release.repo_env}=<Hub repo id | folder | fsspec URL> or pass source=")
    loc = sources.location_for(repo, release_files)
    return loc, loc.label, catalogue.release.current_revision()


def resolve(name: str, revision: str | None = None, *, source: str | None = None, lock: Lock | None = None,
            streaming: bool = False, cache_dir=None, sample: bool = False, verify: bool = False,
            catalogue: Catalogue | None = None, progress: bool = True, defer_hashing: bool = False) -> Resolved:
    catalogue = catalogue or load_catalogue()
    check_config_name(name)
    entry = catalogue[name]
    if revision is not None:
        check_revision(revision)
    if revision == SAMPLE:
        sample, revision = True, None
    if sample and revision is not None:
        raise RevisionError(f"the embedded sample has one revision, {SAMPLE!r}; got revision {revision!r}")
    locked = lock.configs.get(name) if lock is not None else None
    if lock is not None and locked is None:
        raise UsageError(f"the lock file has no entry for configuration {name!r} (it locks {sorted(lock.configs)}); "
                         f"refusing to load unlocked data")
    loc, label, default_rev = pick_location(entry, catalogue, source, sample)
    if locked is not None and locked.source != label:
        raise IntegrityError(f"configuration {name!r}: the lock pins source {locked.source}, but this load reads "
                             f"{label}; refusing other data")
    requested = revision if revision is not None else (locked.sha if locked else default_rev)
    store = Store(_store_root(cache_dir))
    if loc.kind == "hub":
        res = _resolve_hub(entry, loc, label, requested, locked, store, streaming, verify, progress)
    else:
        res = _resolve_path(entry, loc, label, requested, locked, store, streaming, verify, sample)
    _check_locked_sha(name, locked, requested, res.sha)
    if entry.source.kind == "upstream" and entry.source.revision == res.sha and entry.rows is not None \
            and res.rows is not None and res.rows != entry.rows:
        raise IntegrityError(f"{res.where()}: {res.rows} rows, the catalogue expects {entry.rows}")
    if not defer_hashing:
        res.finish_verification(progress)
    return res


def _check_locked_sha(name, locked, requested, sha) -> None:
    if locked is not None and sha != locked.sha:
        raise IntegrityError(f"configuration {name!r}: revision {requested!r} is commit {sha}, but the lock pins "
                             f"commit {locked.sha} (revision {locked.revision!r}); refusing other data")


def _store_root(cache_dir):
    from .store import default_root
    return default_root(cache_dir)


# ------------------------------------------------------------------------------------------ expectations

def _expectations(res_where: str, listing: list[RemoteFile], locked: LockedConfig | None, manifest: dict | None,
                  name: str) -> list[Expected]:
    """What each shard must be, from the strongest witness available; the file sets must agree."""
    listed = {f.path: f for f in listing}
    if locked is not None:
        exp = [Expected(f.path, f.size, f.sha256, origin="lock") for f in locked.files]
    elif manifest is not None and name in manifest["configs"]:
        exp = [Expected(s["path"], s["bytes"], s["sha256"], rows=s["rows"], origin="manifest.json")
               for s in manifest["configs"][name]["shards"]]
    elif manifest is not None:
        raise IntegrityError(f"{res_where}: manifest.json has no entry for this configuration "
                             f"(it lists {sorted(manifest['configs'])})")
    else:
        exp = [Expected(f.path, f.size, f.sha256, f.git_oid, origin="hub-lfs" if f.sha256 else "git-blob")
               for f in listing]
    if not exp:
        raise IntegrityError(f"{res_where}: no data files found")
    missing = [e.path for e in exp if e.path not in listed]
    if missing:
        raise IntegrityError(f"{res_where}: missing file(s) {missing} (expected per {exp[0].origin})")
    extra = sorted(set(listed) - {e.path for e in exp})
    if extra:
        raise IntegrityError(f"{res_where}: unexpected file(s) {extra}: not in the {exp[0].origin}")
    for e in exp:
        got = listed[e.path]
        if e.size is not None and got.size != e.size:
            kind = "truncated" if got.size < e.size else "too long"
            raise IntegrityError(f"{res_where}: shard {e.path} is {kind}: {got.size} bytes at the source, expected "
                                 f"{e.size} (per {e.origin})")
        if e.sha256 and got.sha256 and got.sha256 != e.sha256:
            raise IntegrityError(f"{res_where}: shard {e.path} has sha256 {got.sha256} at the source (Hub LFS), "
                                 f"expected {e.sha256} (per {e.origin})")
    return exp


def _manifest(text: str | None, origin: str) -> dict | None:
    return parse_manifest(text, origin) if text is not None else None


# ------------------------------------------------------------------------------------------ hub

def _resolve_hub(entry, loc, label, requested, locked, store: Store, streaming, verify, progress) -> Resolved:
    check_revision(requested)
    if _offline():
        sha = requested if FULL_SHA.match(requested) else (store.ref(loc, requested) or sources.hub_cache_ref(loc, requested))
        if sha is None:
            cached = store.cached_shas(loc)
            raise UnavailableError(f"HF_HUB_OFFLINE is set and revision {requested!r} of {loc.target!r} was never "
                                   f"resolved on this machine; cached commits: {cached or 'none'}. Load it once online.")
    else:
        sha = sources.hub_resolve(loc, requested)
        store.record_ref(loc, requested, sha)
    _check_locked_sha(entry.name, locked, requested, sha)
    where = f"configuration {entry.name!r} at revision {requested!r} ({sha}) of {label}"
    cached = _cached(entry, loc, sha, locked, store, verify, where)
    if cached is not None:
        exp, paths, rows = cached
        return Resolved(entry, loc, label, requested, sha, exp, [str(p) for p in paths], True, rows)
    if _offline():
        snap = _hub_cache_snapshot(entry, loc, sha, locked, store, verify, where)
        if snap is not None:
            exp, paths, rows, pending = snap
            return Resolved(entry, loc, label, requested, sha, exp, paths, True, rows, pending, store)
        others = [s for s in store.cached_shas(loc) if s != sha]
        raise UnavailableError(f"HF_HUB_OFFLINE is set and {where} is not in the local store "
                               f"({store.root}); cached commits of this repository: {others or 'none'}. "
                               f"Refusing to serve another revision: load it once online.")
    manifest = _manifest(sources.hub_read_text(loc, sha, sources.MANIFEST), f"{label}@{sha}/manifest.json")
    exp = _expectations(where, sources.hub_list(loc, sha), locked, manifest, entry.name)
    if streaming:
        return Resolved(entry, loc, label, requested, sha, exp, [loc.url(sha, e.path) for e in exp], False,
                        sum(e.rows for e in exp) if all(e.rows is not None for e in exp) else None)
    exp, paths, rows = _download(entry, loc, sha, exp, store, where, progress)
    return Resolved(entry, loc, label, requested, sha, exp, [str(p) for p in paths], True, rows)


def _cached(entry, loc, sha, locked, store: Store, verify, where):
    """Verified local copies of every shard of this configuration at sha, or None."""
    rec = store.record(loc, sha)
    if locked is not None:
        wanted = [(f.path, f.size, f.sha256) for f in locked.files]
    else:
        wanted = [(p, r["size"], r["sha256"]) for p, r in sorted(rec.items()) if fnmatch.fnmatchcase(p, loc.files)]
    if not wanted:
        return None
    paths = []
    for path, size, digest in wanted:
        p = store.cached_file(loc, sha, path, size, digest)
        if p is None:
            return None
        if verify:
            check_digest(hash_file(p), Expected(path, size, digest, origin="local store record"), where)
        paths.append(p)
    exp = [Expected(path, size, digest, rows=rec[path].get("rows"), origin="local store") for path, size, digest in wanted]
    rows = sum(rec[path].get("rows", 0) for path, _, _ in wanted)
    return exp, paths, rows


def _download(entry, loc, sha, exp: list[Expected], store: Store, where, progress):
    import fsspec
    schema = entry.arrow_schema()
    total = sum(e.size or 0 for e in exp)
    staged, rows_total, final = {}, 0, []
    with store.staging() as tmp, tqdm(total=total, unit="B", unit_scale=True, desc=f"download {entry.name}",
                                      disable=not progress) as bar:
        for i, e in enumerate(exp):
            target = tmp / f"{i:05d}.parquet"
            try:
                with fsspec.open(loc.url(sha, e.path), "rb") as src, open(target, "wb") as dst:
                    digest = copy_and_hash(src, dst, e.size, bar.update, git_blob=needs_git_blob(e))
            except FileNotFoundError:
                raise IntegrityError(f"{where}: missing file {e.path}") from None
            except OSError as err:
                raise UnavailableError(f"{where}: cannot download {e.path}: {err}") from None
            check_digest(digest, e, where)
            rows = check_parquet(target, schema, e, where)
            rows_total += rows
            staged[e.path] = (target, digest.size, digest.sha256, rows)
            final.append(Expected(e.path, digest.size, digest.sha256, rows=rows, origin=e.origin))
        installed = store.install(loc, sha, staged)
    return final, [installed[e.path] for e in final], rows_total


# ------------------------------------------------------------------------------------------ folders / fsspec

def _resolve_path(entry, loc, label, requested, locked, store: Store, streaming, verify, sample) -> Resolved:
    manifest = _manifest(sources.path_read_text(loc, sources.MANIFEST), f"{loc.target}/manifest.json")
    sha = sources.path_revision(loc, manifest)
    _check_locked_sha(entry.name, locked, requested, sha)
    if not sample and requested not in (sha, "main"):
        tag = (manifest or {}).get("revision", {}).get("tag")
        if requested != tag:
            raise RevisionError(f"asked for revision {requested!r} of {label}, but that folder holds revision {sha}"
                                f"{f' (tag {tag!r})' if tag else ''}; a folder has exactly one revision")
    _check_locked_sha(entry.name, locked, requested, sha)
    where = f"configuration {entry.name!r} at revision {requested!r} ({sha}) of {label}"
    listing = sources.path_list(loc)
    if manifest is None and locked is None:
        if not loc.is_local():
            raise IntegrityError(f"{where}: no manifest.json and no lock: nothing vouches for the shards")
        log.warning("%s: no manifest.json; shards are checked for schema only", where)
        exp = [Expected(f.path, f.size, None, origin="folder listing") for f in listing]
        if not exp:
            raise IntegrityError(f"{where}: no data files match {loc.files}")
    else:
        exp = _expectations(where, listing, locked, manifest, entry.name)
    if not loc.is_local():
        if streaming:
            return Resolved(entry, loc, label, requested, sha, exp, [loc.url(sha, e.path) for e in exp], False)
        cached = _cached(entry, loc, sha, locked, store, verify, where)
        if cached is not None:
            e2, paths, rows = cached
            return Resolved(entry, loc, label, requested, sha, e2, [str(p) for p in paths], True, rows)
        e2, paths, rows = _download(entry, loc, sha, exp, store, where, progress=True)
        return Resolved(entry, loc, label, requested, sha, e2, [str(p) for p in paths], True, rows)
    final, paths, rows_total, pending = _verify_local(entry, Path(loc.target), Path(loc.target), exp, store, verify,
                                                      where)
    return Resolved(entry, loc, label, requested, sha, final, paths, True, rows_total, pending, store)


def _verify_local(entry, root: Path, boundary: Path, exp: list[Expected], store: Store, verify: bool, where: str):
    """Check shards that are already on this machine: containment, size, footer, schema and rows now; the
    sha256 of files not verified before (remembered per path, size, mtime and inode) is left in `pending`
    for Resolved.finish_verification, so a non-streaming load can hash while it prepares."""
    schema = entry.arrow_schema()
    final, paths, pending, rows_total = [], [], [], 0
    for e in exp:
        contained(boundary, (root / e.path).relative_to(boundary).as_posix())
        p = root / e.path
        if not p.is_file():
            raise IntegrityError(f"{where}: missing file {e.path}")
        p = p.resolve()
        size = p.stat().st_size
        if e.size is not None and size != e.size:
            check_digest(Digest(size, "", None), e, where)
        if e.sha256 is not None:
            known = None if verify else store.local_digest(p)
            if known is None:
                pending.append((p, e))
            elif known != e.sha256:
                raise IntegrityError(f"{where}: shard {e.path} has sha256 {known}, expected {e.sha256} (per {e.origin})")
        rows = check_parquet(p, schema, e, where)
        rows_total += rows
        final.append(Expected(e.path, size, e.sha256, rows=rows, origin=e.origin))
        paths.append(str(p))
    return final, paths, rows_total, pending


def _hub_cache_snapshot(entry, loc: Location, sha: str, locked, store: Store, verify: bool, where: str):
    """Offline: huggingface_hub's own snapshot of loc at sha (e.g. from snapshot_download), checked against
    the lock or the snapshot's manifest.json. None when there is no such snapshot."""
    from huggingface_hub import constants
    repo_dir = Path(constants.HF_HUB_CACHE) / ("datasets--" + loc.target.replace("/", "--"))
    snap = repo_dir / "snapshots" / sha
    if not snap.is_dir():
        return None
    listing = [RemoteFile(p.relative_to(snap).as_posix(), p.stat().st_size) for p in sorted(snap.glob(loc.files))
               if p.is_file()]
    mtext = (snap / sources.MANIFEST).read_text(encoding="utf-8") if (snap / sources.MANIFEST).is_file() else None
    manifest = _manifest(mtext, f"{snap}/manifest.json")
    wanted = ([f.path for f in locked.files] if locked is not None else
              [s["path"] for s in manifest["configs"].get(entry.name, {}).get("shards", [])] if manifest else
              [f.path for f in listing])
    have = {f.path for f in listing}
    if not wanted or any(p not in have for p in wanted):
        return None   # huggingface_hub's cache does not hold this configuration's shards at sha
    if locked is None and manifest is None:
        raise IntegrityError(f"{where}: huggingface_hub's cache holds snapshot {snap}, but offline nothing vouches "
                             f"for its shards (no lock, no manifest.json); pass lock= or load once online")
    exp = _expectations(where, listing, locked, manifest, entry.name)
    return _verify_local(entry, snap, repo_dir, exp, store, verify, where)
