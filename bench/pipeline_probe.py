"""``python -m bench.pipeline_probe ARGS``: the ``goodwill ARGS`` command with counters on.

What ``bench.pipeline`` runs instead of ``python -m scheduler worker|tick|serve``: it installs the
counters below, then calls the real CLI (:func:`scheduler.entrypoints.cli.main`) unchanged. No
product code knows about it. Every 0.5 s and at exit it writes its counters as JSON to
``$GOODWILL_BENCH_PROBE_FILE`` (atomically, by rename).

Counters (keys ``what:where``; ``where`` is the actor running on this thread - ``plan_user``,
``book_meeting``, ``sync_responses`` -, ``tick`` inside a tick round, else ``other``):

- ``sql``: database round trips counted at the driver boundary: each statement SQLAlchemy sends
  (``before_cursor_execute``), each pool pre-ping (``SELECT 1``), and on PostgreSQL the ``BEGIN``
  psycopg sends before a transaction's first statement and the ``COMMIT``/``ROLLBACK`` that ends a
  transaction which ran one. (SQLite's ``BEGIN IMMEDIATE`` is a statement of its own.)
- ``tx``: transactions that ran at least one statement;
- ``calls`` and ``cpu_us``: actor invocations and tick rounds, and their thread CPU time;
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


def _where() -> str:
    return str(getattr(_local, "where", None) or "other")


def _add(key: str, n: int = 1) -> None:
    with _lock:
        _counts[key] += n


def _install_sql() -> None:
    from sqlalchemy import event
    from sqlalchemy.engine import Connection, Engine
    from sqlalchemy.engine.default import DefaultDialect

    def begin(conn: Connection) -> None:
        conn.info[_FLAG] = 0

    def before(conn: Connection, *_args: Any) -> None:
        where = _where()
        first = conn.info.get(_FLAG, 0) == 0
        conn.info[_FLAG] = 1
        if first and conn.dialect.name == "postgresql":
            _add(f"sql:{where}")  # psycopg's BEGIN, one round trip of its own
        _add(f"sql:{where}")

    def end(conn: Connection) -> None:
        if conn.info.get(_FLAG, 0):
            where = _where()
            _add(f"tx:{where}")
            if conn.dialect.name == "postgresql":
                _add(f"sql:{where}")
        conn.info[_FLAG] = 0

    event.listen(Engine, "begin", begin)
    event.listen(Engine, "before_cursor_execute", before)
    event.listen(Engine, "commit", end)
    event.listen(Engine, "rollback", end)

    ping = DefaultDialect.do_ping

    def do_ping(self: DefaultDialect, dbapi_connection: Any) -> bool:
        _add(f"sql:{_where()}")
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
