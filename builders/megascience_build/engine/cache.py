"""The request cache shared by every stage: one SQLite file in WAL mode.

Key: GenerationRequest.cache_key(identity) (the model's resolved identity digest, see backends/identity.py,
sampling, sample index, rendered messages); the model and revision columns are for audits only.
Value: the GenerationResult as JSON plus the sha256 of that JSON. Only complete answers
(finish_reason "stop") are served as cached answers; failures ("length", "error") are retried on the next run.
The last failure of a request is kept in a separate table that only --cache-only reads, so a replay
without any model reproduces the run that wrote the cache, failures (and the rows they dropped) included.

Why SQLite: many processes (shard workers, Ray actors on one node, two concurrent runs) may read and
write one cache; WAL mode gives concurrent readers with one writer at a time, and every committed
transaction survives a kill -9 of the writer. WAL needs every process on one host (shared memory), so
keep the file on a local disk; on a Ray cluster one actor on the driver's node owns it. A row whose checksum does not match, or whose JSON does
not decode, is reported (logged and counted in `corrupted`) and treated as a miss, so it is recomputed
and overwritten.
"""
from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Iterable, Mapping

from ..backends.base import GenerationResult

log = logging.getLogger(__name__)

_TABLES = ("responses", "failures")
_SCHEMA = [f"""
CREATE TABLE IF NOT EXISTS {table} (
    key      TEXT PRIMARY KEY,
    model    TEXT NOT NULL,
    revision TEXT NOT NULL,
    result   TEXT NOT NULL,
    checksum TEXT NOT NULL
)
""" for table in _TABLES]


class CacheMissError(RuntimeError):
    """--cache-only and a request is not in the cache."""


def _checksum(blob: str) -> str:
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def encode_result(result: GenerationResult) -> str:
    return json.dumps(asdict(result), sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def decode_result(blob: str) -> GenerationResult:
    data = json.loads(blob)
    return GenerationResult(text=str(data["text"]), finish_reason=str(data["finish_reason"]),
                            prompt_tokens=int(data.get("prompt_tokens", 0)),
                            completion_tokens=int(data.get("completion_tokens", 0)), error=data.get("error"))


class RequestCache:
    """Process-local handle on the shared cache file (open one per process; never share across fork).
    The shards in flight of one process share it: one connection, used by one thread at a time."""

    def __init__(self, path: str | Path, *, timeout_s: float = 60.0):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._timeout_s = timeout_s
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.RLock()
        self.corrupted = 0

    @property
    def conn(self) -> sqlite3.Connection:
        with self._lock:
            if self._conn is None:
                try:
                    conn = sqlite3.connect(self.path, timeout=self._timeout_s, isolation_level=None,
                                           check_same_thread=False)
                    conn.execute("PRAGMA journal_mode=WAL")
                    # NORMAL in WAL mode: a committed row survives the death of this process (kill -9);
                    # only a power loss can lose the last commits, which are then simply recomputed.
                    conn.execute("PRAGMA synchronous=NORMAL")
                    for statement in _SCHEMA:
                        conn.execute(statement)
                except sqlite3.DatabaseError as exc:
                    raise RuntimeError(f"request cache {self.path}: cannot open ({exc}); "
                                       f"move the file away to start a fresh cache") from None
                self._conn = conn
            return self._conn

    def get_many(self, keys: Iterable[str], *, failures: bool = False, tally: dict | None = None
                 ) -> dict[str, GenerationResult]:
        """The valid cached answers among `keys` (with failures=True: the recorded failures of the others);
        corrupted entries are reported, left out and counted in `corrupted` (and in tally["corrupted"]: the
        count of this call alone, when several threads share the handle)."""
        keys = list(dict.fromkeys(keys))
        with self._lock:
            before = self.corrupted
            found = self._select("responses", keys)
            if failures:
                found.update(self._select("failures", [k for k in keys if k not in found]))
            if tally is not None:
                tally["corrupted"] = tally.get("corrupted", 0) + self.corrupted - before
        return found

    def _select(self, table: str, keys: list[str]) -> dict[str, GenerationResult]:
        found: dict[str, GenerationResult] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self.conn.execute(f"SELECT key, result, checksum FROM {table} WHERE key IN ({marks})", chunk)
            for key, blob, checksum in rows:
                try:
                    if not isinstance(blob, str) or _checksum(blob) != checksum:
                        raise ValueError("checksum mismatch")
                    result = decode_result(blob)
                except (ValueError, KeyError, TypeError) as exc:
                    self.corrupted += 1
                    log.warning("request cache %s: corrupted entry %s (%s); it will be recomputed", self.path, key, exc)
                    continue
                found[key] = result
        return found

    def put_many(self, entries: Mapping[str, GenerationResult], *, model: str, revision: str) -> int:
        """Store `entries` in one transaction: answers as answers, failures only as the record of a failure.
        Returns how many answers were stored."""
        answers, failed = [], []
        for key, result in entries.items():
            blob = encode_result(result)
            (answers if result.ok else failed).append((key, model, revision, blob, _checksum(blob)))
        if entries:
            with self._lock, self._transaction():
                self.conn.executemany("INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?)", answers)
                self.conn.executemany("INSERT OR REPLACE INTO failures VALUES (?, ?, ?, ?, ?)", failed)
                self.conn.executemany("DELETE FROM failures WHERE key = ?", [(row[0],) for row in answers])
        return len(answers)

    def __len__(self) -> int:
        with self._lock:
            return self.conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def keys(self) -> set[str]:
        with self._lock:
            return {k for (k,) in self.conn.execute("SELECT key FROM responses")}

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _transaction(self):
        conn = self.conn

        class _Tx:
            def __enter__(self_inner):
                conn.execute("BEGIN IMMEDIATE")

            def __exit__(self_inner, exc_type, *_):
                conn.execute("ROLLBACK" if exc_type else "COMMIT")
                return False

        return _Tx()

    def __getstate__(self):  # a handle travels to worker processes as its path only
        return {"path": self.path, "_timeout_s": self._timeout_s, "_conn": None, "corrupted": 0}

    def __setstate__(self, state):
        self.__dict__.update(state, _lock=threading.RLock())
