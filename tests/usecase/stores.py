"""The three stores every use-case and store-contract test runs on: the fake, SQLite, PostgreSQL.

``fake`` is :class:`tests.usecase.fakes.FakeStore`; ``sqlite`` and ``postgresql`` are the real
:class:`scheduler.store.Store`, migrated, on the same kind of empty database as the ``db_url``
fixture of ``tests/conftest_db.py`` gives (a fresh file, or a fresh schema in the session's
database). The PostgreSQL case carries ``pytest.mark.services`` and goes through the
``pg_database`` fixture, so it skips without a local PostgreSQL, and fails with ``CI=true``,
exactly as ``db_url`` does.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import pytest

from scheduler.app.ports import StorePort
from scheduler.app.records import AuditEntry, RevokedCredential
from tests.conftest_db import pg_schema
from tests.usecase.fakes import FakeStore

__all__ = ["STORE_KINDS", "InspectableStore", "open_store"]

#: Parameters for a ``store`` fixture.
STORE_KINDS: list[Any] = [
    "fake",
    "sqlite",
    pytest.param("postgresql", marks=pytest.mark.services),
]


class InspectableStore(StorePort, Protocol):
    """The port plus the read-outs tests use to look at the outcome (both stores have them)."""

    def user_events(self, user_id: int, *, since: datetime) -> list[AuditEntry]: ...
    def revoked_credentials(self) -> list[RevokedCredential]: ...
    def load_credential(self, user_email: str, provider: str) -> bytes | None: ...
    def last_tick(self) -> tuple[str, datetime] | None: ...


@contextmanager
def _postgres_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh schema in the session's PostgreSQL database (as ``db_url`` makes one)."""
    database: str = request.getfixturevalue("pg_database")  # skips or fails like db_url
    with pg_schema(database) as url:
        yield url


@contextmanager
def _real_store(url: str) -> Iterator[InspectableStore]:
    from scheduler.store import SecretBox, Store, make_engine, migrate

    migrate(url)
    engine = make_engine(url)
    try:
        yield Store(engine, secrets=SecretBox("use-case tests"))
    finally:
        engine.dispose()


@contextmanager
def open_store(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[InspectableStore]:
    """An empty store of ``kind`` (one of :data:`STORE_KINDS`), closed afterwards."""
    if kind == "fake":
        yield FakeStore()
    elif kind == "sqlite":
        with _real_store(f"sqlite:///{(tmp_path / 'goodwill.db').as_posix()}") as store:
            yield store
    elif kind == "postgresql":
        with _postgres_url(request) as url, _real_store(url) as store:
            yield store
    else:
        raise ValueError(f"unknown store kind {kind!r}")
