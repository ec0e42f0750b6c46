"""scnet benchmarks (issue 6): ``python -m benchmarks.run`` / ``make bench``; see BENCHMARKS.md."""
