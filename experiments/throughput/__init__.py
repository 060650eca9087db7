"""experiments/throughput: see README.md there (or experiments/README.md)."""
