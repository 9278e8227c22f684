"""megascience_datasets.load_dataset: pinned, verified, typed loading of any catalogue configuration."""
from __future__ import annotations

import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

from .builder import make_builder, make_derived_builder
from .errors import UsageError
from .lockfile import Lock, as_lock
from .resolve import Resolved, resolve
from .views import training_view


def load_dataset(config: str = "textbook", split: str | None = None, streaming: bool = False,
                 revision: str | None = None, cache_dir: str | os.PathLike | None = None,
                 columns: Sequence[str] | None = None, filters=None, lock: "Lock | str | os.PathLike | None" = None,
                 source: str | None = None, sample: bool = False, verify: bool = False, progress: bool = True,
                 batch_size: int | None = None, num_proc: int | None = None, keep_in_memory: bool | None = None,
                 format: str | None = None, tokenizer=None, parent_revision: str | None = None,
                 parent_source: str | None = None, derive: dict | None = None, ids: bool = False):
    """Load one configuration like `datasets.load_dataset`, at a revision resolved to a full commit sha.

    config     a catalogue name (`megascience list`)
    revision   tag, branch or full sha; default: the catalogue's pin (or the lock's sha)
    source     override where the shards live: a Hub repo id, a local dataset repository folder or an
               fsspec URL (default: the catalogue; release configurations read $MEGASCIENCE_RELEASE)
    lock       a Lock or the path of a lock file: anything but the locked shards is refused
    sample     load the small embedded sample (also `revision="sample"`); never used implicitly
    columns    project to these columns (pushed down into the parquet reader)
    filters    pyarrow/parquet filters, e.g. [("subject", "==", "physics")] (pushed down)
    verify     re-hash already cached shards instead of trusting the store's record
    format     a training view: "messages" (chat turns) or "prompt_completion" (views.py); default the rows
    tokenizer  with format: add `num_tokens` per row in this Hugging Face tokenizer
    Derived configurations (derived.py: `textbook_random`, the `megascience_*` views) are computed from
    their parent when no release holds them:
    parent_revision  revision of the parent (default: the parent's pin, or the lock's parent sha)
    parent_source    where the parent lives (like source=, for the parent)
    derive           rule parameters overriding the catalogue's, e.g. {"n": 1000} (recorded in the lock)
    ids        add the row id (derive.row_id) to the rows of a released configuration
    Returns a Dataset/DatasetDict, or an IterableDataset/IterableDatasetDict with streaming=True;
    `.info` carries the description, license and citation. `resolve_config` gives the commit sha and shards.
    """
    res = resolve_config(config, revision, source=source, lock=lock, streaming=streaming, cache_dir=cache_dir,
                         sample=sample, verify=verify, progress=progress, defer_hashing=not streaming,
                         parent_revision=parent_revision, parent_source=parent_source, derive=derive)
    if filters is not None and hasattr(res, "plan"):
        raise UsageError(f"configuration {config!r} is derived here from {res.plan.parent!r}: filters= is not "
                         f"supported on derived rows; filter the loaded dataset instead")
    ds = load_resolved(res, split=split, streaming=streaming, cache_dir=cache_dir, columns=columns,
                       filters=filters, batch_size=batch_size, num_proc=num_proc, keep_in_memory=keep_in_memory,
                       progress=progress)
    if ids:
        ds = _with_ids(ds, res)
    if format is None:
        if tokenizer is not None:
            raise UsageError("tokenizer= counts tokens of a training view: give format= too")
        return ds
    return training_view(ds, format, tokenizer, config=config)


def resolve_config(config: str, revision: str | None = None, *, source: str | None = None, lock=None,
                   streaming: bool = False, cache_dir=None, sample: bool = False, verify: bool = False,
                   progress: bool = True, defer_hashing: bool = False, parent_revision: str | None = None,
                   parent_source: str | None = None, derive: dict | None = None):
    """Resolve and verify without building: the commit sha, the shard files and what they must be.

    defer_hashing leaves the sha256 of local shards not verified before in `res.pending`; call
    `res.finish_verification()` (load_resolved does, while it prepares) before trusting the data.
    A derived configuration that no release holds gives a derived.DerivedResolved (with its `plan`)."""
    from . import derived
    from .catalogue import load_catalogue
    from .safety import check_config_name
    cat = load_catalogue()
    entry = cat[check_config_name(config)]
    lk = as_lock(lock)
    derive_here, found = derived.use_derivation(entry, cat, source=source, revision=revision, lock=lk,
                                                sample=sample or revision == "sample")
    if derive_here:
        if revision is not None:
            raise UsageError(f"configuration {config!r} is derived here (no release holds it): revision= names a "
                             f"release revision; pass parent_revision= for the parent {entry.derived.parent!r}")
        return derived.resolve_derived(config, parent_revision=parent_revision, parent_source=parent_source, lock=lk,
                                       streaming=streaming, cache_dir=cache_dir, verify=verify, progress=progress,
                                       parameters=derive, catalogue=cat, found=found, source=source)
    if entry.source.kind == "release" and not sample and revision != "sample" and source is None \
            and not cat.release.current_repo() and lk is None:
        raise derived.missing_error(entry, cat, derived.release_holds(entry, cat, None, None)[1])
    return resolve(config, revision, source=source, lock=as_lock(lock), streaming=streaming, cache_dir=cache_dir,
                   sample=sample, verify=verify, progress=progress, defer_hashing=defer_hashing)


def load_resolved(res: Resolved, *, split=None, streaming=False, cache_dir=None, columns=None, filters=None,
                  batch_size=None, num_proc=None, keep_in_memory=None, progress=True):
    import datasets

    if hasattr(res, "plan"):
        builder = make_derived_builder(res.plan, cache_dir=cache_dir, columns=columns)
    else:
        builder = make_builder(res.entry.name, res.data_files, res.sha, cache_dir=cache_dir, columns=columns,
                               filters=filters, batch_size=batch_size)
    if streaming:
        res.finish_verification(progress)
        return builder.as_streaming_dataset(split=split)
    bars_were_on = datasets.is_progress_bar_enabled()
    if not progress:
        datasets.disable_progress_bars()
    # shards not hashed yet are hashed on another thread while the Arrow cache is prepared; if one fails,
    # the prepared cache is removed before the error is raised, so nothing from a failed load stays cached
    with ThreadPoolExecutor(max_workers=1) as pool:
        checking = pool.submit(res.finish_verification, False)
        try:
            builder.download_and_prepare(num_proc=num_proc)
        except Exception:
            _raise_if_failed(checking, builder)   # a corrupted shard explains a failed preparation
            raise
        finally:
            if not progress and bars_were_on:     # give back the caller's setting, not always "on"
                datasets.enable_progress_bars()
        _raise_if_failed(checking, builder)
    return builder.as_dataset(split=split, in_memory=bool(keep_in_memory))


def _raise_if_failed(checking, builder) -> None:
    if checking.exception() is not None:
        shutil.rmtree(builder.cache_dir, ignore_errors=True)
        checking.result()


def _with_ids(ds, res):
    """The rows with an `id` column first (derive.row_id), for released configurations."""
    from .derive import ID_FIELDS, table_ids
    if "id" in (res.entry.features or {}):
        return ds
    names = getattr(ds, "column_names", None)
    names = next(iter(names.values())) if isinstance(names, dict) else names
    if names is not None and any(c not in names for c in ID_FIELDS):
        raise UsageError(f"ids=True needs columns {list(ID_FIELDS)}; the loaded rows have {names}")

    def add(batch):
        import pyarrow as pa
        t = pa.table({c: batch[c] for c in ID_FIELDS})
        return {"id": table_ids(t)}
    import datasets
    if isinstance(ds, (datasets.IterableDataset, datasets.IterableDatasetDict)):
        return ds.map(add, batched=True, batch_size=1000)
    return ds.map(add, batched=True, batch_size=1000, desc=f"ids {res.entry.name}")
