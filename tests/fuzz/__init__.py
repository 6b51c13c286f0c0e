"""Fuzz tests: hostile input to the loaders and parsers ends in a clear error, never a crash.

Bounded by the Hypothesis profile in tests/conftest.py: a few seconds per test in `make test`;
`make fuzz` (GOODWILL_FUZZ=long) runs many more examples.
"""
