"""Reproducible studies and benchmarks; run each script as a module from the repository root: ``python -m experiments.<folder>.<script>``."""
