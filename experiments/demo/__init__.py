"""experiments/demo: see README.md there (or experiments/README.md)."""
