"""Reliability tests: bad input, crashes and resumes, numerical faults, safe loading, limits."""
