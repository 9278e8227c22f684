"""Benchmark contamination: the benchmark registry, cheap matching, and the planted-leak evaluation
(used by stages/decontaminate.py, benchmarks/decontam*.py and tests/decontam)."""
