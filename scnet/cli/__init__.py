"""Command-line entry points: scnet-run, scnet-sweep, scnet-report."""
