"""The store on real databases: every test runs on SQLite and on PostgreSQL (``db_url``)."""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import StatementError

from scheduler.core.errors import ConfigurationError
from scheduler.core.states import IllegalTransition, MeetingState
from scheduler.settings import Settings
from scheduler.store import (
    ContactSource,
    CredentialDecryptError,
    NewMeeting,
    SecretBox,
    StakeholderStatus,
    Store,
    UnknownMeeting,
    at_head,
    make_engine,
    migrate,
)
from scheduler.store.tables import Base
from tests.concurrency import run_together

S = MeetingState
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday
TICK_PERIOD = timedelta(seconds=10)


class BarrierLike(Protocol):
    def wait(self) -> int: ...
    def abort(self) -> None: ...


class QueueLike(Protocol):
    def put(self, item: object) -> None: ...


@pytest.fixture
def store(engine: Engine) -> Store:
    return Store(engine, secrets=SecretBox("test secret key"))


def proposal(
    key: str, *, day: int = 3, email: str = "sam@corp.example", **kw: object
) -> NewMeeting:
    start = T0 + timedelta(days=day)
    fields: dict[str, object] = {
        "stakeholder_email": email,
        "kind": "coffee",
        "start": start,
        "end": start + timedelta(minutes=30),
        "mode": "auto",
        "idempotency_key": key,
        "provider": "google",
        "reason": "both free, inside Alex's preferred window",
    }
    fields.update(kw)
    return NewMeeting(**fields)  # type: ignore[arg-type]


def new_user(store: Store, email: str = "alex@corp.example") -> int:
    return store.upsert_user(email, f"policies/{email}.yaml", "hash-1", now=T0)


def approved_meeting(store: Store, key: str = "m1") -> int:
    user_id = new_user(store)
    [meeting_id] = store.add_meetings(user_id, [proposal(key, state=S.APPROVED)], now=T0)
    return meeting_id


# -- migrations ------------------------------------------------------------------------------


def test_migrate_brings_an_empty_database_to_head(db_url: str) -> None:
    assert at_head(db_url) is False
    migrate(db_url)
    assert at_head(db_url) is True
    migrate(db_url)  # a second run finds nothing to do
    assert at_head(db_url) is True


def test_migration_creates_exactly_the_modelled_schema(engine: Engine) -> None:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diffs = compare_metadata(context, Base.metadata)
        tables = set(inspect(conn).get_table_names())
    assert diffs == []
    assert tables == set(Base.metadata.tables) | {"alembic_version"}


def test_sqlite_runs_in_wal_with_a_busy_timeout(engine: Engine) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite pragmas")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_sqlite_write_transactions_take_the_lock_up_front(engine: Engine) -> None:
    # BEGIN IMMEDIATE: a second writer cannot even start while the first one is open.
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite locking")
    assert engine.url.database is not None
    other = sqlite3.connect(engine.url.database, timeout=0.05, isolation_level=None)
    try:
        with engine.begin() as first:
            first.exec_driver_sql("SELECT 1")  # a read only: a deferred BEGIN would lock nothing
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
        other.execute("BEGIN IMMEDIATE")  # free again after commit
        other.execute("ROLLBACK")
    finally:
        other.close()


def test_sqlite_readers_do_not_wait_for_a_writer(store: Store, engine: Engine) -> None:
    # Reads start a deferred transaction: under WAL they see the last commit and never block.
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite locking")
    mid = approved_meeting(store)
    assert engine.url.database is not None
    writer = sqlite3.connect(engine.url.database, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("UPDATE meetings SET reason = 'uncommitted'")
        started = time.monotonic()
        meeting = store.get_meeting(mid)
        assert time.monotonic() - started < 1.0  # a locking read would wait busy_timeout (5 s)
        assert meeting is not None
        assert meeting.reason != "uncommitted"
        assert store.counts_by_state()["approved"] == 1
    finally:
        writer.execute("ROLLBACK")
        writer.close()


# -- users -----------------------------------------------------------------------------------


def test_users_are_upserted_by_email_and_planned_when_due(store: Store) -> None:
    user_id = store.upsert_user("Alex@Corp.example", "policies/alex.yaml", "h1", now=T0)
    user = store.get_user(user_id)
    assert user is not None
    assert (user.email, user.policy_hash, user.next_plan_at) == ("alex@corp.example", "h1", T0)
    assert store.get_user_by_email("ALEX@corp.example") == user
    assert store.get_user(user_id + 100) is None

    later = T0 + timedelta(hours=1)
    store.set_next_plan(user_id, T0 + timedelta(days=1), planned_at=later)
    assert store.users_due(later, 10) == []
    # Same file again: nothing moves. An edited file is planned at once.
    assert store.upsert_user("alex@corp.example", "policies/alex.yaml", "h1", now=later) == user_id
    assert store.users_due(later, 10) == []
    assert store.upsert_user("alex@corp.example", "policies/a.yaml", "h2", now=later) == user_id
    [due] = store.users_due(later, 10)
    assert (due.id, due.policy_path, due.next_plan_at, due.last_planned_at) == (
        user_id,
        "policies/a.yaml",
        later,
        later,
    )


def test_users_due_orders_most_overdue_first_and_limits(store: Store) -> None:
    ids = [new_user(store, f"u{i}@corp.example") for i in range(3)]
    for i, user_id in enumerate(ids):
        store.set_next_plan(user_id, T0 - timedelta(hours=i))
    assert [u.id for u in store.users_due(T0, 2)] == [ids[2], ids[1]]
    assert store.users_due(T0 - timedelta(hours=3), 10) == []


def test_claiming_users_for_planning_hides_them_until_the_retry(store: Store) -> None:
    first, second = new_user(store, "a@corp.example"), new_user(store, "b@corp.example")
    store.set_next_plan(second, T0 + timedelta(hours=1))
    assert store.claim_users_for_planning(T0, 10, retry_s=300) == [first]
    assert store.claim_users_for_planning(T0 + timedelta(seconds=299), 10, retry_s=300) == []
    # The plan message was lost: the user comes due again after the retry delay.
    assert store.claim_users_for_planning(T0 + timedelta(seconds=300), 10, retry_s=300) == [first]
    later = T0 + timedelta(hours=2)
    assert store.claim_users_for_planning(later, 1, retry_s=300) == [first]
    assert store.claim_users_for_planning(later, 1, retry_s=300) == [second]


def test_policy_errors_are_recorded_and_cleared(store: Store) -> None:
    user_id = new_user(store)
    store.record_policy_error(user_id, "policies/alex.yaml:3: tiers.mentor.every: not a duration")
    [broken] = store.users_with_policy_errors()
    assert broken.policy_error is not None
    assert "not a duration" in broken.policy_error
    store.record_policy_error(user_id, None)
    assert store.users_with_policy_errors() == []


# -- meetings --------------------------------------------------------------------------------


def test_meeting_times_come_back_as_the_same_instant_in_utc(store: Store) -> None:
    user_id = new_user(store)
    start = datetime(2026, 3, 30, 10, 30, tzinfo=ZoneInfo("Europe/London"))  # BST, UTC+1
    [meeting_id] = store.add_meetings(
        user_id, [proposal("tz", start=start, end=start + timedelta(minutes=30))], now=T0
    )
    meeting = store.get_meeting(meeting_id)
    assert meeting is not None
    assert meeting.start == start == datetime(2026, 3, 30, 9, 30, tzinfo=UTC)
    assert meeting.start.tzinfo is UTC
    assert meeting.end.tzinfo is UTC
    assert (meeting.start.hour, meeting.created_at) == (9, T0)


def test_naive_datetimes_are_refused(store: Store) -> None:
    user_id = new_user(store)
    naive = datetime(2026, 3, 5, 10, 0)
    with pytest.raises(StatementError, match="naive datetime"):
        store.add_meetings(
            user_id, [proposal("naive", start=naive, end=naive + timedelta(hours=1))], now=T0
        )


def test_the_same_idempotency_key_is_written_once(store: Store) -> None:
    user_id = new_user(store)
    first = store.add_meetings(user_id, [proposal("k1"), proposal("k2", day=4)], now=T0)
    again = store.add_meetings(
        user_id, [proposal("k2", day=9), proposal("k1"), proposal("k3", day=5)], now=T0
    )
    assert len(set(first)) == 2
    assert again[:2] == [first[1], first[0]]
    assert again[2] not in first
    assert len(store.open_meetings(user_id)) == 3
    # The repeat changed nothing: k2 still has its first slot and one "created" audit row.
    k2 = store.get_meeting(first[1])
    assert k2 is not None
    assert k2.start == T0 + timedelta(days=4)
    assert [e.detail for e in store.audit_trail(first[1])] == ["created"]


def test_new_meetings_must_start_proposed_or_approved_and_end_after_start(store: Store) -> None:
    user_id = new_user(store)
    with pytest.raises(ValueError, match="booked"):
        store.add_meetings(user_id, [proposal("x", state=S.BOOKED)], now=T0)
    with pytest.raises(ValueError, match="ends before"):
        store.add_meetings(user_id, [proposal("y", end=T0)], now=T0)
    assert store.open_meetings(user_id) == []


def test_transition_is_a_compare_and_set_with_an_audit_row(store: Store) -> None:
    user_id = new_user(store)
    [mid] = store.add_meetings(user_id, [proposal("k1")], now=T0)
    later = T0 + timedelta(minutes=5)

    assert store.transition(mid, S.APPROVED, actor="user:alex", now=later, expect=S.PROPOSED)
    # A second approver read "proposed" too: its compare-and-set finds "approved" and loses.
    assert not store.transition(mid, S.CANCELLED, actor="user:bo", now=later, expect=S.PROPOSED)

    meeting = store.get_meeting(mid)
    assert meeting is not None
    assert (meeting.state, meeting.updated_at) == (S.APPROVED, later)
    trail = store.audit_trail(mid)
    assert [(e.actor, e.from_state, e.to_state) for e in trail] == [
        ("planner", None, "proposed"),
        ("user:alex", "proposed", "approved"),
    ]
    assert trail[1].at == later
    assert trail[1].user_id == user_id


def test_transition_sets_extra_fields_and_refuses_unknown_ones(store: Store) -> None:
    mid = approved_meeting(store)
    claimed = store.claim_for_booking(mid, T0, 60)
    assert claimed is not None
    assert store.transition(
        mid, S.BOOKED, actor="worker", now=T0, provider_event_id="evt-1", detail="created"
    )
    meeting = store.get_meeting(mid)
    assert meeting is not None
    assert (meeting.state, meeting.provider_event_id, meeting.lease_until) == (
        S.BOOKED,
        "evt-1",
        None,  # leaving booking drops the lease
    )
    with pytest.raises(TypeError, match="user_id"):
        store.transition(mid, S.ACCEPTED, actor="sync", now=T0, user_id=2)


def test_illegal_transitions_are_refused_and_change_nothing(store: Store) -> None:
    user_id = new_user(store)
    [mid] = store.add_meetings(user_id, [proposal("k1")], now=T0)
    with pytest.raises(IllegalTransition, match="proposed to booked"):
        store.transition(mid, S.BOOKED, actor="worker", now=T0)
    with pytest.raises(IllegalTransition, match="completed to approved"):
        store.transition(mid, S.APPROVED, actor="worker", now=T0, expect=S.COMPLETED)
    meeting = store.get_meeting(mid)
    assert meeting is not None
    assert meeting.state is S.PROPOSED
    assert len(store.audit_trail(mid)) == 1
    with pytest.raises(UnknownMeeting):
        store.transition(mid + 99, S.APPROVED, actor="worker", now=T0)


def test_a_meeting_walks_its_whole_life(store: Store) -> None:
    user_id = new_user(store)
    [mid] = store.add_meetings(user_id, [proposal("k1")], now=T0)
    assert store.transition(mid, S.APPROVED, actor="user", now=T0)
    assert store.claim_for_booking(mid, T0, 60) is not None
    path = [S.BOOKED, S.TENTATIVE, S.ACCEPTED, S.DECLINED, S.ACCEPTED, S.COMPLETED]
    for target in path:
        assert store.transition(mid, target, actor="sync", now=T0)
    trail = store.audit_trail(mid)
    assert [e.to_state for e in trail] == ["proposed", "approved", "booking", *path]
    with pytest.raises(IllegalTransition, match="terminal"):
        store.transition(mid, S.CANCELLED, actor="user", now=T0)


def test_queries_by_state_period_and_openness(store: Store) -> None:
    user_id = new_user(store)
    other = new_user(store, "bo@corp.example")
    ids = store.add_meetings(user_id, [proposal(f"k{d}", day=d) for d in (1, 2, 3)], now=T0)
    store.add_meetings(other, [proposal("other", day=2)], now=T0)
    store.transition(ids[0], S.CANCELLED, actor="user", now=T0)

    assert [m.id for m in store.open_meetings(user_id)] == ids[1:]
    assert [m.id for m in store.meetings_by_state(S.CANCELLED)] == [ids[0]]
    day2 = T0 + timedelta(days=2)
    # Half-open overlap: a window ending exactly at a meeting's start does not include it.
    assert [m.id for m in store.meetings_between(user_id, day2 - timedelta(hours=1), day2)] == []
    window = store.meetings_between(user_id, T0, day2 + timedelta(minutes=1))
    assert [m.id for m in window] == ids[:2]
    only_open = store.meetings_between(
        user_id, T0, day2 + timedelta(minutes=1), states=[S.PROPOSED]
    )
    assert [m.id for m in only_open] == [ids[1]]

    counts = store.counts_by_state()
    assert set(counts) == {s.value for s in S}
    assert (counts["proposed"], counts["cancelled"], counts["booked"]) == (3, 1, 0)


# -- booking leases --------------------------------------------------------------------------


def test_concurrent_claims_have_exactly_one_winner(store: Store) -> None:
    user_id = new_user(store)
    ids = store.add_meetings(
        user_id, [proposal(f"k{i}", day=i + 1, state=S.APPROVED) for i in range(10)], now=T0
    )
    winners: dict[int, list[int]] = defaultdict(list)
    lock = threading.Lock()

    def work(worker: int, barrier: threading.Barrier) -> None:
        for mid in ids:
            barrier.wait()
            if store.claim_for_booking(mid, T0, 60, actor=f"w{worker}") is not None:
                with lock:
                    winners[mid].append(worker)

    run_together(8, work)
    assert {mid: len(w) for mid, w in winners.items()} == dict.fromkeys(ids, 1)
    for mid in ids:
        meeting = store.get_meeting(mid)
        assert meeting is not None
        assert (meeting.state, meeting.attempts) == (S.BOOKING, 1)
        assert [e.detail for e in store.audit_trail(mid)].count("claimed") == 1


def test_an_expired_lease_is_re_driven_by_the_tick(store: Store) -> None:
    mid = approved_meeting(store)
    # The tick sends it once, then not again while the message may still be queued.
    assert store.approved_needing_send(T0, 10, send_lease_s=30) == [mid]
    assert store.approved_needing_send(T0 + timedelta(seconds=29), 10, send_lease_s=30) == []
    assert store.approved_needing_send(T0 + timedelta(seconds=30), 10, send_lease_s=30) == [mid]

    claimed = store.claim_for_booking(mid, T0 + timedelta(seconds=31), lease_s=60)
    assert claimed is not None
    assert claimed.attempts == 1
    lease_end = T0 + timedelta(seconds=91)
    assert claimed.lease_until == lease_end
    before = lease_end - timedelta(seconds=1)
    assert store.approved_needing_send(before, 10) == []
    assert store.claim_for_booking(mid, before, 60) is None

    # The worker died: once the lease ends the tick puts the job back and sends it again.
    assert store.approved_needing_send(lease_end, 10, send_lease_s=30) == [mid]
    meeting = store.get_meeting(mid)
    assert meeting is not None
    assert meeting.state is S.APPROVED
    assert "re-drive" in store.audit_trail(mid)[-1].detail
    again = store.claim_for_booking(mid, lease_end + timedelta(seconds=1), 60)
    assert again is not None
    assert again.attempts == 2
    # The dead worker's lease is gone for good; the new holder may renew.
    assert not store.renew_lease(mid, lease_end, 60, attempt=1)
    assert store.renew_lease(mid, lease_end + timedelta(seconds=2), 60, attempt=2)


def test_a_worker_can_reclaim_an_expired_booking_directly(store: Store) -> None:
    mid = approved_meeting(store)
    assert store.claim_for_booking(mid, T0, 10) is not None
    assert store.claim_for_booking(mid, T0 + timedelta(seconds=9), 10) is None
    reclaimed = store.claim_for_booking(mid, T0 + timedelta(seconds=10), 10)
    assert reclaimed is not None
    assert reclaimed.attempts == 2
    assert "re-claimed" in store.audit_trail(mid)[-1].detail


def test_a_stale_worker_cannot_overwrite_the_new_claimants_result(store: Store) -> None:
    # Given worker A claimed (attempt 1), stalled past its lease, and B re-claimed (attempt 2)
    mid = approved_meeting(store)
    first = store.claim_for_booking(mid, T0, 10)
    assert first is not None
    second = store.claim_for_booking(mid, T0 + timedelta(seconds=10), 10)
    assert second is not None
    # When A finally finishes and reports failure with its old claim number
    stale = store.transition(
        mid, S.FAILED, actor="worker", now=T0 + timedelta(seconds=11),
        expect=S.BOOKING, attempt=first.attempts, last_error="timeout",
    )  # fmt: skip
    # Then nothing is written, and B's result lands
    assert stale is False
    assert store.get_meeting(mid).state == S.BOOKING
    assert store.transition(
        mid, S.BOOKED, actor="worker", now=T0 + timedelta(seconds=12),
        expect=S.BOOKING, attempt=second.attempts, provider_event_id="ev-1",
    )  # fmt: skip
    assert store.get_meeting(mid).state == S.BOOKED


def test_a_retry_waits_for_next_attempt_at(store: Store) -> None:
    mid = approved_meeting(store)
    assert store.claim_for_booking(mid, T0, 60) is not None
    retry_at = T0 + timedelta(minutes=10)
    assert store.transition(
        mid, S.APPROVED, actor="worker", now=T0, next_attempt_at=retry_at, last_error="503"
    )
    assert store.approved_needing_send(retry_at - timedelta(seconds=1), 10) == []
    assert store.claim_for_booking(mid, retry_at - timedelta(seconds=1), 60) is None
    assert store.approved_needing_send(retry_at, 10) == [mid]
    assert store.claim_for_booking(mid, retry_at, 60) is not None


def test_done_and_unknown_meetings_are_not_claimed(store: Store) -> None:
    mid = approved_meeting(store)
    assert store.transition(mid, S.CANCELLED, actor="user", now=T0)
    assert store.claim_for_booking(mid, T0, 60) is None
    assert store.claim_for_booking(mid + 99, T0, 60) is None
    assert store.approved_needing_send(T0, 10) == []


def test_postgres_skips_rows_another_transaction_holds(store: Store, engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("FOR UPDATE SKIP LOCKED is PostgreSQL's")
    user_id = new_user(store)
    locked, free = store.add_meetings(
        user_id, [proposal("a", state=S.APPROVED), proposal("b", day=4, state=S.APPROVED)], now=T0
    )
    with engine.connect() as other, other.begin():
        other.execute(text("SELECT id FROM meetings WHERE id = :id FOR UPDATE"), {"id": locked})
        assert store.approved_needing_send(T0, 10) == [free]
    assert store.approved_needing_send(T0, 10) == [locked]


# -- the tick --------------------------------------------------------------------------------


def test_tick_lease_has_one_winner_per_period_among_four_replicas(store: Store) -> None:
    rounds, period = 40, timedelta(seconds=10)
    wins: Counter[int] = Counter()
    holders: dict[int, str] = {}
    lock = threading.Lock()

    def replica(i: int, barrier: threading.Barrier) -> None:
        for r in range(rounds):
            barrier.wait()
            # Clocks differ a little between replicas; all read a time inside period r.
            now = T0 + r * period + timedelta(milliseconds=7 * i)
            if store.try_acquire_tick(f"replica-{i}", now, period.total_seconds()):
                with lock:
                    wins[r] += 1
                    holders[r] = f"replica-{i}"

    run_together(4, replica)
    assert [wins[r] for r in range(rounds)] == [1] * rounds
    last = store.last_tick()
    assert last is not None
    assert last[0] == holders[rounds - 1]


def _tick_replica(
    url: str, index: int, rounds: int, barrier: BarrierLike, results: QueueLike
) -> None:
    """One replica process: compete for the tick once per period (runs in a spawned child)."""
    engine = make_engine(url)
    store = Store(engine)
    won = []
    try:
        for r in range(rounds):
            barrier.wait()
            now = T0 + r * TICK_PERIOD + timedelta(milliseconds=7 * index)
            if store.try_acquire_tick(f"process-{index}", now, TICK_PERIOD.total_seconds()):
                won.append(r)
        results.put((index, won))
    except BaseException as exc:
        results.put((index, repr(exc)))
        barrier.abort()
    finally:
        engine.dispose()


@pytest.mark.slow
def test_tick_lease_has_one_winner_per_period_among_four_processes(engine: Engine) -> None:
    rounds, replicas = 25, 4
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(replicas, timeout=60), context.Queue()
    url = engine.url.render_as_string(hide_password=False)
    processes = [
        context.Process(target=_tick_replica, args=(url, i, rounds, barrier, results))
        for i in range(replicas)
    ]
    for p in processes:
        p.start()
    outcomes = dict(results.get(timeout=120) for _ in processes)
    for p in processes:
        p.join(30)
    failures = {i: o for i, o in outcomes.items() if isinstance(o, str)}
    assert failures == {}
    wins = Counter(r for won in outcomes.values() for r in won)
    assert [wins[r] for r in range(rounds)] == [1] * rounds


def test_tick_lease_is_not_won_again_before_it_ends(store: Store) -> None:
    assert store.last_tick() is None
    assert store.try_acquire_tick("a", T0, 10)
    assert not store.try_acquire_tick("a", T0 + timedelta(seconds=9), 10)
    assert not store.try_acquire_tick("b", T0 + timedelta(seconds=9.999), 10)
    assert store.try_acquire_tick("b", T0 + timedelta(seconds=10), 10)
    assert store.last_tick() == ("b", T0 + timedelta(seconds=10))


# -- contacts and etiquette ------------------------------------------------------------------


def test_contacts_keep_the_latest_meeting_per_stakeholder(store: Store) -> None:
    user_id = new_user(store)
    other = new_user(store, "bo@corp.example")
    store.record_contact(
        user_id, "Sam@Corp.example", T0 - timedelta(days=30), ContactSource.ORGANIC
    )
    store.record_contact(
        user_id, "sam@corp.example", T0 - timedelta(days=2), ContactSource.GOODWILL
    )
    store.record_contact(user_id, "sam@corp.example", T0 - timedelta(days=2), ContactSource.ORGANIC)
    store.record_contact(user_id, "kim@corp.example", T0 - timedelta(days=9), ContactSource.ORGANIC)
    store.record_contact(other, "sam@corp.example", T0, ContactSource.ORGANIC)
    assert store.last_contacts(user_id) == {
        "sam@corp.example": T0 - timedelta(days=2),
        "kim@corp.example": T0 - timedelta(days=9),
    }
    with pytest.raises(ValueError, match="lunch"):
        store.record_contact(user_id, "x@corp.example", T0, "lunch")  # type: ignore[arg-type]


def test_stakeholder_status_defaults_and_upserts(store: Store) -> None:
    user_id = new_user(store)
    assert store.get_stakeholder_status(user_id, "sam@corp.example") == StakeholderStatus(
        user_id, "sam@corp.example"
    )
    declined = StakeholderStatus(
        user_id,
        "Sam@corp.example",
        unanswered_in_row=0,
        backoff_until=T0 + timedelta(weeks=4),
        last_declined_at=T0,
    )
    store.save_stakeholder_status(declined)
    paused = StakeholderStatus(
        user_id, "sam@corp.example", paused_reason="on leave", paused_until=T0 + timedelta(days=60)
    )
    store.save_stakeholder_status(paused)
    assert store.get_stakeholder_status(user_id, "SAM@corp.example") == paused
    assert store.stakeholder_statuses(user_id) == {"sam@corp.example": paused}


# -- credentials -----------------------------------------------------------------------------

GRANT = b'{"refresh_token": "1//0g-very-secret-refresh-token", "scope": "calendar"}'


def test_credentials_are_encrypted_at_rest(store: Store, engine: Engine) -> None:
    store.save_credential("Alex@corp.example", "google", GRANT, now=T0)
    assert store.load_credential("alex@corp.example", "google") == GRANT
    with engine.connect() as conn:
        raw = conn.execute(text("SELECT ciphertext FROM credentials")).scalar_one()
    raw = bytes(raw)
    assert GRANT not in raw
    assert b"very-secret" not in raw
    assert b"alex" not in raw
    assert len(raw) > len(GRANT)


def test_a_credential_cannot_be_read_with_another_key_or_on_another_row(
    store: Store, engine: Engine
) -> None:
    store.save_credential("alex@corp.example", "google", GRANT, now=T0)
    store.save_credential("bo@corp.example", "google", b"bo's grant", now=T0)
    other_key = Store(engine, secrets=SecretBox("another key"))
    with pytest.raises(CredentialDecryptError, match="GOODWILL_SECRET_KEY"):
        other_key.load_credential("alex@corp.example", "google")
    # Rotation: the new key reads old tokens while the old one is listed.
    rotated = Store(engine, secrets=SecretBox("new key", old_secrets=("test secret key",)))
    assert rotated.load_credential("alex@corp.example", "google") == GRANT
    # Copying Alex's token onto Bo's row does not hand Bo's connector Alex's grant.
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE credentials SET ciphertext = (SELECT ciphertext FROM credentials "
                "WHERE user_email = 'alex@corp.example') WHERE user_email = 'bo@corp.example'"
            )
        )
    with pytest.raises(CredentialDecryptError, match="not the one"):
        store.load_credential("bo@corp.example", "google")
    with pytest.raises(ConfigurationError, match="SECRET_KEY"):
        Store(engine).load_credential("alex@corp.example", "google")


def test_revoked_credentials_are_listed_until_reconnected(store: Store) -> None:
    store.save_credential("alex@corp.example", "microsoft", GRANT, now=T0)
    assert not store.mark_credential_revoked("nobody@corp.example", "google", "x", now=T0)
    assert store.mark_credential_revoked("alex@corp.example", "microsoft", "invalid_grant", now=T0)
    assert store.load_credential("alex@corp.example", "microsoft") is None
    [revoked] = store.revoked_credentials()
    assert (revoked.user_email, revoked.provider, revoked.reason) == (
        "alex@corp.example",
        "microsoft",
        "invalid_grant",
    )
    store.save_credential("alex@corp.example", "microsoft", b"new grant", now=T0)
    assert store.revoked_credentials() == []
    assert store.load_credential("alex@corp.example", "microsoft") == b"new grant"
    assert store.load_credential("alex@corp.example", "google") is None


def test_store_ping_and_record_event(store: Store) -> None:
    store.ping()
    mid = approved_meeting(store)
    store.record_event(now=T0, actor="planner", detail="skipped: calendar hidden", meeting_id=mid)
    assert store.audit_trail(mid)[-1].detail == "skipped: calendar hidden"


def test_secret_box_is_built_from_settings_and_needs_a_key() -> None:
    key = "1V1fya5vDuP62GAywlsf2Y9IYfTu7xDIsjIhzkz5A1M="  # goodwill secret
    box = SecretBox.from_settings(Settings(_env_file=None, secret_key=key))
    token = box.encrypt(GRANT, context="alex@corp.example google")
    assert SecretBox(key).decrypt(token, context="alex@corp.example google") == GRANT
    with pytest.raises(ConfigurationError, match="GOODWILL_SECRET_KEY"):
        SecretBox.from_settings(Settings(_env_file=None))
    with pytest.raises(ConfigurationError, match="empty"):
        SecretBox("")


def test_rotation_re_encrypts_under_the_new_key() -> None:
    token = SecretBox("old").encrypt(GRANT, context="c")
    rotated = SecretBox("new", old_secrets=("old",)).rotate(token)
    assert SecretBox("new").decrypt(rotated, context="c") == GRANT
    with pytest.raises(CredentialDecryptError):
        SecretBox("old").decrypt(rotated, context="c")
