"""megascience_eval: the paper's evaluation system (its §4) on the build package's engine, backends and cache.

Modules: extract (answer extraction), mathnorm and units (normalisation), judge (correctness), benchmarks
(the eval registry and gold answers), stages and run (the evaluation pipeline), scores (per benchmark,
per sub-part, the paper's aggregates), published (the paper's Tables 6, 7, 12, 13), report, cli.
"""
