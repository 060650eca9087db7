"""The Hydra apps behind the make targets and console scripts: one file per app."""
