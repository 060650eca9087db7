"""experiments/inference: see README.md there (or experiments/README.md)."""
