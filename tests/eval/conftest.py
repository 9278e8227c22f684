"""Fixtures for the megascience_eval tests (helpers in eval_testlib.py)."""
from __future__ import annotations

import sys
from pathlib import Path


HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:          # eval_responder is named by scripted pipelines as a module path
    sys.path.insert(0, str(HERE))
