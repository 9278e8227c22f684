"""Row ids of released data, and configurations derived on the user's machine from a public parent.

Row ids (`row_id`). A released row of `textbook` or `megascience` has no id of its own; its id is
`content_id(sha256(question), sha256(answer), sha256(subject), sha256(reference_answer))`: each field's
UTF-8 text hashed (hex; a null field stays null), then sha256 over the canonical JSON of the four digests
(`json.dumps(parts, sort_keys=True, ensure_ascii=False, separators=(",", ":"))`), first 32 hex digits.
Hashing the fields first lets the loader hash them straight from the Arrow buffers, without turning the
texts into Python strings and JSON-escaping them (4x faster on TextbookReasoning-length rows). `content_id` is the build's function (megascience_build.engine.records.content_id, tested to
agree), so an id computed here can be compared with any id a build wrote. `source` is not part of the id,
so a TextbookReasoning row has the same id in `textbook` and in `megascience`. Rows with identical content
share an id (the derivation record counts them as `duplicate_ids`).

Derived configurations (`LOCAL_RULES`). A configuration whose rule needs only its parent and a seed is
computed here when no release holds it:

    select_random  the n rows with the smallest uniform_u01(seed, id) (blake2b of seed and id, the build's
                   selection.uniform_u01), ties (identical rows) by position; parent order kept.
    source_view    the rows of `megascience` whose `source` value names one part of the mixture. The
                   values are read from the data; a value that names no known part is an error naming it,
                   the shard and the row.

A first pass (`plan`) reads the parent's shards once, batch by batch, and keeps one boolean per parent row
(plus the 32-byte ids while it runs); the derived rows are then streamed shard by shard and row group by
row group with that mask, so streaming, a prepared Dataset and every `split_dataset_by_node` rank see the
same rows. The plan's record (parent, parent sha, rule, parameters, seed, rows, sha256 of the selected ids)
goes into the lock, and a lock refuses a derivation whose record differs.
"""
from __future__ import annotations

import hashlib
import json
import posixpath
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .errors import IntegrityError, UsageError

ID_FIELDS = ("question", "answer", "subject", "reference_answer")
LOCAL_RULES = ("select_random", "source_view")
# the parts of the MegaScience mixture and the `source` spellings that name them (compared lower-case, with
# everything but letters and digits removed); the released value set is not published
PARTS = {
    "textbook": ("textbookreasoning", "textbook", "megasciencetextbookreasoning"),
    "natural_reasoning": ("naturalreasoning", "facebooknaturalreasoning"),
    "nemotron_science": ("nemotronscience", "nemotron", "llamanemotronposttrainingdataset",
                         "nvidiallamanemotronposttrainingdataset"),
}
_DERIVED_COLUMNS = ("id", "provenance")


def content_id(*parts: Any) -> str:
    """sha256 over the canonical JSON of `parts`, first 32 hex digits (the build's records.content_id)."""
    canonical = json.dumps(parts, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]


def field_digest(value: str | None) -> str | None:
    """sha256 (hex) of one field's UTF-8 text; None stays None."""
    return None if value is None else hashlib.sha256(value.encode("utf-8")).hexdigest()


def row_id(question: str | None, answer: str | None, subject: str | None, reference_answer: str | None) -> str:
    """The id of a released row: content_id of the sha256 of each identifying field (module docstring)."""
    return content_id(*(field_digest(v) for v in (question, answer, subject, reference_answer)))


def _digests(arr) -> list[str | None]:
    """field_digest of every value of a string column, hashed straight from the Arrow buffers."""
    if isinstance(arr, pa.ChunkedArray):
        return [d for chunk in arr.chunks for d in _digests(chunk)]
    if arr.type not in (pa.string(), pa.large_string()):
        return [field_digest(v) for v in arr.to_pylist()]
    n = len(arr)
    if n == 0:
        return []
    bufs = arr.buffers()
    off = np.frombuffer(bufs[1], dtype=np.int32 if arr.type == pa.string() else np.int64)[arr.offset:arr.offset + n + 1]
    data = memoryview(bufs[2]) if bufs[2] is not None else memoryview(b"")
    sha = hashlib.sha256
    out = [sha(data[a:b]).hexdigest() for a, b in zip(off[:-1].tolist(), off[1:].tolist())]
    if arr.null_count:
        for i in np.flatnonzero(~arr.is_valid().to_numpy(zero_copy_only=False)).tolist():
            out[i] = None
    return out


def table_ids(table: pa.Table) -> list[str]:
    missing = [c for c in ID_FIELDS if c not in table.column_names]
    if missing:
        raise UsageError(f"row ids need column(s) {missing}; the rows have {table.column_names}")
    sha = hashlib.sha256
    out = []
    for parts in zip(*(_digests(table.column(c)) for c in ID_FIELDS)):
        if None in parts:
            out.append(content_id(*parts))
        else:   # content_id's canonical JSON of four hex strings, written directly
            out.append(sha(('["%s","%s","%s","%s"]' % parts).encode()).hexdigest()[:32])
    return out


def parent_ids(table: pa.Table) -> list[str]:
    """Ids of parent rows: their own `id` column (configurations a build made), else row_id of the content."""
    if "id" in table.column_names:
        return table.column("id").to_pylist()
    return table_ids(table)


def uniform_u01(seed: int, ids) -> np.ndarray:
    """A uniform number in [0, 1) per id (the build's selection.uniform_u01)."""
    prefix = f"{int(seed)}\x1f".encode()
    words = [int.from_bytes(hashlib.blake2b(prefix + i.encode(), digest_size=8).digest(), "big") >> 11
             for i in ids]
    return np.asarray(words, dtype=np.float64) * (1.0 / (1 << 53))


def ids_digest(ids) -> str:
    """sha256 over the ids in order, each followed by a newline (the build's selection.ids_digest)."""
    h = hashlib.sha256()
    for i in ids:
        h.update(i.encode() + b"\n" if isinstance(i, str) else bytes(i) + b"\n")
    return h.hexdigest()


def part_of(value: object) -> str | None:
    """Which part of the mixture a `source` value names, or None."""
    if not isinstance(value, str):
        return None
    key = "".join(ch for ch in value.lower() if ch.isalnum())
    return next((part for part, names in PARTS.items() if key in names), None)


def derivable(entry) -> bool:
    d = entry.derived
    if d is None or d.rule not in LOCAL_RULES or d.parent is None:
        return False
    return d.rule != "select_random" or "n" in d.parameters


# ------------------------------------------------------------------------------------------------ the plan

@dataclass
class Plan:
    """Which rows of the parent a derived configuration keeps: one boolean per parent row, per shard."""
    config: str
    parent: str
    parent_source: str
    parent_revision: str
    parent_sha: str
    parent_repo: str | None
    rule: str
    parameters: dict
    seed: int | None
    files: list[str]                 # the parent's data files as the builder gets them, in order
    relpaths: list[str]              # their paths inside the parent repository
    masks: list[np.ndarray]          # per file: bool per row
    row_groups: list[list[int]]      # per file: rows per row group
    rows: int = 0
    parent_rows: int = 0
    ids_sha256: str = ""
    extra: dict = field(default_factory=dict)
    ids: list = field(default_factory=list)   # per file: the kept rows' ids (S32), so rows are not hashed twice
    u: list = field(default_factory=list)     # per file: their random numbers (select_random), else empty

    def record(self) -> dict:
        return {"config": self.config, "parent": self.parent, "parent_source": self.parent_source,
                "parent_revision": self.parent_revision, "parent_sha": self.parent_sha, "rule": self.rule,
                "parameters": dict(self.parameters), "seed": self.seed, "rows": self.rows,
                "parent_rows": self.parent_rows, "ids_sha256": self.ids_sha256, **self.extra}

    def __getstate__(self):            # pickled into DataLoader workers / split_dataset_by_node copies
        return dict(self.__dict__)

    def cache_hash(self) -> str:
        return hashlib.sha1(json.dumps(self.record(), sort_keys=True).encode()).hexdigest()

    def file_index(self, file: str) -> int:
        try:
            return self.files.index(file)
        except ValueError:
            pass
        for i, rel in enumerate(self.relpaths):          # a download manager may have rewritten the URL
            if str(file).replace("\\", "/").endswith("/" + rel) or str(file).endswith(posixpath.basename(rel)):
                return i
        raise IntegrityError(f"configuration {self.config!r}: data file {file!r} is not one of the parent's "
                             f"shards {self.relpaths}")


def _open(path: str):
    """A random-access file over one shard: local paths directly; a URL (hf://, s3://, ...) is read once from
    start to end into memory (one shard at a time), so servers that ignore HTTP range requests (olah serving
    plain git blobs) give the same bytes as the Hub."""
    if "://" not in str(path):
        return open(path, "rb")
    import fsspec
    with fsspec.open(str(path), "rb", block_size=0) as f:
        return pa.BufferReader(f.read())


def _iter_parent(files: list[str], relpaths: list[str], columns: list[str], where: str):
    """(file index, row group sizes, row offset, table) for every row group of every shard, in order."""
    for k, (f, rel) in enumerate(zip(files, relpaths)):
        with _open(f) as fh:
            try:
                pf = pq.ParquetFile(fh)
            except (pa.ArrowInvalid, OSError) as e:
                raise IntegrityError(f"{where}: parent shard {rel} ({f}) is not a readable parquet file: {e}") from None
            missing = [c for c in columns if c not in pf.schema_arrow.names]
            if missing:
                raise IntegrityError(f"{where}: parent shard {rel} lacks column(s) {missing} "
                                     f"(it has {pf.schema_arrow.names})")
            sizes = [pf.metadata.row_group(g).num_rows for g in range(pf.num_row_groups)]
            offset = 0
            for g in range(pf.num_row_groups):
                yield k, sizes, offset, pf.read_row_group(g, columns=columns)
                offset += sizes[g]
            if not sizes:
                yield k, sizes, 0, None


def make_plan(entry, parent_res, parameters: Mapping[str, Any] | None = None) -> Plan:
    """One pass over the parent's shards: the selection mask, row count and id digest of `entry`."""
    d = entry.derived
    params = {**dict(d.parameters), **dict(parameters or {})}
    where = f"configuration {entry.name!r} derived from {d.parent!r} at {parent_res.sha}"
    files = list(parent_res.data_files)
    relpaths = [e.path for e in parent_res.files]
    columns = list(ID_FIELDS) + (["source"] if d.rule == "source_view" else [])
    n_parent = sum(e.rows for e in parent_res.files) if all(e.rows is not None for e in parent_res.files) else None
    masks: list[list[np.ndarray]] = [[] for _ in files]
    row_groups: list[list[int]] = [[] for _ in files]
    id_chunks: list[np.ndarray] = []
    extra: dict[str, Any] = {}
    if d.rule == "source_view":
        part = params.get("part")
        if part not in PARTS:
            raise UsageError(f"{where}: parameter part={part!r} is not one of {sorted(PARTS)}")
        seen: dict[str, dict] = {}
        for k, sizes, offset, t in _iter_parent(files, relpaths, columns, where):
            row_groups[k] = sizes
            if t is None:
                continue
            values = t.column("source").to_pylist()
            m = np.zeros(len(values), dtype=bool)
            for i, v in enumerate(values):
                s = seen.get(v)
                if s is None:
                    s = seen[v] = {"part": part_of(v), "rows": 0, "first": (relpaths[k], offset + i)}
                    if s["part"] is None:
                        raise IntegrityError(
                            f"{where}: parent shard {relpaths[k]} row {offset + i} has source {v!r}, which names "
                            f"none of the mixture's parts {sorted(PARTS)} (known spellings: "
                            f"{ {p: list(n) for p, n in PARTS.items()} }); refusing to guess")
                s["rows"] += 1
                m[i] = s["part"] == part
            masks[k].append(m)
            sel = t.filter(pa.array(m))
            id_chunks.append((k, np.array(table_ids(sel), dtype="S32")))
        extra["source_values"] = {v: s["rows"] for v, s in sorted(seen.items(), key=lambda kv: str(kv[0]))
                                  if s["part"] == part}
        if not extra["source_values"]:
            raise IntegrityError(f"{where}: no row has a source naming part {part!r}; the values found are "
                                 f"{ {v: s['rows'] for v, s in seen.items()} }")
        flat = [np.concatenate(ms) if ms else np.zeros(0, bool) for ms in masks]
        per_file = [np.concatenate([c for j, c in id_chunks if j == k] or [np.zeros(0, "S32")])
                    for k in range(len(files))]
        per_u = [np.zeros(0)] * len(files)
        ids = np.concatenate(per_file) if per_file else np.zeros(0, "S32")
    elif d.rule == "select_random":
        n = params.get("n")
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise UsageError(f"{where}: parameter n={n!r} must be a non-negative integer")
        if d.seed is None:
            raise UsageError(f"{where}: a random selection needs a seed")
        # shards in parallel threads: parquet decoding and sha256 of long texts release the GIL
        from concurrent.futures import ThreadPoolExecutor
        import os as _os

        def shard(k: int):
            sizes, chunks = [], []
            for _, sz, _, t in _iter_parent([files[k]], [relpaths[k]], columns, where):
                sizes = sz
                if t is not None:
                    chunks.append(np.array(table_ids(t), dtype="S32"))
            return sizes, (np.concatenate(chunks) if chunks else np.zeros(0, "S32"))
        with ThreadPoolExecutor(max_workers=max(1, min(4, _os.cpu_count() or 1, len(files)))) as pool:
            done = list(pool.map(shard, range(len(files))))
        for k, (sizes, _) in enumerate(done):
            row_groups[k] = sizes
        ids_all = np.concatenate([a for _, a in done]) if done else np.zeros(0, "S32")
        total = ids_all.size
        if n > total:
            raise IntegrityError(f"{where}: n={n} rows asked for, but the parent has only {total} rows "
                                 f"(pass derive={{'n': ...}} to take fewer)")
        u = uniform_u01(d.seed, (i.decode() for i in ids_all))
        keep = np.zeros(total, dtype=bool)
        if n:
            kth = np.partition(u, n - 1)[n - 1]
            keep = u < kth
            ties = np.flatnonzero(u == kth)[: n - int(keep.sum())]
            keep[ties] = True
        bounds = np.cumsum([0] + [sum(rg) for rg in row_groups])
        flat = [keep[bounds[k]:bounds[k + 1]] for k in range(len(files))]
        per_file = [ids_all[bounds[k]:bounds[k + 1]][flat[k]] for k in range(len(files))]
        per_u = [u[bounds[k]:bounds[k + 1]][flat[k]] for k in range(len(files))]
        ids = ids_all[keep]
        extra["random"] = {"column": "random_u01", "max_selected": float(u[keep].max()) if n else None}
    else:
        raise UsageError(f"{where}: rule {d.rule!r} cannot be derived locally (local rules: {LOCAL_RULES})")
    parent_rows = int(sum(m.size for m in flat))
    if n_parent is not None and parent_rows != n_parent:
        raise IntegrityError(f"{where}: read {parent_rows} parent rows, the parent's shards declare {n_parent}")
    extra["duplicate_ids"] = int(ids.size - np.unique(ids).size) if ids.size else 0
    return Plan(config=entry.name, parent=d.parent, parent_source=parent_res.source_label,
                parent_revision=parent_res.revision, parent_sha=parent_res.sha,
                parent_repo=parent_res.location.target if parent_res.location.kind == "hub" else None,
                rule=d.rule, parameters=params, seed=d.seed, files=files, relpaths=relpaths, masks=flat,
                row_groups=row_groups, rows=int(sum(int(m.sum()) for m in flat)), parent_rows=parent_rows,
                ids_sha256=ids_digest(ids), extra=extra, ids=per_file, u=per_u)


def check_against(plan: Plan, expected: Mapping[str, Any], origin: str) -> None:
    """Refuse a derivation whose record differs from a lock's (or a manifest's) record."""
    got = plan.record()
    keys = ("parent", "parent_sha", "rule", "parameters", "seed", "rows", "ids_sha256")
    diffs = [f"{k}: {got.get(k)!r} here, {expected.get(k)!r} in the {origin}" for k in keys
             if k in expected and got.get(k) != expected.get(k)]
    if diffs:
        raise IntegrityError(f"configuration {plan.config!r}: the derivation differs from the {origin}: "
                             + "; ".join(diffs) + "; refusing other rows")


# ------------------------------------------------------------------------------------------------ rows

def derived_table(plan: Plan, k: int, offset: int, table: pa.Table) -> pa.Table:
    """The kept rows of one parent row group (starting at `offset` in shard k) with id and provenance."""
    mask = plan.masks[k]
    m = mask[offset:offset + table.num_rows]
    sel = table.filter(pa.array(m, pa.bool_()))
    if plan.ids and len(plan.ids[k]) == int(mask.sum()):
        start = int(np.count_nonzero(mask[:offset]))
        ids = [i.decode() for i in plan.ids[k][start:start + sel.num_rows]]
        u = plan.u[k][start:start + sel.num_rows] if len(plan.u[k]) else None
    else:
        ids = table_ids(sel)
        u = None
    if u is None and plan.rule == "select_random":
        u = uniform_u01(plan.seed, ids)
    rows = (np.flatnonzero(m) + offset).tolist()
    # provenance: the same JSON as json.dumps(..., sort_keys=True) of {origin, signals, steps}, written from a
    # template per shard (one dumps per row was a third of the derivation's time)
    origin = json.dumps({"config": plan.parent, "file": posixpath.basename(plan.relpaths[k]), "kind": "dataset",
                         "repo": plan.parent_repo, "revision": plan.parent_sha}, sort_keys=True, ensure_ascii=False)
    head = '{"origin": ' + origin[:-1] + ', "row": '
    steps = json.dumps([{"config": plan.config, "parameters": plan.parameters, "seed": plan.seed,
                         "stage": plan.rule}], sort_keys=True, ensure_ascii=False)
    if u is not None:
        provs = [f'{head}{r}, "split": "train"}}, "signals": {{"random_u01": {float(x)!r}}}, "steps": {steps}}}'
                 for r, x in zip(rows, u)]
    else:
        provs = [f'{head}{r}, "split": "train"}}, "signals": {{}}, "steps": {steps}}}' for r in rows]
    if "id" not in sel.column_names:
        sel = sel.append_column("id", pa.array(ids, pa.string()))
    if "provenance" not in sel.column_names:      # a built parent's rows keep their own provenance
        sel = sel.append_column("provenance", pa.array(provs, pa.string()))
    return sel


def iter_derived(plan: Plan, files=None, row_groups_list=None, columns=None):
    """(file index, row group, table) of derived rows for the given parent files (default: all)."""
    files = list(files) if files is not None else list(plan.files)
    row_groups_list = list(row_groups_list) if row_groups_list is not None else [None] * len(files)
    for f, groups in zip(files, row_groups_list):
        k = plan.file_index(f)
        offsets = np.cumsum([0] + plan.row_groups[k]).tolist()
        with _open(f) as fh:
            pf = pq.ParquetFile(fh)
            for g in (groups if groups is not None else range(pf.num_row_groups)):
                t = pf.read_row_group(g, columns=columns)
                yield k, g, derived_table(plan, k, offsets[g], t)


def derive_table(entry, parent: pa.Table, parameters: Mapping[str, Any] | None = None, *,
                 parent_label: str = "sample:megascience-datasets", parent_sha: str = "sample") -> tuple[pa.Table, Plan]:
    """Apply entry's rule to an in-memory parent table (the embedded sample is made this way)."""
    import tempfile
    from types import SimpleNamespace
    from pathlib import Path
    with tempfile.TemporaryDirectory(prefix="megascience-derive-") as tmp:
        rel = f"data/{entry.derived.parent}/train-00000-of-00001.parquet"
        path = Path(tmp) / "parent.parquet"
        pq.write_table(parent, path)
        res = SimpleNamespace(data_files=[str(path)], files=[SimpleNamespace(path=rel, rows=parent.num_rows)],
                              sha=parent_sha, source_label=parent_label, revision=parent_sha,
                              location=SimpleNamespace(kind="path", target=parent_label))
        plan = make_plan(entry, res, parameters)
        names = list(entry.features)
        tables = [t.select(names) for _, _, t in iter_derived(plan)]
        out = pa.concat_tables(tables) if tables else entry.arrow_schema().empty_table()
        return out.cast(entry.arrow_schema()), plan


# ------------------------------------------------------------------------------------------------ signals

SIGNAL_RULES = ("select_difficulty", "select_length", "select_random", "select_difficulty_below")
SIGNAL_COLUMNS = ("id", "response_length", "length_excluded", "difficulty", "random_u01")


def signals_config(parent: str) -> str:
    """The name of the configuration that holds a pool's stored selection signals."""
    return f"{parent}_signals"


def _need_signals(table: pa.Table, where: str) -> None:
    missing = [c for c in SIGNAL_COLUMNS if c not in table.column_names]
    if missing:
        raise IntegrityError(f"{where}: the signals lack column(s) {missing} (they have {table.column_names})")


def _float(table: pa.Table, column: str) -> np.ndarray:
    import pyarrow.compute as pc
    return pc.cast(table.column(column), pa.float64()).fill_null(np.nan).to_numpy(zero_copy_only=False)


def _top(table: pa.Table, candidates: np.ndarray, keys: list[tuple[str, str]], n: int) -> np.ndarray:
    import pyarrow.compute as pc
    if n == 0 or candidates.size == 0:
        return np.zeros(0, dtype=np.int64)
    sub = table.select([k for k, _ in keys]).take(pa.array(candidates, pa.int64()))
    order = pc.sort_indices(sub, sort_keys=keys).to_numpy()
    return np.sort(candidates[order[:n]]).astype(np.int64)


def signal_positions(rule: str, signals: pa.Table, params: Mapping[str, Any], seed: int | None,
                     where: str) -> np.ndarray:
    """Ascending positions into the signals table of the rows a Table 3 / Table 11 rule keeps (the build's
    selection.py protocol: difficulty fixes n; length and random take n; ties by id)."""
    import pyarrow.compute as pc
    _need_signals(signals, where)
    d = _float(signals, "difficulty")
    low, high = float(params.get("low", 1)), float(params.get("high", 9))
    with np.errstate(invalid="ignore"):
        medium = ((d > low) & (d < high)) if params.get("strict", True) else ((d >= low) & (d <= high))
    medium &= ~np.isnan(d)
    if rule == "select_difficulty":
        return np.flatnonzero(medium).astype(np.int64)
    if rule == "select_difficulty_below":
        with np.errstate(invalid="ignore"):
            return np.flatnonzero((d < float(params["below"])) & ~np.isnan(d)).astype(np.int64)
    n = int(medium.sum())
    if rule == "select_length":
        excluded = signals.column("length_excluded").fill_null(True)
        ok = pc.and_(pc.invert(excluded), pc.is_valid(signals.column("response_length")))
        eligible = np.flatnonzero(ok.to_numpy(zero_copy_only=False))
        return _top(signals, eligible, [("response_length", "descending"), ("id", "ascending")], n)
    if rule == "select_random":
        if seed is None:
            raise UsageError(f"{where}: a random selection needs a seed")
        head = signals.slice(0, 64)
        if not np.array_equal(uniform_u01(seed, head.column("id").to_pylist()),
                              head.column("random_u01").to_numpy(zero_copy_only=False)):
            raise IntegrityError(f"{where}: the signals' random_u01 was not computed with seed {seed}")
        valid = np.flatnonzero(pc.is_valid(signals.column("random_u01")).to_numpy(zero_copy_only=False))
        return _top(signals, valid, [("random_u01", "ascending"), ("id", "ascending")], n)
    raise UsageError(f"{where}: rule {rule!r} is not computed from signals (signal rules: {SIGNAL_RULES})")


def make_signals_plan(entry, parent_res, signals: pa.Table, signals_label: str, signals_sha: str,
                      expected: Mapping[str, Any] | None) -> Plan:
    """The rows of `entry` from its public parent plus stored signals: the subset is computed on the signals,
    checked against the release manifest's count and id digest (`expected`), then found in the parent by id."""
    d = entry.derived
    where = f"configuration {entry.name!r} from {d.parent!r} at {parent_res.sha} and {signals_label}@{signals_sha}"
    positions = signal_positions(d.rule, signals, d.parameters, d.seed, where)
    chosen = signals.column("id").take(pa.array(positions, pa.int64())).to_pylist()
    digest = ids_digest(chosen)
    if expected is not None:
        if expected.get("rows") is not None and expected["rows"] != len(chosen):
            raise IntegrityError(f"{where}: the signals give {len(chosen)} rows, the release manifest says "
                                 f"{expected['rows']}")
        if expected.get("ids_sha256") and expected["ids_sha256"] != digest:
            raise IntegrityError(f"{where}: the selected ids have sha256 {digest}, the release manifest says "
                                 f"{expected['ids_sha256']}")
    wanted = set(chosen)
    files = list(parent_res.data_files)
    relpaths = [e.path for e in parent_res.files]
    masks: list[list[np.ndarray]] = [[] for _ in files]
    row_groups: list[list[int]] = [[] for _ in files]
    kept_ids: list[list[str]] = [[] for _ in files]
    found = 0
    columns = list(ID_FIELDS) + (["id"] if "id" in parent_res.entry.features else [])
    for k, sizes, offset, t in _iter_parent(files, relpaths, columns, where):
        row_groups[k] = sizes
        if t is None:
            continue
        tids = parent_ids(t)
        m = np.fromiter((i in wanted for i in tids), dtype=bool, count=t.num_rows)
        masks[k].append(m)
        kept_ids[k].extend(i for i, keep in zip(tids, m) if keep)
        found += int(m.sum())
    flat = [np.concatenate(ms) if ms else np.zeros(0, bool) for ms in masks]
    if found < len(wanted):
        raise IntegrityError(f"{where}: the parent lacks {len(wanted) - found} of the {len(wanted)} ids the signals "
                             f"select: the signals were computed on another revision of {d.parent!r} (pass "
                             f"parent_revision= with the revision the release names)")
    return Plan(config=entry.name, parent=d.parent, parent_source=parent_res.source_label,
                parent_revision=parent_res.revision, parent_sha=parent_res.sha,
                parent_repo=parent_res.location.target if parent_res.location.kind == "hub" else None,
                rule=d.rule, parameters=dict(d.parameters), seed=d.seed, files=files, relpaths=relpaths,
                masks=flat, row_groups=row_groups, rows=int(sum(int(m.sum()) for m in flat)),
                parent_rows=int(sum(m.size for m in flat)), ids_sha256=digest,
                extra={"signals": {"config": signals_config(d.parent), "source": signals_label, "sha": signals_sha,
                                   "rows": signals.num_rows},
                       "duplicate_ids": found - len(wanted)},
                ids=[np.array(x, dtype="S32") for x in kept_ids], u=[np.zeros(0)] * len(files))


# ------------------------------------------------------------------------------------------------ plan cache

def plan_key(entry, parent_res, parameters: Mapping[str, Any] | None, extra: Any = None) -> str:
    """What a plan depends on: the rule, its parameters and seed, and the parent's shards by sha256."""
    d = entry.derived
    body = {"config": entry.name, "rule": d.rule, "parameters": {**dict(d.parameters), **dict(parameters or {})},
            "seed": d.seed, "parent": d.parent, "parent_sha": parent_res.sha,
            "shards": [[e.path, e.sha256] for e in parent_res.files], "extra": extra, "scheme": 1}
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()[:40]


def save_plan(plan: Plan, folder, key: str) -> None:
    """Keep a plan beside the verified shards, so the next load of the same derivation skips the plan pass."""
    import os
    import tempfile
    from pathlib import Path
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    meta = {"record": plan.record(), "relpaths": plan.relpaths, "row_groups": plan.row_groups,
            "parent_repo": plan.parent_repo, "lengths": [int(m.size) for m in plan.masks],
            "kept": [int(len(i)) for i in plan.ids], "u": [int(len(x)) for x in plan.u]}
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
    os.close(fd)
    with open(tmp, "wb") as f:
        np.savez(f, masks=np.concatenate(plan.masks) if plan.masks else np.zeros(0, bool),
                 ids=np.concatenate(plan.ids) if plan.ids else np.zeros(0, "S32"),
                 u=np.concatenate(plan.u) if plan.u else np.zeros(0), meta=np.frombuffer(json.dumps(meta).encode(), np.uint8))
    os.replace(tmp, folder / f"{key}.npz")


def load_plan(folder, key: str, parent_res) -> Plan | None:
    from pathlib import Path
    path = Path(folder) / f"{key}.npz"
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(z["meta"].tobytes().decode())
            masks, ids, u = z["masks"], z["ids"], z["u"]
    except (OSError, ValueError, KeyError):
        return None
    if meta["relpaths"] != [e.path for e in parent_res.files]:
        return None

    def split(arr, lengths):
        out, at = [], 0
        for n in lengths:
            out.append(arr[at:at + n])
            at += n
        return out
    rec = dict(meta["record"])
    keys = ("config", "parent", "parent_source", "parent_revision", "parent_sha", "rule", "parameters", "seed", "rows",
            "parent_rows", "ids_sha256")
    return Plan(config=rec["config"], parent=rec["parent"], parent_source=parent_res.source_label,
                parent_revision=parent_res.revision, parent_sha=rec["parent_sha"], parent_repo=meta["parent_repo"],
                rule=rec["rule"], parameters=rec["parameters"], seed=rec["seed"], files=list(parent_res.data_files),
                relpaths=meta["relpaths"], masks=split(masks, meta["lengths"]), row_groups=meta["row_groups"],
                rows=rec["rows"], parent_rows=rec["parent_rows"], ids_sha256=rec["ids_sha256"],
                extra={k: v for k, v in rec.items() if k not in keys}, ids=split(ids, meta["kept"]),
                u=split(u, meta["u"]))
