"""Reliability of the booking pipeline with real services: every check counts events AT THE
CALENDAR (the Google emulator's stored events), never only our database.

1. ``kill -9`` of a worker in the middle of ``events.insert``, with the Redis broker, the
   RabbitMQ broker and the embedded one (``goodwill serve`` killed and restarted): every
   approved meeting ends booked exactly once.
2. Two tick replicas on one database (SQLite and PostgreSQL): no user planned twice in a
   planning period, no meeting sent twice, one event per meeting.
3. 20% of calendar calls fail (500, 503, 429 + Retry-After, replies slower than the client's
   timeout): every meeting still ends booked, none twice.
4. Malformed policy files: those users are reported and skipped, everyone else is booked.

Worker processes run ``python -m scheduler`` with ``GOODWILL_*`` settings and share a
database (a SQLite file, or a PostgreSQL schema) with the test; the emulator runs in the test
process. The timings measured (kill to recovery) are printed; run with ``-s`` to see them.
"""

from __future__ import annotations

import http.client
import itertools
import random
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from scheduler.app import planning
from scheduler.core.states import MeetingState
from scheduler.entrypoints.bootstrap import App, bootstrap
from scheduler.entrypoints.runtime import Runtime, build_runtime
from scheduler.store import Store, make_engine, migrate
from tests.conftest import require_service
from tests.emulators.google_emulator import GoogleEmulator, make_fault
from tests.integration.reliability_support import (
    Deployment,
    Org,
    Processes,
    all_booked,
    all_meetings,
    check_calendars,
    iter_audit,
    service_account_file,
    state_summary,
    wait_until,
    write_org,
)
from workers.actors import Actors, declare_actors
from workers.broker import make_broker
from workers.tick import Tick

#: A dedicated Redis database (tests/integration/test_ops.py uses 15); flushed before and after.
REDIS_URL = "redis://127.0.0.1:6379/12"
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"

#: How long a held ``events.insert`` waits before it is applied: longer than the kill takes to
#: land, shorter than the booking lease, so the retry after the crash finds the killed attempt's
#: event already there (409 -> read back) - the "applied, reply lost" case.
HELD_INSERT_S = 1.5


@pytest.fixture
def emulator() -> Iterator[GoogleEmulator]:
    emu = GoogleEmulator(page_size=50).start()
    try:
        yield emu
    finally:
        emu.stop()
    assert emu.schema_violations == []


@pytest.fixture
def deployment(tmp_path: Path, emulator: GoogleEmulator) -> Deployment:
    """SQLite file shared by every process, small leases, the emulator as Google."""
    return Deployment(
        data_dir=tmp_path / "data",
        database_url=f"sqlite:///{(tmp_path / 'goodwill.db').as_posix()}",
        broker_url="embedded",
        policy_dir=tmp_path / "policies",
        emulator=emulator,
        service_account=service_account_file(tmp_path / "service-account.json"),
    )


def _store(url: str) -> tuple[Store, Engine]:
    """A migrated store for the test's own reads (its engine, to dispose of)."""
    engine = make_engine(url)
    migrate(engine)
    return Store(engine), engine


# -- 1. kill -9 in the middle of book_meeting ---------------------------------------------------


@dataclass(frozen=True)
class _Setup:
    broker_url: str
    service: str | None = None
    port: int = 0
    postgresql: bool = False


_SETUPS = {
    "redis": _Setup(REDIS_URL, "Redis", 6379),
    "rabbitmq": _Setup(AMQP_URL, "RabbitMQ", 5672),
    "embedded": _Setup("embedded"),
    "redis-postgresql": _Setup(REDIS_URL, "Redis", 6379, postgresql=True),
}


def _flush_redis() -> None:
    """Empty the dedicated database: queues, and the dead worker's ack sets."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.flushdb()
    finally:
        client.close()


@pytest.fixture
def pg_schema_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh schema in the session's PostgreSQL test database (created on demand)."""
    from tests.conftest_db import pg_schema

    with pg_schema(request.getfixturevalue("pg_database")) as url:
        yield url


@pytest.mark.parametrize(
    "kind",
    [
        pytest.param("redis", marks=pytest.mark.services),
        pytest.param("rabbitmq", marks=pytest.mark.services),
        "embedded",
        pytest.param("redis-postgresql", marks=pytest.mark.services),
    ],
)
def test_kill_9_mid_booking_books_every_meeting_exactly_once(
    kind: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    emulator: GoogleEmulator,
    deployment: Deployment,
) -> None:
    setup = _SETUPS[kind]
    if setup.service is not None:
        require_service(setup.service, setup.port)
    if setup.postgresql:
        deployment.database_url = request.getfixturevalue("pg_schema_url")
    deployment.broker_url = setup.broker_url
    if setup.broker_url == REDIS_URL:
        _flush_redis()
    org = write_org(deployment.policy_dir, emulator, users=3, peers=3)
    store, engine = _store(deployment.database_url)
    # Every insert is held before it is applied, so the kill lands inside the call.
    emulator.faults.queue("slow", times=100, delay_s=HELD_INSERT_S, path="/events", method="POST")
    procs = Processes(deployment.env(), tmp_path)
    tick: Tick | None = None
    broker: Any = None
    app: App | None = None
    try:
        if setup.broker_url == "embedded":
            role = "serve"  # tick + worker threads in one process, in-memory broker
        else:
            role = "worker"
            # The tick runs in the test process, on its own connection to the same database.
            app = bootstrap(deployment.settings())
            broker = make_broker(setup.broker_url, set_global=False)
            actors = declare_actors(broker, app.pipeline)
            broker.flush_all()
            tick = Tick(app.pipeline, actors, interval_s=deployment.tick_interval_s, holder="t")
            tick.start()
        first = procs.start(role)

        def diagnose() -> str:
            return f"{state_summary(store, org.owners)}\n{procs.logs()}"

        wait_until(
            lambda: any(f.kind == "slow" for f in emulator.faults.injected),
            timeout_s=30,
            what="the first events.insert",
            diagnose=diagnose,
        )
        first.kill9()
        emulator.faults.clear()  # from here on the calendar answers at once
        held = [f for f in emulator.faults.injected if f.kind == "slow"]
        procs.start(role)
        recovery_s = wait_until(
            lambda: all_booked(store, org.owners, org.expected_meetings),
            timeout_s=40,
            what="every meeting booked after the kill",
            diagnose=diagnose,
        )
    finally:
        if tick is not None:
            tick.stop()
        procs.close()
        if broker is not None:
            broker.flush_all()
            broker.close()
        if setup.broker_url == REDIS_URL:
            _flush_redis()
        if app is not None:
            app.engine.dispose()
        engine.dispose()

    check = check_calendars(emulator, store, org.owners, expected=org.expected_meetings)
    assert check.problems == []
    # The crash was real: a lease ran out and was re-driven, and the retry found the event the
    # killed attempt had created by its key (events.get), so no second invite went out.
    details = [d for _, d in iter_audit(store, check.meetings)]
    assert any("lease expired" in d for d in details), details
    assert any(d == "reconciled existing event" for d in details), details
    lookups = [p for m, p in emulator.calls if m == "GET" and "/events/" in p]
    assert len(lookups) >= len(held), (lookups, held)
    print(
        f"\n[reliability] kill -9 ({kind}): {len(held)} insert(s) in flight, "
        f"all {org.expected_meetings} meetings booked {recovery_s:.1f} s after the kill "
        f"(booking lease {deployment.booking_lease_s:.0f} s, tick {deployment.tick_interval_s} s)"
    )


# -- shared in-process pieces -------------------------------------------------------------------


class _CountingActor:
    """Forwards ``send`` to the real actor and logs (monotonic time, replica, argument)."""

    def __init__(self, actor: Any, replica: str, log: list[tuple[float, str, int]]) -> None:
        self._actor = actor
        self._replica = replica
        self._log = log
        self._lock = threading.Lock()

    def send(self, arg: int) -> Any:
        with self._lock:
            self._log.append((time.monotonic(), self._replica, arg))
        return self._actor.send(arg)


def _counting(
    actors: Actors, replica: str, logs: dict[str, list[tuple[float, str, int]]]
) -> Actors:
    return Actors(
        plan_user=_CountingActor(actors.plan_user, replica, logs["plan"]),
        book_meeting=_CountingActor(actors.book_meeting, replica, logs["book"]),
        sync_responses=_CountingActor(actors.sync_responses, replica, logs["sync"]),
    )


def _embedded_runtime(app: App) -> Runtime:
    runtime = build_runtime(app.settings, with_tick=False, app=app)
    runtime.start()
    return runtime


# -- 2. two tick replicas -----------------------------------------------------------------------


def test_two_tick_replicas_plan_and_book_once(
    db_url: str, tmp_path: Path, emulator: GoogleEmulator
) -> None:
    interval_s, plan_every_s, run_s = 0.4, 1.0, 4.5
    org = write_org(tmp_path / "policies", emulator, users=3, peers=3)
    deployment = Deployment(
        data_dir=tmp_path / "data",
        database_url=db_url,
        broker_url="embedded",
        policy_dir=org.policy_dir,
        emulator=emulator,
        service_account=service_account_file(tmp_path / "sa.json"),
        send_lease_s=30.0,  # nothing fails here: a meeting sent twice would be a double send
        booking_lease_s=30.0,
        tick_interval_s=interval_s,
    )
    settings = deployment.settings(plan_every_s=plan_every_s)
    # Free/busy answers slower than a tick period, as a queue wait would be: a plan_user or
    # book_meeting still in flight when the next tick comes must not be sent again.
    emulator.faults.queue("slow", times=1000, delay_s=interval_s * 1.5, path="/freeBusy")
    app_a = bootstrap(settings, auto_migrate=True)
    app_b = bootstrap(settings)  # a second replica: its own engine, policy cache and holder
    runtime = _embedded_runtime(app_a)
    logs: dict[str, list[tuple[float, str, int]]] = defaultdict(list)
    ticks = {
        "a": Tick(app_a.pipeline, _counting(runtime.actors, "a", logs), interval_s=interval_s),
        "b": Tick(app_b.pipeline, _counting(runtime.actors, "b", logs), interval_s=interval_s),
    }
    wins: list[tuple[float, float, str]] = []  # (before, after, replica)
    lost: list[str] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def replica(name: str) -> None:
        rng = random.Random(name)
        try:
            while not stop.is_set():
                before = time.monotonic()
                result = ticks[name].run_once()
                if result.won:
                    wins.append((before, time.monotonic(), name))
                else:
                    lost.append(name)
                stop.wait(rng.uniform(0.0, interval_s / 3))
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=replica, args=(n,), daemon=True) for n in ticks]
    started = time.monotonic()
    try:
        for t in threads:
            t.start()
        time.sleep(run_s)
        wait_until(
            lambda: all_booked(app_a.store, org.owners, org.expected_meetings),
            timeout_s=20,
            what="every meeting booked",
            diagnose=lambda: state_summary(app_a.store, org.owners),
        )
    finally:
        stop.set()
        for t in threads:
            t.join(10)
        runtime.drain(timeout_s=20)
        runtime.stop()
        app_b.engine.dispose()
        app_a.engine.dispose()
    elapsed = time.monotonic() - started
    assert errors == []

    # One winner per tick period: a second win in the same period would come back well within
    # the lease (0.9 x interval) of the previous win.
    wins.sort()
    for (b1, _, r1), (_, a2, r2) in itertools.pairwise(wins):
        assert a2 - b1 >= 0.9 * interval_s, f"two ticks in one period ({r1} then {r2})"
    assert len(wins) >= 5
    assert lost, "the replicas never competed for a tick"
    # Each user re-planned only once its round came due again (never twice in a period),
    # and planned more than once over the run, so both replicas had the chance to double up.
    plans: dict[int, list[float]] = defaultdict(list)
    for at, _, user_id in logs["plan"]:
        plans[user_id].append(at)
    assert len(plans) == len(org.owners)
    for user_id, times in plans.items():
        times.sort()
        assert len(times) >= 2, f"user {user_id} planned only once in {elapsed:.1f} s"
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert min(gaps) >= plan_every_s - 0.05, f"user {user_id} planned twice: {gaps}"
    # Every meeting sent for booking exactly once, across both replicas.
    sent = [meeting_id for _, _, meeting_id in logs["book"]]
    assert sorted(sent) == sorted(set(sent)), "a meeting was sent twice"
    check = check_calendars(emulator, app_a.store, org.owners, expected=org.expected_meetings)
    assert check.problems == []
    assert sorted(sent) == sorted(m.id for m in check.meetings)
    print(
        f"\n[reliability] two tick replicas on {db_url.split(':')[0]}: {len(wins)} tick(s) won "
        f"(a {sum(r == 'a' for *_, r in wins)}, b {sum(r == 'b' for *_, r in wins)}), "
        f"{len(lost)} lost, {len(logs['plan'])} plan sends, {len(sent)} book sends, "
        f"{elapsed:.1f} s"
    )


# -- 3. faults at the calendar ------------------------------------------------------------------


class _SteppingClock:
    """Wall time plus an offset the test can move forward.

    A planning round whose calendar read fails is retried 5 minutes later by design; the test
    jumps over that wait instead of sleeping through it.
    """

    def __init__(self) -> None:
        self._offset = timedelta()
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return datetime.now(UTC) + self._offset

    def advance(self, by: timedelta) -> None:
        with self._lock:
            self._offset += by


def test_calendar_faults_still_book_every_meeting_once(
    tmp_path: Path, emulator: GoogleEmulator, deployment: Deployment
) -> None:
    timeout_s = 0.4
    deployment.google_timeout_s = timeout_s
    deployment.booking_lease_s = 20.0
    deployment.send_lease_s = 20.0
    org = write_org(deployment.policy_dir, emulator, users=4, peers=4)
    # Slower than the client's timeout: the client gives up, the server still applies it.
    too_slow = timeout_s * 2.5
    # The first insert surely times out and lands anyway; then 20% of all calls fail at random.
    emulator.faults.queue("slow", delay_s=too_slow, path="/events", method="POST")
    emulator.faults.random(
        0.2,
        [
            make_fault("status", status=500),
            make_fault("status", status=503),
            make_fault("status", status=429, retry_after=1),
            make_fault("slow", delay_s=too_slow),
        ],
        seed=42,
    )
    clock = _SteppingClock()
    app = bootstrap(deployment.settings(), clock=clock, auto_migrate=True)
    # Retry quickly and without a small give-up budget: here we test loss and duplication,
    # not the retry budget (booking gives up after max_attempts by design).
    app.pipeline.retry_base_s = 0.1
    app.pipeline.retry_cap_s = 0.5
    app.pipeline.max_attempts = 60
    runtime = _embedded_runtime(app)
    tick = Tick(app.pipeline, runtime.actors, interval_s=0.2)
    skipped_s = 0.0
    started = time.monotonic()
    try:
        deadline = started + 40
        while not all_booked(app.store, org.owners, org.expected_meetings):
            assert time.monotonic() < deadline, state_summary(app.store, org.owners)
            tick.run_once()
            time.sleep(0.1)
            skipped_s += _skip_planning_backoff(app, org, clock)
    finally:
        emulator.faults.clear()
        runtime.drain(timeout_s=20)
        runtime.stop()
        app.engine.dispose()
    elapsed = time.monotonic() - started

    check = check_calendars(emulator, app.store, org.owners, expected=org.expected_meetings)
    assert check.problems == []
    # The faults were what the test says they were, and they reached the booking path.
    api_calls = [c for c in emulator.calls if c[1].startswith("/calendar/v3/")]
    drawn = [f for f in emulator.faults.injected if f.random]
    assert 0.15 <= len(drawn) / len(api_calls) <= 0.3, (len(drawn), len(api_calls))
    assert {f.status for f in drawn if f.kind == "status"} == {500, 503, 429}
    assert any(f.kind == "slow" for f in drawn)
    inserts = emulator.count("POST", "/events")
    assert inserts > org.expected_meetings, "no insert was ever retried"
    retried = [m for m in check.meetings if m.attempts > 1]
    assert retried, "no booking needed a retry"
    print(
        f"\n[reliability] calendar faults: {len(drawn)} of {len(api_calls)} API calls failed at "
        f"random; {inserts} inserts for {len(check.meetings)} meetings, {len(retried)} "
        f"retried (max {max(m.attempts for m in check.meetings)} attempts); planning back-off "
        f"skipped {skipped_s:.0f} s; {elapsed:.1f} s"
    )


#: ``plan_user`` retries a failed calendar read this much later (scheduler/booking.py).
_PLAN_RETRY = timedelta(seconds=300)


def _skip_planning_backoff(app: App, org: Org, clock: _SteppingClock) -> float:
    """When every user not yet planned waits for the retry of a failed round, jump to the
    nearest one; nothing else is moved on (no meeting may be mid-booking).

    A user whose round is in flight is never waiting like that: the tick's claim pushed its
    ``next_plan_at`` to claim + 300 s, past failure + 300 s. Jumping then would expire that
    claim and plan the user twice, so the clock stays.
    """
    now = clock.now()
    waits: list[timedelta] = []
    for owner in org.owners:
        user = app.store.get_user_by_email(owner)
        if user is None or user.next_plan_at is None:
            return 0.0
        if user.last_planned_at is not None:
            continue
        failures = [
            e.at
            for e in app.store.user_events(user.id, since=now - 2 * _PLAN_RETRY)
            if e.detail.startswith("calendar read failed")
        ]
        if not failures or user.next_plan_at - max(failures) > _PLAN_RETRY + timedelta(seconds=1):
            return 0.0  # planning in flight (or not tried yet)
        waits.append(user.next_plan_at - now)
    if not waits or min(waits) < timedelta(seconds=2):
        return 0.0
    if any(m.state == MeetingState.BOOKING for m in all_meetings(app.store, org.owners)):
        return 0.0
    by = min(waits) + timedelta(milliseconds=10)
    clock.advance(by)
    return by.total_seconds()


# -- 4. malformed policies ----------------------------------------------------------------------


def test_malformed_policies_are_reported_and_skipped_others_booked(
    tmp_path: Path, emulator: GoogleEmulator, deployment: Deployment
) -> None:
    org = write_org(deployment.policy_dir, emulator, users=3, peers=2)
    good, broken_later = org.owners[:2], org.owners[2]
    # Never valid: a YAML syntax error. Its owner must never be registered.
    never = "nobody@corp.example"
    emulator.add_calendar(never)
    never_path = deployment.policy_dir / "nobody.yaml"
    never_path.write_text(f"owner: {{email: {never}, name: No Body\nstakeholders: [\n")
    settings = deployment.settings()
    first = bootstrap(settings, auto_migrate=True)
    issues = planning.register_policies(first.pipeline)
    assert {i.file for i in issues} == {str(never_path)}
    assert first.store.get_user_by_email(never) is None
    assert first.store.get_user_by_email(broken_later) is not None
    first.engine.dispose()
    # Registered while valid, then broken (an unknown tier) before any process could plan it
    # with a good version in memory: the restarted service must report it, not plan it.
    broken_path = deployment.policy_dir / f"{broken_later.split('@')[0]}.yaml"
    broken_path.write_text(broken_path.read_text().replace("tier: peer", "tier: nosuchtier"))

    app = bootstrap(settings)
    runtime = _embedded_runtime(app)
    tick = Tick(app.pipeline, runtime.actors, interval_s=0.1)
    expected = sum(len(org.peers[o]) for o in good)
    try:
        deadline = time.monotonic() + 20
        while not (
            all_booked(app.store, good, expected)
            and all(
                (u := app.store.get_user_by_email(o)) is not None and u.last_planned_at
                for o in good
            )
            and app.store.users_with_policy_errors()
        ):
            assert time.monotonic() < deadline, state_summary(app.store, org.owners)
            tick.run_once()
            runtime.drain(timeout_s=10)
            time.sleep(0.1)
        issues = planning.register_policies(app.pipeline)
    finally:
        runtime.drain(timeout_s=10)
        runtime.stop()
        app.engine.dispose()

    assert {i.file for i in issues} == {str(never_path), str(broken_path)}
    reported = app.store.users_with_policy_errors()
    assert [u.email for u in reported] == [broken_later]
    assert reported[0].policy_error is not None
    assert "nosuchtier" in reported[0].policy_error
    assert app.store.get_user_by_email(never) is None
    # Skipped users: nothing in the database, nothing at their calendars.
    assert all_meetings(app.store, [broken_later]) == []
    assert emulator.events(broken_later, include_cancelled=True) == []
    assert emulator.events(never, include_cancelled=True) == []
    # Everyone else: booked exactly once, at the calendar.
    check = check_calendars(emulator, app.store, good, expected=expected)
    assert check.problems == []


# -- the emulator's fault modes these tests rely on ---------------------------------------------


def _status_of(emulator: GoogleEmulator, method: str, path: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", int(emulator.base_url.rsplit(":", 1)[1]))
    try:
        conn.request(method, path, body=b"{}" if method == "POST" else None)
        return conn.getresponse().status
    finally:
        conn.close()


def test_emulator_random_faults_fail_the_given_share_of_api_calls(
    emulator: GoogleEmulator,
) -> None:
    api = "/calendar/v3/calendars/primary/events"
    emulator.faults.random(0.25, [make_fault("status", status=503)], seed=1)
    emulator.faults.queue("status", status=500, path="/events")  # queued faults come first

    statuses = [_status_of(emulator, "GET", api) for _ in range(200)]
    tokens = [_status_of(emulator, "POST", "/token") for _ in range(20)]

    assert statuses[0] == 500
    # Unauthenticated: a call that draws no fault is answered 401.
    assert set(statuses[1:]) == {503, 401}
    assert 0.15 <= statuses.count(503) / 199 <= 0.35
    assert 503 not in tokens  # the token endpoint is never hit by the random mode
    injected = emulator.faults.injected
    assert [f.random for f in injected].count(False) == 1
    assert len(injected) == 1 + statuses.count(503)
    emulator.faults.clear()
    assert {_status_of(emulator, "GET", api) for _ in range(20)} == {401}


def test_emulator_ignores_a_request_whose_body_never_arrived(emulator: GoogleEmulator) -> None:
    port = int(emulator.base_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(
            b"POST /calendar/v3/calendars/primary/events HTTP/1.1\r\nHost: x\r\n"
            b'Content-Type: application/json\r\nContent-Length: 500\r\n\r\n{"summary"'
        )
        sock.shutdown(socket.SHUT_WR)  # the client died mid-body
        assert sock.recv(100) == b""  # no answer: the request never happened
    assert emulator.calls == []
