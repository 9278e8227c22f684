"""Offline build package: regenerates every MegaScience configuration from textbooks and public datasets."""

__version__ = "0.1.0"
