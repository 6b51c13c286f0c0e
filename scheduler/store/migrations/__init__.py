"""Schema migrations (Alembic, configured in code: no alembic.ini).

``migrate(url)`` brings a database to the newest revision; ``at_head(url)`` tells /readyz
whether it is there. Run migrations once (``goodwill migrate``, an init container, or the
embedded app at start-up), never from many replicas at once; on PostgreSQL a transaction-level
advisory lock makes a concurrent second run wait and then find nothing to do.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text
from sqlalchemy.engine import URL

from scheduler.store.engine import READ_ONLY, make_engine

__all__ = ["alembic_config", "at_head", "current_revisions", "head_revisions", "migrate"]

_HERE = Path(__file__).resolve().parent
# Any fixed 64-bit number; it only has to differ from other advisory locks on the database.
_PG_MIGRATION_LOCK = 0x600D_3111


def alembic_config(url: str | URL | None = None) -> Config:
    """An Alembic ``Config`` pointing at this package (what alembic.ini would say)."""
    config = Config()
    config.set_main_option("script_location", str(_HERE))
    if url is not None:
        rendered = url if isinstance(url, str) else url.render_as_string(hide_password=False)
        config.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))
    return config


@contextmanager
def _engine(target: str | URL | Engine) -> Iterator[Engine]:
    if isinstance(target, Engine):
        yield target
        return
    engine = make_engine(target)
    try:
        yield engine
    finally:
        engine.dispose()


def migrate(target: str | URL | Engine, revision: str = "head") -> None:
    """Upgrade the database at ``target`` (URL or engine) to ``revision``, in one transaction."""
    with _engine(target) as engine, engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            lock = text("SELECT pg_advisory_xact_lock(:key)")
            connection.execute(lock, {"key": _PG_MIGRATION_LOCK})
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def head_revisions() -> set[str]:
    """The newest revision(s) shipped with this code."""
    return set(ScriptDirectory.from_config(alembic_config()).get_heads())


def current_revisions(target: str | URL | Engine) -> set[str]:
    """The revision(s) the database is at (empty before the first migration)."""
    with _engine(target) as engine, engine.connect() as connection:
        context = MigrationContext.configure(connection.execution_options(**{READ_ONLY: True}))
        return set(context.get_current_heads())


def at_head(target: str | URL | Engine) -> bool:
    """True when the database is at the newest revision this code knows (for /readyz)."""
    return current_revisions(target) == head_revisions()
