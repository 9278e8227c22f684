"""megascience-datasets: every MegaScience configuration (arXiv 2507.16812), pinned, verified and citable.

    import megascience_datasets as msd
    ds = msd.load_dataset("textbook", streaming=True)          # the released TextbookReasoning
    ds = msd.load_dataset("textbook", sample=True)             # the small embedded sample

Importing this package imports neither torch nor the build package.
"""
from __future__ import annotations

__version__ = "0.1.0"

from .api import load_dataset, load_resolved, resolve_config  # noqa: E402
from .catalogue import load_catalogue  # noqa: E402
from .errors import (IntegrityError, MegascienceError, RevisionError, UnavailableError,  # noqa: E402
                     UnknownConfigError, UsageError)
from .lockfile import Lock, read_lock  # noqa: E402


def demo() -> None:
    from .demo import main
    main()


__all__ = ["load_dataset", "resolve_config", "load_resolved", "load_catalogue", "Lock", "read_lock", "demo",
           "MegascienceError", "IntegrityError", "RevisionError", "UnavailableError", "UnknownConfigError",
           "UsageError", "__version__"]
