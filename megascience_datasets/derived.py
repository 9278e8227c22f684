"""Loading a derived configuration: find out whether a release holds it, else derive it from its parent.

Order (load_dataset, resolve_config, the CLI):
1. a lock entry with a `derivation` record: derive from the locked parent shards and refuse any other rows;
2. the release (source= or $MEGASCIENCE_RELEASE) holds the configuration: load it like any other;
3. the catalogue rule can be computed from the parent alone (derive.LOCAL_RULES): derive it here;
4. otherwise an error that names each missing input: the release, the signals, the parent revision.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from . import derive, sources
from .catalogue import Catalogue, Entry, load_catalogue
from .errors import IntegrityError, MegascienceError, RevisionError, UnavailableError, UsageError
from .lockfile import Lock, LockedConfig
from .manifest import parse_manifest


class MissingInputError(UsageError):
    """A configuration that no release holds and that cannot be derived here; the message names the inputs."""


@dataclass
class DerivedResolved:
    entry: Entry
    plan: derive.Plan
    parent: object               # resolve.Resolved of the parent

    @property
    def sha(self) -> str:
        return self.parent.sha

    @property
    def source_label(self) -> str:
        return self.parent.source_label

    @property
    def revision(self) -> str:
        return self.parent.revision

    @property
    def location(self):
        return self.parent.location

    @property
    def files(self):
        return self.parent.files

    @property
    def rows(self) -> int:
        return self.plan.rows

    @property
    def data_files(self) -> list[str]:
        return self.plan.files

    def where(self) -> str:
        return (f"configuration {self.entry.name!r} derived ({self.plan.rule}) from {self.plan.parent!r} at "
                f"{self.sha} of {self.source_label}")

    def finish_verification(self, progress: bool = False) -> None:
        self.parent.finish_verification(progress)

    def locked(self) -> LockedConfig:
        p = self.parent.locked()
        return LockedConfig(source=p.source, revision=p.revision, sha=p.sha, files=p.files, rows=self.plan.rows,
                            derivation=self.plan.record())

    def materialize(self, folder: str | os.PathLike) -> list[Path]:
        """Write the derived rows to one parquet file under folder (for `megascience download`)."""
        import pyarrow.parquet as pq
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{self.entry.name}.parquet"
        schema = self.entry.arrow_schema()
        with pq.ParquetWriter(path, schema, compression="zstd") as w:
            for _, _, t in derive.iter_derived(self.plan):
                w.write_table(t.select(schema.names).cast(schema))
        return [path]


def release_holds(entry: Entry, catalogue: Catalogue, source: str | None,
                  revision: str | None) -> tuple[bool | None, str]:
    """(whether the release holds entry's shards, None when it cannot be reached; a sentence saying so)."""
    spec = source or catalogue.release.current_repo()
    if not spec:
        return False, (f"no release repository is set (${catalogue.release.repo_env} is unset and no source= "
                       f"was given)")
    files = catalogue.release.files.format(config=entry.name)
    try:
        loc = sources.location_for(spec, files)
        if loc.kind == "path":
            text = sources.path_read_text(loc, sources.MANIFEST)
            if text is not None:
                held = entry.name in parse_manifest(text, f"{loc.target}/manifest.json")["configs"]
            else:
                held = bool(sources.path_list(loc))
            return held, f"the release {loc.label} {'holds' if held else 'has no'} {entry.name!r}"
        rev = revision or catalogue.release.current_revision()
        sha = sources.hub_resolve(loc, rev)
        held = bool(sources.hub_list(loc, sha))
        return held, f"the release {loc.label} at {rev!r} ({sha}) {'holds' if held else 'has no'} {files}"
    except UnavailableError as e:
        return None, f"the release {spec!r} cannot be reached: {e}"
    except RevisionError:
        raise                # the release exists but not at that revision: say so, do not derive instead
    except UsageError as e:
        return False, f"the release {spec!r} cannot be read: {e}"


def use_derivation(entry: Entry, catalogue: Catalogue, *, source, revision, lock: Lock | None,
                   sample: bool) -> tuple[bool, str | None]:
    """(whether to derive entry here, what was found about the release)."""
    if sample or entry.derived is None:
        return False, None
    locked = lock.configs.get(entry.name) if lock is not None else None
    if locked is not None:
        return locked.derivation is not None, None
    if entry.source.kind != "release":
        return False, None
    held, found = release_holds(entry, catalogue, source, revision)
    if held is None:   # unreachable: a release asked for by name or revision gets its own (offline) error
        return source is None and revision is None, found
    return not held, found


def signals_held(entry: Entry, catalogue: Catalogue, source, revision) -> tuple[bool, str]:
    """Whether the release holds the stored selection signals entry's rule needs."""
    d = entry.derived
    if d is None or d.rule not in derive.SIGNAL_RULES or d.parent is None:
        return False, "its rule needs no signals"
    name = derive.signals_config(d.parent)
    if name not in catalogue:
        return False, f"the catalogue has no signals configuration {name!r}"
    held, found = release_holds(catalogue[name], catalogue, source, revision)
    return bool(held), found


def missing_error(entry: Entry, catalogue: Catalogue, found: str) -> MissingInputError:
    d = entry.derived
    needs = []
    if d is not None and d.rule in derive.SIGNAL_RULES:
        needs.append(f"the selection signals of {d.parent!r} (a release's `{derive.signals_config(d.parent)}` "
                     f"configuration)")
    if d is not None and d.parent is not None:
        p = catalogue[d.parent]
        if p.source.kind == "release" and not derive.derivable(p):
            needs.append(f"its parent {d.parent!r}, which itself comes only from a release")
    return MissingInputError(
        f"configuration {entry.name!r} ({d.rule if d else 'released'}) cannot be loaded: {found}, and it cannot "
        f"be derived on this machine" + (f"; it needs {' and '.join(needs)}" if needs else "")
        + f". Give a release that holds it: export {catalogue.release.repo_env}=<Hub repo id | folder | URL> "
          f"(or source=).")


def resolve_derived(name: str, *, parent_revision: str | None = None, parent_source: str | None = None,
                    lock: Lock | None = None, streaming: bool = False, cache_dir=None, verify: bool = False,
                    progress: bool = True, parameters: dict | None = None, catalogue: Catalogue | None = None,
                    found: str | None = None, source: str | None = None,
                    revision: str | None = None) -> DerivedResolved:
    from .resolve import resolve
    catalogue = catalogue or load_catalogue()
    entry = catalogue[name]
    locked = lock.configs.get(name) if lock is not None else None
    d = entry.derived
    found = found or release_holds(entry, catalogue, source, revision)[1]
    with_signals = bool((locked.derivation or {}).get("signals")) if locked is not None else \
        signals_held(entry, catalogue, source, revision)[0]
    if locked is None and not with_signals and not derive.derivable(entry):
        sig = signals_held(entry, catalogue, source, revision)[1] if d and d.rule in derive.SIGNAL_RULES else None
        raise missing_error(entry, catalogue, found + (f"; {sig}" if sig else ""))
    parent_lock = None
    if locked is not None:
        rec = locked.derivation or {}
        if rec.get("parent") != d.parent:
            raise IntegrityError(f"configuration {name!r}: the lock derives it from {rec.get('parent')!r}, the "
                                 f"catalogue from {d.parent!r}")
        parent_lock = Lock({d.parent: LockedConfig(source=locked.source, revision=locked.revision, sha=locked.sha,
                                                   files=locked.files, rows=rec.get("parent_rows"))})
        kind, _, target = locked.source.partition(":")
        parent_entry = catalogue[d.parent]
        upstream = parent_entry.source.kind == "upstream" and locked.source == f"hub:{parent_entry.source.repo}"
        parent_source = parent_source or (None if upstream else target)
        if parameters is None:
            parameters = {k: v for k, v in (rec.get("parameters") or {}).items()
                          if d.parameters.get(k) != v}
    if parent_source is None and locked is None and catalogue[d.parent].source.kind == "release":
        parent_source = source       # a parent that only a release holds: the release asked for
    parent = resolve(d.parent, parent_revision, source=parent_source, lock=parent_lock, streaming=streaming,
                     cache_dir=cache_dir, verify=verify, progress=progress)
    if with_signals:
        plan = _signals_plan(entry, parent, catalogue, source, revision, locked, cache_dir, progress)
    else:
        plan = _cached_plan(entry, parent, parameters, cache_dir)
    if locked is not None:
        derive.check_against(plan, locked.derivation, "lock")
    return DerivedResolved(entry, plan, parent)


def _signals_plan(entry, parent, catalogue, source, revision, locked, cache_dir, progress) -> derive.Plan:
    """Read the release's signals configuration (small: five columns) and its manifest record, then plan."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from .resolve import resolve
    name = derive.signals_config(entry.derived.parent)
    rec = (locked.derivation or {}).get("signals") if locked is not None else None
    if rec is not None:           # a lock: the signals from the release it names, at its sha
        kind, _, target = rec["source"].partition(":")
        source, revision = target, rec["sha"]
    sres = resolve(name, revision, source=source, cache_dir=cache_dir, progress=progress)
    if not sres.local:
        raise UnavailableError(f"{sres.where()}: the signals could not be stored locally")
    signals = pa.concat_tables([pq.read_table(p) for p in sres.data_files])
    expected = None
    text = (sources.hub_read_text(sres.location, sres.sha, sources.MANIFEST) if sres.location.kind == "hub"
            else sources.path_read_text(sres.location, sources.MANIFEST))
    if text is not None:
        manifest = parse_manifest(text, f"{sres.source_label}/manifest.json")
        subsets = manifest["configs"].get(name, {}).get("subsets") or {}
        expected = subsets.get(entry.name) or next((v for v in subsets.values() if v.get("config") == entry.name),
                                                   None)
    if expected is None:
        raise IntegrityError(f"{sres.where()}: the release manifest records no count and id digest for "
                             f"{entry.name!r} under configs.{name}.subsets; nothing to check the derivation against")
    return derive.make_signals_plan(entry, parent, signals, sres.source_label, sres.sha, expected)


def _cached_plan(entry, parent, parameters, cache_dir) -> derive.Plan:
    """make_plan, remembered in the local store by the parent's shard digests, rule, parameters and seed."""
    from .store import default_root
    if any(f.sha256 is None for f in parent.files):
        return derive.make_plan(entry, parent, parameters)
    folder = default_root(cache_dir) / "derived"
    key = derive.plan_key(entry, parent, parameters)
    plan = derive.load_plan(folder, key, parent)
    if plan is None:
        plan = derive.make_plan(entry, parent, parameters)
        try:
            derive.save_plan(plan, folder, key)
        except OSError:
            pass            # a read-only store: the plan is recomputed next time
    return plan
