"""Test support shared by every test area (importable as `support` through setup.cfg's pytest `pythonpath`)."""
