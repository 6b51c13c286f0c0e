"""Root conftest: what pytest must not import while collecting doctests (``--doctest-modules``).

Doctests are collected from ``scheduler/``, ``connectors/`` and ``workers/`` (see ``testpaths`` in
pyproject.toml), which imports every module there. Two modules must not be imported that way:
``scheduler/__main__.py`` runs the CLI, and the Alembic ``env.py`` needs a migration context.
"""

from __future__ import annotations

collect_ignore = [
    "scheduler/__main__.py",
    "scheduler/store/migrations/env.py",
]
