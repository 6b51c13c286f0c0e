"""Engines and sessions: SQLite (embedded default) tuned for several writers, PostgreSQL for scale.

SQLite: WAL, ``busy_timeout`` and ``BEGIN IMMEDIATE`` for writes. pysqlite's own transaction
handling would start a *deferred* transaction only before the first DML, and a deferred read that
later writes fails at once with SQLITE_BUSY_SNAPSHOT whatever the busy timeout (measured: 631 of
720 claims failed; with BEGIN IMMEDIATE, 0; dramatiq-infra.md §6). So we switch pysqlite's
implicit transactions off and issue BEGIN ourselves: ``BEGIN IMMEDIATE`` (take the write lock
up front, wait up to busy_timeout for it) unless the connection is marked read-only, then a plain
deferred ``BEGIN``, which never blocks under WAL. Recipe: SQLAlchemy SQLite dialect docs,
"Serializable isolation / Savepoints / Transactional DDL".

PostgreSQL: psycopg 3 (``postgresql+psycopg://``), READ COMMITTED; the repository's
compare-and-set UPDATEs and ``FOR UPDATE SKIP LOCKED`` do the rest. No ``pool_pre_ping`` (it
costs a ``BEGIN`` and a ``SELECT 1`` round trip on every checkout, a quarter of a planning
round's round trips): pooled connections are recycled after :data:`POOL_RECYCLE_S`, and a
checkout drops a connection the server has already closed (a restart, ``pg_terminate_backend``,
an idle timeout: the server's goodbye or EOF is waiting on the socket) at no round-trip cost; the
pool then opens a fresh one. A connection that dies silently fails its statement once; the pool
is invalidated and the next call reconnects.
"""

from __future__ import annotations

import os
import select
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, exc
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from scheduler.core.errors import ConfigurationError

__all__ = [
    "POOL_RECYCLE_S",
    "READ_ONLY",
    "SQLITE_BUSY_TIMEOUT_MS",
    "maintenance_warning",
    "make_engine",
    "make_session_factory",
    "normalise_url",
    "sqlite_file",
]

#: How long a SQLite writer waits for the write lock before "database is locked" (ms).
SQLITE_BUSY_TIMEOUT_MS = 5000

#: Execution option that marks a connection as read-only: SQLite then starts a deferred
#: transaction, which under WAL never waits for writers.
READ_ONLY = "goodwill_read_only"

#: PostgreSQL connections older than this are closed and reopened on checkout (seconds), well
#: inside the idle timeouts of PostgreSQL, PgBouncer and cloud load balancers.
POOL_RECYCLE_S = 1800


def normalise_url(url: str | URL) -> URL:
    """Parse a database URL and pick the driver goodwill supports for its backend.

    ``postgresql://`` and ``postgres://`` become ``postgresql+psycopg://`` (psycopg 3).

    Raises:
        ConfigurationError: the URL is malformed or names a backend other than SQLite/PostgreSQL.
    """
    try:
        parsed = make_url(url) if isinstance(url, str) else url
    except Exception as exc:  # sqlalchemy.exc.ArgumentError; the message names the URL
        raise ConfigurationError(f"database URL is not valid: {exc}") from exc
    backend = parsed.get_backend_name()
    if backend in {"postgresql", "postgres"}:
        return parsed.set(drivername="postgresql+psycopg")
    if backend == "sqlite":
        return parsed
    raise ConfigurationError(
        f"database URL uses {parsed.drivername!r}: goodwill supports sqlite:///path/file.db "
        "and postgresql://user@host/db"
    )


def sqlite_file(url: str | URL) -> Path | None:
    """The database file of a file-backed SQLite URL (None: in memory or not SQLite).

    Raises:
        ConfigurationError: malformed or unsupported URL.
    """
    parsed = normalise_url(url)
    database = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or _in_memory(database):
        return None
    return Path(database).expanduser()


def _in_memory(database: str) -> bool:
    return database in {"", ":memory:"} or database.startswith("file::memory:")


def make_engine(url: str | URL, *, echo: bool = False) -> Engine:
    """Build an engine for ``url`` with goodwill's concurrency settings.

    Args:
        url: ``sqlite:///path/goodwill.db`` (the directory is created 0700 and the file 0600, so
            the ``-wal``/``-shm`` files SQLite makes next to it are 0600 too), ``sqlite://``
            (in memory, one shared connection; tests only) or ``postgresql://…``.
        echo: log SQL.

    Raises:
        ConfigurationError: unsupported or malformed URL.
    """
    parsed = normalise_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, echo=echo)
    engine = create_engine(parsed, echo=echo, pool_recycle=POOL_RECYCLE_S)
    event.listen(engine, "checkout", _drop_closed_connection)
    return engine


def _drop_closed_connection(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """Refuse a pooled connection the server has closed, without a round trip.

    An idle connection has nothing to read; when it has (the server's FATAL notice before it
    closed, or EOF), it is dead: ``DisconnectionError`` makes the pool discard it and check out
    another (opening a new one when none is left).
    """
    pgconn = getattr(dbapi_connection, "pgconn", None)
    if pgconn is None:
        return
    try:
        readable, _, _ = select.select([pgconn.socket], [], [], 0)
    except Exception as error:  # psycopg.OperationalError / OSError: the socket is gone
        raise exc.DisconnectionError(f"pooled connection is closed: {error}") from error
    if readable:
        raise exc.DisconnectionError("the server closed this pooled connection")


def maintenance_warning(engine: Engine) -> str | None:
    """What an operator should know about the server's upkeep, or None (and on SQLite).

    goodwill's hot statements are prepared (psycopg prepares a statement on its fifth run), and
    PostgreSQL keeps one generic plan per prepared statement, chosen on the tables as they were
    then. It makes a new one when the tables are analysed. With ``autovacuum = off`` nothing
    analyses them, so a process that started on small tables keeps plans that scan them whole
    as they grow, until its pooled connection is recycled (:data:`POOL_RECYCLE_S`).
    """
    if engine.dialect.name != "postgresql":
        return None
    with engine.connect() as conn:  # track_counts: what autovacuum reads to decide
        autovacuum, counts = conn.exec_driver_sql(
            "SELECT current_setting('autovacuum'), current_setting('track_counts')"
        ).one()
    if autovacuum == "on" and counts == "on":
        return None
    setting = "autovacuum" if autovacuum != "on" else "track_counts"
    return (
        f"PostgreSQL runs with {setting} off: nothing analyses goodwill's tables, so the plans "
        "PostgreSQL caches for goodwill's statements stay those chosen when they were small. "
        f"Turn {setting} on (the default), or run ANALYZE on the goodwill database regularly "
        "(docs/operations.md, PostgreSQL upkeep)."
    )


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions whose objects stay readable after commit (the repository returns plain records)."""
    return sessionmaker(engine, expire_on_commit=False)


def _sqlite_engine(url: URL, *, echo: bool) -> Engine:
    database = url.database or ""
    in_memory = _in_memory(database)
    kwargs: dict[str, Any] = {"echo": echo}
    if in_memory:
        # Every pooled connection would see its own empty database: share one.
        kwargs.update(poolclass=StaticPool, connect_args={"check_same_thread": False})
    else:
        Path(database).expanduser().parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    engine = create_engine(url, **kwargs)

    if not in_memory and not database.startswith("file:"):

        @event.listens_for(engine, "do_connect")
        def _private_file(*_args: Any) -> None:
            # SQLite would create the file 0644 (umask 022) and give -wal/-shm the file's mode:
            # create it empty and owner-only first (an empty file is an empty database).
            try:
                os.close(os.open(Path(database).expanduser(), os.O_CREAT | os.O_EXCL, 0o600))
            except OSError:  # it exists, or its directory is gone: sqlite3 says which, as usual
                pass

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from pysqlite; the "begin" hook below issues BEGIN.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            if not in_memory:
                cursor.execute("PRAGMA journal_mode=WAL")
                # NORMAL is durable across application crashes in WAL mode; only a power loss
                # may roll back the last transactions (https://www.sqlite.org/pragma.html#pragma_synchronous).
                cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        read_only = conn.get_execution_options().get(READ_ONLY, False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine
