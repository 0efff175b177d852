"""Fixtures for the data tests; the generators live in videogen.py (importable by name from the tests)."""

from videogen import videos  # noqa: F401  (the shared session fixture of generated videos)
