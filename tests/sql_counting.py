"""Count what an Engine sends to the database: statements, pool pings, transactions, round trips.

Attach a :class:`SqlCounter` to an engine *before* its first connection, then measure a block::

    engine = make_engine(url)
    counter = SqlCounter(engine)
    store = Store(engine)
    with counter.measure() as count:
        plan_user(pipeline, user_id)
    print(count.round_trips, count.transactions, count.statements)

``statements`` counts SQLAlchemy's ``before_cursor_execute`` events (every SELECT, INSERT, UPDATE
the code issues) and ``pings`` the pool's checkout pings (``pool_pre_ping`` runs one per checkout,
outside those events). On PostgreSQL every connection is traced at the protocol level (libpq's
``PQtrace`` through psycopg), so ``round_trips`` is exact: one per ``ReadyForQuery`` the server
sends, which includes the implicit ``BEGIN`` psycopg sends before a transaction's first
statement, the ``COMMIT``/``ROLLBACK`` and the pings; ``transactions`` counts the ``BEGIN``\\ s. On
SQLite (no network) ``round_trips`` is ``statements + pings`` and ``transactions`` the BEGINs the
engine issues.

Only the standard library, SQLAlchemy and psycopg are used, so a benchmark can load this file
beside an older checkout of goodwill (``bench/sql_round_trips.py`` does).
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO, Any

from sqlalchemy import Engine, event

__all__ = ["SqlCount", "SqlCounter"]


@dataclass
class SqlCount:
    """What one measured block sent (filled in when the block ends)."""

    statements: int = 0
    pings: int = 0
    round_trips: int = 0
    transactions: int = 0
    #: The statements' first line, in order (pings as ``<ping>``), to print when a count is off.
    log: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, int]:
        return {
            "round_trips": self.round_trips,
            "transactions": self.transactions,
            "statements": self.statements,
            "pings": self.pings,
        }

    def describe(self) -> str:
        head = (
            f"{self.round_trips} round trips, {self.transactions} transactions, "
            f"{self.statements} statements, {self.pings} pings"
        )
        return "\n  ".join([head, *self.log])


class SqlCounter:
    """Listens on ``engine`` (and engines derived from it by ``execution_options``)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._postgres = engine.dialect.name == "postgresql"
        self._lock = threading.Lock()
        self._current: SqlCount | None = None
        self._traces: list[IO[bytes]] = []
        event.listen(engine, "before_cursor_execute", self._on_execute)
        if self._postgres:
            event.listen(engine, "connect", self._on_connect)
        dialect: Any = engine.dialect
        ping = dialect.do_ping

        def counting_ping(dbapi_connection: Any) -> bool:
            self._note("<ping>", ping=True)
            return bool(ping(dbapi_connection))

        dialect.do_ping = counting_ping

    # -- events --------------------------------------------------------------------------------

    def _note(self, line: str, *, ping: bool = False) -> None:
        with self._lock:
            count = self._current
            if count is None:
                return
            if ping:
                count.pings += 1
            else:
                count.statements += 1
            count.log.append(line)

    def _on_execute(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        self._note(" ".join(statement.split())[:140])

    def _on_connect(self, dbapi_connection: Any, _record: Any) -> None:
        pgconn = getattr(dbapi_connection, "pgconn", None)
        if pgconn is None:  # not psycopg 3: no protocol trace
            return
        from psycopg import pq

        trace = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the connection
        pgconn.trace(trace.fileno())
        pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
        with self._lock:
            self._traces.append(trace)

    # -- measuring -----------------------------------------------------------------------------

    def _trace_ends(self) -> dict[int, int]:
        with self._lock:
            return {id(t): os.fstat(t.fileno()).st_size for t in self._traces}

    def _trace_since(self, starts: dict[int, int]) -> tuple[int, int]:
        round_trips = transactions = 0
        with self._lock:
            traces = list(self._traces)
        for trace in traces:
            with os.fdopen(os.dup(trace.fileno()), "rb") as reader:
                reader.seek(starts.get(id(trace), 0))
                for line in reader.read().decode("utf-8", "replace").splitlines():
                    parts = line.split("\t")
                    if len(parts) < 3:
                        continue
                    if parts[0] == "B" and parts[2] == "ReadyForQuery":
                        round_trips += 1
                    elif parts[0] == "F" and parts[2] == "Query" and '"BEGIN' in line:
                        transactions += 1
        return round_trips, transactions

    @contextmanager
    def measure(self) -> Iterator[SqlCount]:
        """Count what the block sends; the yielded record is complete once the block ends."""
        count = SqlCount()
        starts = self._trace_ends()
        with self._lock:
            if self._current is not None:
                raise RuntimeError("SqlCounter.measure() does not nest")
            self._current = count
        try:
            yield count
        finally:
            with self._lock:
                self._current = None
            if self._postgres and self._traces:
                count.round_trips, count.transactions = self._trace_since(starts)
            else:
                count.round_trips = count.statements + count.pings
                count.transactions = sum(1 for s in count.log if s.upper().startswith("BEGIN"))

    def close(self) -> None:
        """Stop listening and drop the trace files (dispose the engine first)."""
        event.remove(self._engine, "before_cursor_execute", self._on_execute)
        if self._postgres:
            event.remove(self._engine, "connect", self._on_connect)
        with self._lock:
            for trace in self._traces:
                trace.close()
            self._traces.clear()


# -- the measured scenario: one planning round, one booking ----------------------------------------

#: The owner of the measured round and their stakeholders (peers, auto mode, all due): the caps
#: allow 3 proposals a week, so most of them are skipped and audited.
SCENARIO_OWNER = "alex@corp.example"
SCENARIO_STAKEHOLDERS = 16

_SCENARIO_POLICY = """\
owner: {{email: alex@corp.example, name: Alex Doe, timezone: Europe/London}}
calendar: {{provider: ics}}
meeting: {{kind: coffee, duration: 30m, location: "Level 2 cafe"}}
availability:
  working_hours: {{mon-fri: "09:00-17:00"}}
  windows: ["10:00-11:30", "14:00-16:30"]
  min_notice: 1d
  horizon: 14d
  buffer: 10m
  max_per_day: 1
  max_per_week: 3
tiers:
  peer: {{every: 8w, mode: auto}}
stakeholders:
{stakeholders}
allowed_domains: [corp.example]
"""


def scenario_policy(stakeholders: int = SCENARIO_STAKEHOLDERS) -> str:
    """Alex's policy with ``stakeholders`` peers (``p01@corp.example`` …), all due at once."""
    lines = "\n".join(
        f"  - {{email: p{i:02d}@corp.example, name: Peer {i:02d}, tier: peer}}"
        for i in range(1, stakeholders + 1)
    )
    return _SCENARIO_POLICY.format(stakeholders=lines)


@dataclass
class ScenarioCounts:
    """The counts of one planning round and of one booking of a meeting it proposed, then of
    the owner's SECOND round (:func:`measure_plan_and_booking` says what it finds)."""

    plan: SqlCount
    booking: SqlCount
    proposals: int
    skipped: int
    second: SqlCount = field(default_factory=SqlCount)
    #: The booked meeting's state after the second round (its answer followed: ``accepted``).
    followed_state: str = ""
    #: Organic contacts the second round found on the calendar and recorded.
    organic_recorded: int = 0
    #: The same round once more, nothing new on the calendar: the steady state.
    third: SqlCount = field(default_factory=SqlCount)


#: Peers the owner met by themselves in the weeks before the second round (organic history).
SCENARIO_HISTORY = ("p03@corp.example", "p07@corp.example", "p11@corp.example")


def measure_plan_and_booking(url: str, policy_dir: str) -> ScenarioCounts:
    """Migrate an empty database at ``url``, register Alex, then count one ``plan_user`` round
    and one ``book_meeting`` of its first proposal, on the real store and the fake calendar.

    Then the realistic case, the owner's SECOND round a day later: their open meetings exist
    (the booked one, five approved proposals), the calendar has history (Alex met three peers
    by themselves the week before: new organic contacts) and the booked meeting's stakeholder
    accepted (the round follows the answer: one transition). And a THIRD round an hour later,
    nothing new anywhere: what most rounds cost.

    Imports goodwill lazily, so it measures whichever checkout is first on ``sys.path``.
    """
    from scheduler.app import booking, planning

    with _scenario(url, policy_dir) as (p, calendar, clock, user_id, counter):
        with counter.measure() as plan_count:
            run = planning.plan_user(p, user_id)
        assert run.plan is not None, f"the round did not plan: {run.error}"
        assert run.meeting_ids, "the round proposed nothing"
        with counter.measure() as booking_count:
            result = booking.book_meeting(p, run.meeting_ids[0])
        assert result.outcome.value == "booked", f"the booking did not go through: {result}"
        counts = ScenarioCounts(
            plan_count, booking_count, len(run.plan.proposals), len(run.plan.skipped)
        )
        _second_round(counts, p, calendar, clock, user_id, run.meeting_ids[0], counter)
        return counts


def measure_batch_booking(url: str, policy_dir: str) -> tuple[SqlCount, list[str]]:
    """The scenario's first round, then ONE ``book_meetings`` of every meeting it proposed
    (what the workers run): the batch's count and each meeting's outcome."""
    from scheduler.app import booking_batch, planning

    with _scenario(url, policy_dir) as (p, _calendar, _clock, user_id, counter):
        run = planning.plan_user(p, user_id)
        assert run.meeting_ids, f"the round proposed nothing: {run.error}"
        with counter.measure() as batch_count:
            results = booking_batch.book_meetings(p, run.meeting_ids)
        return batch_count, [r.outcome.value for _, r in results]


@contextmanager
def _scenario(url: str, policy_dir: str) -> Iterator[tuple[Any, Any, Any, int, SqlCounter]]:
    """Alex registered on a migrated database at ``url``, with the fake calendar: the
    pipeline, the calendar, the clock, Alex's id and a counter on the store's engine."""
    from datetime import UTC, datetime
    from pathlib import Path

    from scheduler.app import planning
    from scheduler.app.pipeline import Pipeline
    from scheduler.app.policies import PolicyBook
    from scheduler.core.clock import FixedClock
    from scheduler.store import SecretBox, Store, make_engine, migrate
    from tests.usecase.fakes import FakeCalendar

    directory = Path(policy_dir)
    (directory / "alex.yaml").write_text(scenario_policy())
    migrate(url)
    engine = make_engine(url)
    counter = SqlCounter(engine)
    try:
        store = Store(engine, secrets=SecretBox("sql counting"))
        clock = FixedClock(datetime(2027, 3, 1, 8, 0, tzinfo=UTC))  # a Monday morning
        calendar = FakeCalendar()
        p = Pipeline(
            store=store, clock=clock, backends=calendar.backend, policies=PolicyBook(directory)
        )
        planning.register_policies(p)
        user = store.get_user_by_email(SCENARIO_OWNER)  # also warms the pool: one connection
        assert user is not None, "the scenario's owner was not registered"
        yield p, calendar, clock, user.id, counter
    finally:
        engine.dispose()
        counter.close()


def _second_round(
    counts: ScenarioCounts,
    p: Any,
    calendar: Any,
    clock: Any,
    user_id: int,
    booked_id: int,
    counter: SqlCounter,
) -> None:
    from datetime import timedelta

    from scheduler.app import planning
    from scheduler.core.model import AttendeeStatus

    booked = p.store.get_meeting(booked_id)
    assert booked is not None
    assert booked.provider_event_id, "the booked meeting has no event"
    now = clock.now()
    for days, peer in enumerate(SCENARIO_HISTORY, start=2):
        start = now - timedelta(days=days)
        calendar.add_meeting(SCENARIO_OWNER, peer, start, start + timedelta(minutes=30))
    calendar.respond(booked.provider_event_id, AttendeeStatus.ACCEPTED)
    clock.advance(timedelta(days=1))
    before = p.store.last_contacts(user_id)
    with counter.measure() as second:
        run = planning.plan_user(p, user_id)
    assert run.error is None, f"the second round failed: {run.error}"
    after = p.store.last_contacts(user_id)
    followed = p.store.get_meeting(booked_id)
    assert followed is not None
    counts.second = second
    counts.followed_state = str(followed.state.value)
    counts.organic_recorded = len(set(after) - set(before))
    clock.advance(timedelta(hours=1))
    with counter.measure() as third:
        run = planning.plan_user(p, user_id)
    assert run.error is None, f"the third round failed: {run.error}"
    counts.third = third
