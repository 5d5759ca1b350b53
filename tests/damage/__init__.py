"""Damaged-file tooling shared by the fuzz, truncation, limit and differential tests."""
