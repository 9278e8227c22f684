"""Fixtures for the TextbookReasoning end-to-end tests; helpers live in textbook_e2e_lib.py (a unique module name)."""
from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:          # the pipelines name `textbook_e2e_script:respond_<role>` as responders
    sys.path.insert(0, str(HERE))
