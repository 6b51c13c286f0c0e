"""Use-case tests: the scenarios of :mod:`scheduler.app` on an in-memory store and the real ones."""
