"""Exceptions of the loader. Each maps to one CLI exit code (see cli.py)."""
from __future__ import annotations


class MegascienceError(Exception):
    """Base class; `exit_code` is what the CLI returns for it."""
    exit_code = 1


class UsageError(MegascienceError, ValueError):
    """Bad argument: an unknown configuration, an unsafe name, a malformed lock or catalogue."""
    exit_code = 2


class UnknownConfigError(UsageError, KeyError):
    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class RevisionError(MegascienceError):
    """A revision that does not exist, or cached data of another revision than the one asked for."""
    exit_code = 2


class IntegrityError(MegascienceError):
    """A shard whose size, sha256, row count or schema differs from what the lock/manifest/Hub says."""
    exit_code = 1


class UnavailableError(MegascienceError, ConnectionError):
    """The data cannot be reached: offline and not cached, or the source does not answer."""
    exit_code = 3
