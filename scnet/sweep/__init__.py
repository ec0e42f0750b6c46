"""Sweeps: named sweep files (``spec``), the Optuna engine (``engine``), ``results.csv``."""
