"""Alembic environment: one migration tree for SQLite and PostgreSQL.

Run through :func:`scheduler.store.migrations.migrate`, which hands over an open connection
(``config.attributes["connection"]``). SQLite gets batch mode, because it cannot ALTER most
constraints (https://alembic.sqlalchemy.org/en/latest/batch.html).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from scheduler.store.engine import make_engine
from scheduler.store.tables import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _run_offline() -> None:
    url = config.get_main_option("sqlalchemy.url")
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=bool(url and url.startswith("sqlite")),
    )
    with context.begin_transaction():
        context.run_migrations()


def _run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no connection and no sqlalchemy.url: use scheduler.store.migrate(url)")
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            _run(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    _run_offline()
else:
    _run_online()
