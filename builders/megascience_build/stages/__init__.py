"""The stage modules, one per stage (or per family of stages); catalogue.py lists them by `stage:` name.

Importing this package imports no stage module.
"""
