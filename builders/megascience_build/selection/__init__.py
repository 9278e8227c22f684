"""Data-selection subsets from stored signal columns (used by stages/mixture.py and mixture_release.py)."""
