"""``python -m bench.pipeline_probe ARGS``: the ``goodwill ARGS`` command with counters on.

What ``bench.pipeline`` runs instead of ``python -m scheduler worker|tick|serve``: it installs the
counters below, then calls the real CLI (:func:`scheduler.entrypoints.cli.main`) unchanged. No
product code knows about it. Every 0.5 s and at exit it writes its counters as JSON to
``$GOODWILL_BENCH_PROBE_FILE`` (atomically, by rename).

Counters (keys ``what:where``; ``where`` is the actor running on this thread - ``plan_user``,
``book_meeting``, ``book_meetings``, ``sync_responses`` -, ``tick`` inside a tick round, else
``other``):

- ``sql``: database round trips counted at the driver boundary, the way
  ``tests/sql_counting.py`` (the protocol trace behind ``tests/integration/
  test_sql_round_trips.py``) counts them: each statement SQLAlchemy sends
  (``before_cursor_execute``), each pool pre-ping (``SELECT 1``), and on PostgreSQL, for a
  connection NOT in autocommit, the ``BEGIN`` psycopg sends before a transaction's first
  statement and the ``COMMIT``/``ROLLBACK`` that ends it. A connection in autocommit (the
  store's reads and one-statement writes) sends neither: SQLAlchemy still fires its
  begin/commit events there, but psycopg sends nothing, so they are not counted. (SQLite's
  ``BEGIN IMMEDIATE`` is a statement of its own.)
- ``tx``: real transactions that ran at least one statement (a PostgreSQL ``BEGIN``, a SQLite
  ``BEGIN IMMEDIATE``), as the test counts them;
- ``GWBENCH_SQL_LOG=PATH`` in the environment (not a ``GOODWILL_`` name: the bench strips
  those): every counted round trip is also appended to ``PATH.<pid>`` as ``thread\twhere\t
  statement`` (``<BEGIN>``, ``<END>``, ``<ping>`` for the ones that are no statement);
- ``calls`` and ``cpu_us``: actor invocations and tick rounds, and their thread CPU time;
  ``rounds:plan_users``: the users' planning rounds inside ``plan_users`` messages;
- ``msg``: messages enqueued, by actor (``msg:plan_user`` ...), retries with a delay included.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

__all__ = ["install", "main"]

_counts: Counter[str] = Counter()
_lock = threading.Lock()
_local = threading.local()
_FLAG = "_gw_bench_statements"
#: What the current SQLAlchemy transaction of a connection has sent: nothing; statements in
#: autocommit (no BEGIN, and the COMMIT/ROLLBACK is a no-op on the client); a real transaction.
_NONE, _AUTO, _REAL = 0, 1, 2


def _where() -> str:
    return str(getattr(_local, "where", None) or "other")


def _add(key: str, n: int = 1) -> None:
    with _lock:
        _counts[key] += n


_LOG = os.environ.get("GWBENCH_SQL_LOG")


def _log(where: str, line: str) -> None:
    if _LOG:
        with _lock, open(f"{_LOG}.{os.getpid()}", "a", encoding="utf-8") as out:
            out.write(f"{threading.get_ident()}\t{where}\t{line}\n")


def _autocommit(conn: Any) -> bool:
    """Whether the DBAPI connection is in autocommit (psycopg then sends no BEGIN, and
    ``commit``/``rollback`` on an idle connection send nothing)."""
    try:
        return bool(conn.connection.dbapi_connection.autocommit)
    except AttributeError:
        return False


def _install_sql() -> None:
    from sqlalchemy import event
    from sqlalchemy.engine import Connection, Engine
    from sqlalchemy.engine.default import DefaultDialect

    def begin(conn: Connection) -> None:
        conn.info[_FLAG] = _NONE

    def before(conn: Connection, _cursor: Any, statement: str, *_args: Any) -> None:
        where = _where()
        if conn.info.get(_FLAG, _NONE) != _REAL:
            if conn.dialect.name == "postgresql" and not _autocommit(conn):
                if conn.info.get(_FLAG, _NONE) == _NONE:
                    _add(f"sql:{where}")  # psycopg's BEGIN, one round trip of its own
                    _log(where, "<BEGIN>")
                    conn.info[_FLAG] = _REAL
            elif statement.lstrip()[:5].upper() == "BEGIN":  # SQLite's BEGIN IMMEDIATE
                conn.info[_FLAG] = _REAL
            else:
                conn.info[_FLAG] = _AUTO
        _add(f"sql:{where}")
        _log(where, " ".join(statement.split())[:160])

    def end(conn: Connection) -> None:
        if conn.info.get(_FLAG, _NONE) == _REAL:
            where = _where()
            _add(f"tx:{where}")
            if conn.dialect.name == "postgresql":
                _add(f"sql:{where}")  # the COMMIT/ROLLBACK psycopg sends
                _log(where, "<END>")
        conn.info[_FLAG] = _NONE

    event.listen(Engine, "begin", begin)
    event.listen(Engine, "before_cursor_execute", before)
    event.listen(Engine, "commit", end)
    event.listen(Engine, "rollback", end)

    ping = DefaultDialect.do_ping

    def do_ping(self: DefaultDialect, dbapi_connection: Any) -> bool:
        _add(f"sql:{_where()}")
        _log(_where(), "<ping>")
        return ping(self, dbapi_connection)

    DefaultDialect.do_ping = do_ping  # type: ignore[method-assign]


def _timed(where: str, fn: Any) -> Any:
    def run(*args: Any, **kwargs: Any) -> Any:
        before = getattr(_local, "where", None)
        _local.where = where if before is None else before
        started = time.thread_time()
        try:
            return fn(*args, **kwargs)
        finally:
            if before is None:
                _add(f"cpu_us:{where}", int((time.thread_time() - started) * 1e6))
                _add(f"calls:{where}")
            _local.where = before

    return run


def _install_actors_and_tick() -> None:
    from dramatiq.actor import Actor

    import workers.tick

    call = Actor.__call__

    def actor_call(self: Actor[Any, Any], *args: Any, **kwargs: Any) -> Any:
        return _timed(self.actor_name, call)(self, *args, **kwargs)

    Actor.__call__ = actor_call  # type: ignore[method-assign]
    workers.tick.Tick.run_once = _timed("tick", workers.tick.Tick.run_once)  # type: ignore[method-assign]

    import scheduler.app.planning_batch as batch

    plan_one = batch.plan_user

    def batch_round(*args: Any, **kwargs: Any) -> Any:  # one user's round in a plan_users
        _add("rounds:plan_users")
        return plan_one(*args, **kwargs)

    batch.plan_user = batch_round


def _install_brokers() -> None:
    from dramatiq.brokers.stub import StubBroker

    classes: list[Any] = [StubBroker]
    try:
        from dramatiq.brokers.redis import RedisBroker

        classes.append(RedisBroker)
    except ImportError:
        pass
    for cls in classes:
        enqueue = cls.enqueue

        def counted(self: Any, message: Any, *, delay: Any = None, _e: Any = enqueue) -> Any:
            _add(f"msg:{message.actor_name}")
            return _e(self, message, delay=delay)

        cls.enqueue = counted


def _dump(path: Path) -> None:
    with _lock:
        data = {"pid": os.getpid(), "at": time.time(), "counts": dict(_counts)}
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data), encoding="utf-8")
    tmp.replace(path)


def _dumper(path: Path) -> None:
    while True:
        time.sleep(0.5)
        try:
            _dump(path)
        except OSError:
            pass


def install(path: Path) -> None:
    """Install every counter; dump them to ``path`` every 0.5 s and at exit."""
    _install_sql()
    _install_actors_and_tick()
    _install_brokers()
    threading.Thread(target=_dumper, args=(path,), name="bench-probe", daemon=True).start()
    atexit.register(_dump, path)


def main() -> int:
    target = os.environ.get("GOODWILL_BENCH_PROBE_FILE")
    if target:
        install(Path(target))
    from scheduler.entrypoints.cli import main as goodwill

    sys.argv = ["goodwill", *sys.argv[1:]]
    rc = goodwill()
    if target:
        _dump(Path(target))
    return int(rc or 0)


if __name__ == "__main__":
    raise SystemExit(main())
