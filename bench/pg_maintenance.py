"""What autovacuum does for a deployed PostgreSQL, done by the bench when the server's is off.

A deployed PostgreSQL runs autovacuum (on by default): it analyses a table once enough rows
changed and vacuums it once enough are dead or inserted. Analysing matters to goodwill beyond
the statistics: it invalidates the plans cached for prepared statements. psycopg prepares a
statement on its fifth run, and PostgreSQL keeps a *generic* plan for it, chosen on the tables
as they were then. A worker that starts on empty tables caches a sequential scan of
``meetings``, and keeps it until something invalidates it (an ``ANALYZE``, a ``VACUUM``) or the
pool recycles the connection (30 minutes). Measured on a schema whose ``meetings`` filled to
60,000 rows after the plan was cached: 72 ms and 1,080 blocks per ``stakeholder_load`` call,
against ~185 blocks by the e-mail index once re-planned. ``tests/integration/test_pg_plan_cache.py``
shows both: the cached scan, and the plan by index after one :meth:`Autovacuum.round`.

The machines the bench runs on here run PostgreSQL with ``autovacuum = off``. A bench on such a
server would measure a database nobody deploys, with every cost growing with the tables. So
:class:`Autovacuum` applies autovacuum's own rule, with the server's own settings
(``autovacuum_naptime``, ``autovacuum_{analyze,vacuum,vacuum_insert}_{threshold,scale_factor}``)
to the bench's database: every naptime, each table over a threshold gets ``ANALYZE`` or
``VACUUM (ANALYZE)``. Its connection carries a goodwill application name, so its CPU is counted
in ``pg_cpu_ms_per_plan`` as autovacuum's would be on a deployed server. When the server's
autovacuum is on, this does nothing and the server does the work (its CPU is then not counted:
autovacuum workers are not goodwill's backends).

Hand-written: autovacuum itself cannot be turned on for one database, and ``ALTER SYSTEM`` would
change the shared server for everything else that runs on the machine.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Autovacuum", "Thresholds", "due_work"]

_SETTINGS = (
    "autovacuum",
    "autovacuum_naptime",
    "autovacuum_analyze_threshold",
    "autovacuum_analyze_scale_factor",
    "autovacuum_vacuum_threshold",
    "autovacuum_vacuum_scale_factor",
    "autovacuum_vacuum_insert_threshold",
    "autovacuum_vacuum_insert_scale_factor",
)

#: Per table: live-tuple estimate, rows changed since the last analyse, dead rows, rows inserted
#: since the last vacuum (PostgreSQL 13+).
_TABLES = """
SELECT s.relname, greatest(c.reltuples, 0), s.n_mod_since_analyze, s.n_dead_tup,
       s.n_ins_since_vacuum
FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
WHERE s.schemaname = current_schema()
"""


@dataclass(frozen=True)
class Thresholds:
    """autovacuum's trigger rule (the server's settings; PostgreSQL's defaults here)."""

    naptime_s: float = 60.0
    analyze_base: float = 50
    analyze_scale: float = 0.1
    vacuum_base: float = 50
    vacuum_scale: float = 0.2
    insert_base: float = 1000
    insert_scale: float = 0.2

    @classmethod
    def from_settings(cls, values: dict[str, str]) -> Thresholds:
        """From ``pg_settings.setting`` values (base units: the naptime in seconds)."""
        return cls(
            naptime_s=float(values["autovacuum_naptime"]),
            analyze_base=float(values["autovacuum_analyze_threshold"]),
            analyze_scale=float(values["autovacuum_analyze_scale_factor"]),
            vacuum_base=float(values["autovacuum_vacuum_threshold"]),
            vacuum_scale=float(values["autovacuum_vacuum_scale_factor"]),
            insert_base=float(values["autovacuum_vacuum_insert_threshold"]),
            insert_scale=float(values["autovacuum_vacuum_insert_scale_factor"]),
        )


def due_work(rows: list[tuple[str, float, int, int, int]], t: Thresholds) -> list[tuple[str, str]]:
    """``(table, statement)`` for each table over a threshold, as autovacuum decides: ``VACUUM``
    when enough rows are dead or were inserted, ``ANALYZE`` when enough changed, both at once
    as ``VACUUM (ANALYZE)``."""
    work: list[tuple[str, str]] = []
    for name, tuples, modified, dead, inserted in rows:
        vacuum = dead > t.vacuum_base + t.vacuum_scale * tuples or (
            t.insert_base >= 0 and inserted > t.insert_base + t.insert_scale * tuples
        )  # an insert threshold of -1 turns insert-triggered vacuums off
        analyze = modified > t.analyze_base + t.analyze_scale * tuples
        if vacuum or analyze:
            work.append((name, _STATEMENTS[vacuum, analyze]))
    return work


_STATEMENTS = {(True, True): "VACUUM (ANALYZE)", (True, False): "VACUUM", (False, True): "ANALYZE"}


@dataclass
class Autovacuum:
    """Runs autovacuum's work on ``dsn``'s database while the server's autovacuum is off."""

    dsn: str
    application_name: str
    thresholds: Thresholds | None = None
    mode: str = "not started"
    counts: dict[str, int] = field(default_factory=lambda: {"vacuum": 0, "analyze": 0})
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as conn:
            # pg_settings gives each in its base unit (naptime in seconds; SHOW says "1min").
            rows = conn.execute(
                "SELECT name, setting FROM pg_settings WHERE name = ANY(%s)", (list(_SETTINGS),)
            ).fetchall()
            values = {str(name): str(setting) for name, setting in rows}
        if values["autovacuum"] == "on":
            self.mode = "the server's autovacuum"
            return
        self.thresholds = self.thresholds or Thresholds.from_settings(values)
        self.mode = "emulated by the bench (server autovacuum off)"
        self._thread = threading.Thread(target=self._run, name="bench-autovacuum", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import psycopg

        assert self.thresholds is not None
        with psycopg.connect(
            self.dsn, autocommit=True, application_name=self.application_name
        ) as conn:
            while not self._stop.wait(self.thresholds.naptime_s):
                try:
                    self.round(conn)
                except psycopg.Error as exc:  # said, not swallowed: the figures would be off
                    self.mode = f"emulated, stopped by {type(exc).__name__}: {exc}"
                    return

    def round(self, conn: Any) -> list[tuple[str, str]]:
        """One naptime's work; returns what it did."""
        assert self.thresholds is not None
        rows = [tuple(r) for r in conn.execute(_TABLES).fetchall()]
        work = due_work(rows, self.thresholds)
        for table, statement in work:
            conn.execute(f'{statement} "{table}"')
            for kind in ("vacuum", "analyze"):
                self.counts[kind] += kind.upper() in statement
        return work

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=120)

    def describe(self) -> dict[str, Any]:
        return {"mode": self.mode, **self.counts}
