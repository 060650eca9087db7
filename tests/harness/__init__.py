"""Test harnesses shared by the reliability tests and `make stress`: broken audio, crashes mid-save."""
