"""experiments/benchmarks: see README.md there (or experiments/README.md)."""
