"""Data-selection subsets from stored signal columns (used by stages/mixture.py and release/mixture_configs.py)."""
