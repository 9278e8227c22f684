"""The public upstream datasets of MegaScience: how their rows map to our schema, and how to fetch them
(used by stages/adapt_source.py, stages/mixture.py and release/mixture_configs.py)."""
