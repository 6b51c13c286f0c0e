"""Database fixtures: every store test runs on SQLite and on PostgreSQL.

``db_url`` is an empty database per test: a fresh SQLite file, or a fresh schema inside a
database created once per test session on 127.0.0.1:5432 (user ``postgres``, trust auth) and
dropped at the end. Without a local PostgreSQL the PostgreSQL cases are skipped, except with
``CI=true``, where they fail.

Wire in with ``pytest_plugins = ["tests.conftest_db"]`` in ``tests/conftest.py``.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

PG_HOST = "127.0.0.1"
PG_PORT = 5432
PG_ADMIN_DSN = f"host={PG_HOST} port={PG_PORT} user=postgres dbname=postgres connect_timeout=3"


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """Name of a database created for this test session (dropped afterwards)."""
    psycopg = pytest.importorskip("psycopg")
    try:
        admin = psycopg.connect(PG_ADMIN_DSN, autocommit=True)
    except psycopg.OperationalError as exc:
        message = f"PostgreSQL is not reachable on {PG_HOST}:{PG_PORT} as postgres: {exc}"
        if _in_ci():
            pytest.fail(f"{message} (CI=true: .ci/services.sh should have started it)")
        pytest.skip(message)
    name = f"goodwill_test_{os.getpid()}_{secrets.token_hex(4)}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield name
        finally:
            # FORCE (PostgreSQL 13+) ends connections a failed test may have leaked.
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.services)],
)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of an empty database (no tables): SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        path = tmp_path / "goodwill.db"
        yield f"sqlite:///{path.as_posix()}"
        return
    with pg_schema(request.getfixturevalue("pg_database")) as url:
        yield url


@pytest.fixture
def engine(db_url: str) -> Iterator[Any]:
    """An engine on ``db_url`` migrated to head (disposed afterwards); a test module may define
    its own ``engine`` instead."""
    from scheduler.store import make_engine, migrate

    migrate(db_url)
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def pg_engine(pg_database: str) -> Iterator[Any]:
    """An engine on a fresh PostgreSQL schema migrated to head (disposed afterwards): for tests
    of what only PostgreSQL does."""
    from scheduler.store import make_engine, migrate

    with pg_schema(pg_database) as url:
        migrate(url)
        engine = make_engine(url)
        try:
            yield engine
        finally:
            engine.dispose()


@contextmanager
def pg_schema(database: str) -> Iterator[str]:
    """The URL of a fresh, empty schema in ``database`` (dropped afterwards)."""
    import psycopg

    schema = f"t_{secrets.token_hex(6)}"
    dsn = f"host={PG_HOST} port={PG_PORT} user=postgres dbname={database}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        # search_path makes the schema the default for tables, reflection and alembic_version.
        yield (
            f"postgresql+psycopg://postgres@{PG_HOST}:{PG_PORT}/{database}"
            f"?options=-csearch_path%3D{schema}"
        )
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
