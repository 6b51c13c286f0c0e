"""Issue 13: the hot store statements cost what they return, not the number of users.

- Migration 0009 (the tick's and the claims' indexes) upgrades and downgrades, on SQLite and
  PostgreSQL, keeping the rows.
- The rewritten reads return what their plain conditions say, on both backends, with a case
  for every branch: a booking's re-check (by stakeholder, by owner, by group attendee, the
  owner as someone else's stakeholder), the tick's sends (approved meetings and expired leases
  under one limit, held owners left out) and the planning claims (never planned, then due),
  and the planning round's one-statement write (group attendees, audit rows in order).
- On PostgreSQL, with many other owners' meetings in the table, a booking's re-check and a
  round's meeting read touch a number of ``meetings`` and ``users`` rows bounded by what
  involves their people (``EXPLAIN ANALYZE``), not the table, with the values' plans and with
  the generic plans PostgreSQL may keep for prepared statements; the tick's send scan reads the due
  meetings, not the backlog in flight before them (migration 0011). Counts, not timings.
"""

from __future__ import annotations

import re
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alembic import command
from sqlalchemy import Engine, event, insert, inspect, text, update

from scheduler.core.states import OPEN_STATES, MeetingState
from scheduler.store import Meeting, NewMeeting, Store, make_engine, migrate
from scheduler.store.migrations import alembic_config, at_head
from scheduler.store.tables import MeetingRow, UserRow
from tests.concurrency import run_together

S = MeetingState
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday
SLOT = T0 + timedelta(days=3)
HALF = timedelta(minutes=30)
END = SLOT + HALF
ALEX, SAM, KIM, JO = "alex@corp.example", "sam@corp.example", "kim@corp.example", "jo@corp.example"
LEE, MAX = "lee@corp.example", "max@corp.example"
_HOLDING = (S.BOOKING, S.BOOKED, S.ACCEPTED, S.TENTATIVE)
NEW_INDEXES = {
    "meetings": {"ix_meetings_state_id"},
    "users": {"ix_users_next_plan_at_id", "ix_users_policy_missing_since", "ix_users_paused_until"},
}
OLD_INDEXES = {
    "meetings": {"ix_meetings_state_next_attempt_at"},
    "users": {"ix_users_next_plan_at"},
}


@pytest.fixture
def store(engine: Engine) -> Store:
    return Store(engine)


def proposal(key: str, *, email: str = SAM, start: datetime = SLOT, **kw: Any) -> NewMeeting:
    fields: dict[str, Any] = {
        "stakeholder_email": email, "kind": "coffee", "start": start,
        "end": start + timedelta(minutes=30), "mode": "auto", "idempotency_key": key,
        "provider": "google", "reason": "both free", "state": S.APPROVED,
    }  # fmt: skip
    fields.update(kw)
    return NewMeeting(**fields)


def user(store: Store, email: str) -> int:
    return store.upsert_user(email, f"policies/{email}.yaml", "h1", now=T0)


def meeting(store: Store, owner: int, key: str, state: MeetingState, **kw: Any) -> int:
    """A meeting walked to ``state`` the legal way (approved → booking → booked → …)."""
    first = S.PROPOSED if state in (S.PROPOSED, S.CANCELLED) and "group" not in key else S.APPROVED
    [mid] = store.add_meetings(owner, [proposal(key, state=first, **kw)], now=T0)
    if state in (S.PROPOSED, S.APPROVED):
        return mid
    if state == S.CANCELLED:
        assert store.transition(mid, S.CANCELLED, actor="t", now=T0, expect=first)
        return mid
    claim = store.claim_for_booking(mid, T0, 60)
    assert claim is not None
    if state == S.BOOKING:
        return mid
    assert store.transition(mid, S.BOOKED, actor="t", now=T0, provider_event_id=key)
    if state != S.BOOKED:
        assert store.transition(mid, state, actor="t", now=T0, expect=S.BOOKED)
    return mid


# -- migration 0009 ------------------------------------------------------------------------------


def _index_names(engine: Engine, table: str) -> set[str]:
    with engine.connect() as conn:
        return {str(i["name"]) for i in inspect(conn).get_indexes(table)}


def _downgrade(engine: Engine, revision: str) -> None:
    with engine.begin() as connection:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def test_migration_0009_upgrades_and_downgrades_keeping_the_rows(db_url: str) -> None:
    migrate(db_url, "0008")
    engine = make_engine(db_url)
    try:
        store = Store(engine)
        # The model has columns added after 0008 (0010's): the user is written with Core, by
        # the columns 0008 has.
        with engine.begin() as conn:
            alex = conn.execute(
                insert(UserRow.__table__).returning(UserRow.__table__.c.id),
                {"email": ALEX, "policy_path": "p.yaml", "policy_hash": "h1", "created_at": T0},
            ).scalar_one()
        store.add_meetings(alex, [proposal("m1"), proposal("m2", start=SLOT + timedelta(days=1))],
                           now=T0)  # fmt: skip
        for table, names in OLD_INDEXES.items():
            assert names <= _index_names(engine, table)
            assert not NEW_INDEXES[table] & _index_names(engine, table)
        migrate(db_url)
        assert at_head(db_url)
        for table, names in NEW_INDEXES.items():
            assert names <= _index_names(engine, table)
            assert not OLD_INDEXES[table] & _index_names(engine, table)
        assert store.approved_needing_send(T0, 10) == [m.id for m in store.open_meetings(alex)]
        _downgrade(engine, "0008")
        assert not at_head(db_url)
        for table, names in OLD_INDEXES.items():
            assert names <= _index_names(engine, table)
            assert not NEW_INDEXES[table] & _index_names(engine, table)
        assert len(store.open_meetings(alex)) == 2
        migrate(db_url)
        assert at_head(db_url)
        assert len(store.open_meetings(alex)) == 2
    finally:
        engine.dispose()


def test_migration_0011_adds_the_send_scans_indexes_and_takes_them_away_again(
    db_url: str,
) -> None:
    added = {"ix_meetings_state_lease_until_id", "ix_meetings_never_sent"}
    migrate(db_url, "0010")
    engine = make_engine(db_url)
    try:
        store = Store(engine)
        alex = user(store, ALEX)
        store.add_meetings(alex, [proposal("m1")], now=T0)
        assert not added & _index_names(engine, "meetings")
        migrate(db_url)
        assert at_head(db_url)
        assert added <= _index_names(engine, "meetings")
        assert store.approved_needing_send(T0, 10) == [m.id for m in store.open_meetings(alex)]
        _downgrade(engine, "0010")
        assert not added & _index_names(engine, "meetings")
        assert len(store.open_meetings(alex)) == 1
    finally:
        engine.dispose()


# -- a booking's re-check: every branch ---------------------------------------------------------


def _reference(
    store: Store, ids: list[int], wanted: set[str], owner_email: str, exclude_id: int
) -> tuple[list[int], list[int]]:
    """What ``booking_rivals`` must return, by the plain conditions, over ``ids``."""
    owners = {u.id: u.email for u in store.all_users()}
    rows = [m for m in (store.get_meeting(i) for i in ids) if m is not None]

    def overlaps(m: Meeting) -> bool:
        holds = m.state in _HOLDING or (m.state == S.APPROVED and m.create_attempted_at is not None)
        people = {m.stakeholder_email, owners[m.user_id], *m.attendees}
        return (
            m.id != exclude_id
            and holds
            and m.start < END
            and m.end > SLOT
            and bool(people & wanted)
        )

    def theirs(m: Meeting) -> bool:
        return m.stakeholder_email == owner_email and m.state in OPEN_STATES

    by_start = sorted(rows, key=lambda m: (m.start, m.id))
    return sorted(m.id for m in rows if overlaps(m)), [m.id for m in by_start if theirs(m)]


def test_booking_rivals_and_active_overlapping_match_their_conditions_branch_by_branch(
    store: Store,
) -> None:
    alex, kim, sam, jo = (user(store, e) for e in (ALEX, KIM, SAM, JO))
    mine = meeting(store, alex, "mine", S.APPROVED)  # the booking being re-checked (Alex–Sam)
    later = SLOT + timedelta(days=2)
    group = replace(
        proposal("kim-group", email=LEE), attendees=(LEE, SAM, MAX), group_name="platform",
        presenter=LEE, quorum=2,
    )  # fmt: skip
    [kims_group] = store.add_meetings(kim, [group], now=T0)
    store.claim_for_booking(kims_group, T0, 60)
    store.transition(kims_group, S.BOOKED, actor="t", now=T0, provider_event_id="g")
    uncertain = meeting(store, jo, "jo-uncertain", S.APPROVED)
    store.claim_for_booking(uncertain, T0, 60)
    store.mark_create_attempted(uncertain, T0, attempt=1)
    store.transition(uncertain, S.APPROVED, actor="t", now=T0, expect=S.BOOKING)
    cases = {
        # overlapping and held: by stakeholder, by owner (Sam's own meeting), by group attendee
        "by stakeholder": meeting(store, kim, "kim-sam", S.BOOKED, start=SLOT + HALF / 3),
        "by owner": meeting(store, sam, "sam-jo", S.ACCEPTED, email=JO),
        "by attendee": kims_group,
        "uncertain": uncertain,
        "being booked": meeting(store, jo, "jo-alex", S.BOOKING, email=ALEX),
        # the owner as someone else's stakeholder, later that week (theirs only)
        "theirs": meeting(store, kim, "kim-alex", S.PROPOSED, email=ALEX, start=later),
        # not overlapping: not held, touching the end, cancelled, other people, excluded
        "proposed": meeting(store, kim, "kim-sam-p", S.PROPOSED),
        "approved": meeting(store, kim, "kim-sam-a", S.APPROVED),
        "touching": meeting(store, kim, "kim-sam-t", S.BOOKED, start=END),
        "cancelled": meeting(store, kim, "kim-sam-c", S.CANCELLED),
        "others": meeting(store, kim, "kim-jo", S.BOOKED, email=JO),
        "theirs over": meeting(store, jo, "jo-alex-c", S.CANCELLED, email=ALEX, start=later),
    }  # fmt: skip
    ids = [mine, *cases.values()]
    wanted = {SAM, ALEX}
    expected = _reference(store, ids, wanted, ALEX, mine)
    hits = {name for name, mid in cases.items() if mid in expected[0] or mid in expected[1]}
    assert hits == {"by stakeholder", "by owner", "by attendee", "uncertain", "being booked",
                    "theirs"}  # fmt: skip
    assert cases["being booked"] in expected[0]  # Jo's with Alex: both lists
    assert cases["being booked"] in expected[1]
    overlapping, theirs = store.booking_rivals(
        ["Sam@corp.example", ALEX], SLOT, END, exclude_id=mine, owner_email="Alex@corp.example"
    )
    assert ([m.id for m in overlapping], [m.id for _, m in theirs]) == expected
    assert [owner for owner, _ in theirs] == [JO, KIM]
    assert [m.attendees for m in overlapping if m.id == kims_group] == [(LEE, MAX, SAM)]
    assert [m.id for m in store.active_overlapping(wanted, SLOT, END, exclude_id=mine)] == (
        expected[0]
    )
    # each branch alone
    assert [m.id for m in store.active_overlapping([MAX], SLOT, END, exclude_id=mine)] == [
        kims_group
    ]
    assert [m.id for m in store.active_overlapping([JO], SLOT, END, exclude_id=mine)] == sorted(
        [cases["by owner"], cases["uncertain"], cases["being booked"], cases["others"]]
    )
    _, lees = store.booking_rivals([JO], SLOT, END, exclude_id=mine, owner_email=LEE)
    assert [(owner, m.id) for owner, m in lees] == [(KIM, kims_group)]  # a group's first one


# -- the tick's sends and the planning claims ----------------------------------------------------


def test_approved_needing_send_takes_the_oldest_of_both_kinds_under_one_limit(
    store: Store, engine: Engine
) -> None:
    alex, paused, gone = user(store, ALEX), user(store, KIM), user(store, JO)
    store.set_owner_pause(paused, T0 + timedelta(days=1), now=T0)
    store.mark_policy_missing(gone, now=T0)
    ids = []
    for i in range(6):  # alternately approved and a booking whose worker died
        mid = meeting(store, alex, f"a{i}", S.APPROVED, start=SLOT + timedelta(hours=i))
        if i % 2:
            assert store.claim_for_booking(mid, T0 - timedelta(minutes=5), 60) is not None
        ids.append(mid)
    held = [meeting(store, paused, "p", S.APPROVED), meeting(store, gone, "g", S.APPROVED)]
    retry = meeting(store, alex, "retry", S.APPROVED, start=SLOT + timedelta(days=1))
    with engine.begin() as conn:  # a transient failure: retried in an hour
        conn.execute(
            update(MeetingRow)
            .where(MeetingRow.id == retry)
            .values(next_attempt_at=T0 + timedelta(hours=1))
        )
    assert store.approved_needing_send(T0, 3) == ids[:3]
    assert store.approved_needing_send(T0, 10) == ids[3:]  # the first three are in flight
    assert store.approved_needing_send(T0, 10) == []
    assert store.approved_needing_send(T0 + timedelta(minutes=10), 10) == ids  # resent
    later = T0 + timedelta(hours=2)
    assert store.approved_needing_send(later, 10) == [*ids, retry]  # held ones are not sent
    assert held[0] in store.approved_needing_send(T0 + timedelta(days=2), 10)


def test_planning_claims_take_never_planned_users_first_then_the_most_overdue(
    store: Store, engine: Engine
) -> None:
    ids = [user(store, f"u{i}@corp.example") for i in range(6)]
    overdue = [ids[0], ids[2], ids[4]]
    for i, uid in enumerate(overdue):
        store.set_next_plan(uid, T0 - timedelta(hours=i))
    store.set_next_plan(ids[5], T0 + timedelta(hours=1))  # not due
    with engine.begin() as conn:
        conn.execute(
            update(UserRow).where(UserRow.id.in_([ids[1], ids[3]])).values(next_plan_at=None)
        )
    gone = ids[2]
    store.mark_policy_missing(gone, now=T0 - timedelta(days=9))
    claimed = store.claim_users_for_planning(T0, 3, retry_s=60)
    assert claimed == [ids[1], ids[3], ids[4]]  # never planned by id, then most overdue
    assert store.claim_users_for_planning(T0, 3, retry_s=60) == [ids[0]]
    assert store.claim_users_for_planning(T0, 3, retry_s=60) == []
    assert store.claim_removed_owners(T0 - timedelta(days=1), T0, 3, retry_s=60) == [gone]
    assert store.claim_removed_owners(T0 - timedelta(days=1), T0, 3, retry_s=60) == []


# -- the planning round's one-statement write ----------------------------------------------------


def test_record_plan_round_writes_group_attendees_and_audit_rows_in_order(store: Store) -> None:
    alex = user(store, ALEX)
    [known] = store.add_meetings(alex, [proposal("known")], now=T0)
    group = replace(
        proposal("grp", email=LEE, start=SLOT + timedelta(days=1)), attendees=(LEE, MAX, SAM),
        group_name="platform", presenter=LEE, quorum=2, state=S.PROPOSED, mode="propose",
    )  # fmt: skip
    one = proposal("one", email=KIM, start=SLOT + timedelta(days=2))
    now, again = T0 + timedelta(hours=1), T0 + timedelta(hours=7)
    ids = store.record_plan_round(
        alex, [group, proposal("known"), one, group], ["skipped jo [x]: y", "skipped max [x]: z"],
        again, now=now,
    )  # fmt: skip
    assert ids[1] == known  # a known key keeps its row
    assert ids[0] == ids[3]  # a repeated key is one row
    assert len(set(ids)) == 3
    made = store.get_meeting(ids[0])
    assert made is not None
    assert (made.attendees, made.group_name, made.state) == (
        (LEE, MAX, SAM),
        "platform",
        S.PROPOSED,
    )
    events = store.user_events(alex, since=now)
    assert [(e.meeting_id, e.to_state, e.detail) for e in events] == [
        (ids[0], "proposed", "created"),
        (ids[2], "approved", "created"),
        (None, None, "skipped jo [x]: y"),
        (None, None, "skipped max [x]: z"),
    ]
    assert [e.id for e in events] == sorted(e.id for e in events)
    owner = store.get_user(alex)
    assert owner is not None
    assert (owner.next_plan_at, owner.last_planned_at) == (again, now)
    # a retried round writes nothing new but the skips and the next round
    assert store.record_plan_round(alex, [one], [], again, now=again) == [ids[2]]
    assert store.user_events(alex, since=again) == []


def test_concurrent_rounds_writing_the_same_proposals_get_the_same_rows(store: Store) -> None:
    # On PostgreSQL a round that waits for another's commit of the same key does not see that
    # row in its statement's snapshot: it reads the id after (the store's fallback).
    alex = user(store, ALEX)
    keys = [f"race-{i}" for i in range(5)]
    got: dict[int, list[list[int]]] = {}

    def work(worker: int, barrier: threading.Barrier) -> None:
        got[worker] = []
        for i, key in enumerate(keys):
            barrier.wait()
            start = SLOT + timedelta(days=i)
            got[worker].append(
                store.record_plan_round(alex, [proposal(key, start=start)], [], T0, now=T0)
            )

    run_together(4, work)
    rows = {m.idempotency_key: m.id for m in store.open_meetings(alex)}
    assert sorted(rows) == keys
    for answers in got.values():
        assert answers == [[rows[key]] for key in keys]
    assert [e.detail for e in store.user_events(alex, since=T0)] == ["created"] * len(keys)


# -- PostgreSQL: rows read, not the table ----------------------------------------------------------


def _rows_read(plan: dict[str, Any], tables: set[str]) -> int:
    """Rows the plan's scans of ``tables`` read (returned + filtered out), loops included."""
    own = 0
    if plan.get("Relation Name") in tables:
        read = plan.get("Actual Rows", 0) + plan.get("Rows Removed by Filter", 0)
        read += plan.get("Rows Removed by Index Recheck", 0)
        own = int(read * plan.get("Actual Loops", 1))
    return own + sum(_rows_read(child, tables) for child in plan.get("Plans", []))


def _explained(engine: Engine, call: Any, *, generic: bool = False) -> list[dict[str, Any]]:
    """Run ``call`` and EXPLAIN ANALYZE every SELECT it sends (on another connection).

    ``generic``: each statement prepared by psycopg and its ``EXECUTE`` explained under
    ``plan_cache_mode = force_generic_plan`` (for this transaction only): the plan made without
    the values, which PostgreSQL may keep for a prepared statement after its fifth run."""
    statements: list[tuple[str, Any]] = []

    def capture(_c: Any, _cur: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        call()
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    plans = []
    with engine.connect() as conn:
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        if generic:
            psycopg = pytest.importorskip("psycopg")
            cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        for statement, parameters in statements:
            if not generic:
                cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + statement, parameters)
            else:  # prepared by psycopg as goodwill's runs are (its types), then explained
                cursor.execute(statement, parameters, prepare=True)
                cursor.fetchall()
                cursor.execute(  # never prepared itself: it is not the statement looked for
                    "SELECT name FROM pg_prepared_statements ORDER BY prepare_time DESC LIMIT 1",
                    prepare=False,
                )
                name = cursor.fetchone()[0]
                names = list(dict.fromkeys(re.findall(r"%\((\w+)\)s", statement)))
                values = [parameters[key] for key in names]
                marks = ", ".join(["%s"] * len(values))
                execute = psycopg.ClientCursor(cursor.connection).mogrify(
                    f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE {name}({marks})", values
                )  # the values as literals: an EXECUTE's own parameters have no types
                cursor.execute(execute)
            plans.append(cursor.fetchone()[0][0]["Plan"])
        conn.rollback()
    return plans


@pytest.fixture
def crowded(store: Store, engine: Engine) -> dict[str, int]:
    """2,000 other owners with 8 meetings each around the slot (two in three booked, one in six
    accepted, the rest approved; stakeholders from a pool of 400), analysed; then Alex, Sam
    (also an owner) and Alex's meeting with Sam being booked."""
    if engine.dialect.name != "postgresql":
        pytest.skip("EXPLAIN ANALYZE plans are PostgreSQL's")
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO users (email, policy_path, policy_hash, next_plan_at, created_at) "
                "SELECT 'o' || i || '@corp.example', 'p/' || i, 'h', :t, :t "
                "FROM generate_series(1, 2000) AS i"
            ),
            {"t": T0},
        )
        conn.execute(
            text(
                'INSERT INTO meetings (user_id, stakeholder_email, kind, start, "end", state, '
                "mode, idempotency_key, provider, attempts, reason, created_at, updated_at) "
                "SELECT u.id, 'c' || ((u.id + k) % 400) || '@corp.example', 'coffee', "
                "s.start, s.start + interval '30 minutes', "
                "CASE WHEN (u.id + k) % 6 = 0 THEN 'accepted' WHEN (u.id + k) % 3 <> 0 "
                "THEN 'booked' ELSE 'approved' END, 'auto', 'k' || u.id || '-' || k, 'google', "
                "1, '', :t, :t FROM users u CROSS JOIN generate_series(0, 7) AS k "
                "CROSS JOIN LATERAL (SELECT CAST(:slot AS timestamptz) "
                "+ (k - 4) * interval '1 day' + (u.id % 5) * interval '1 hour' AS start) AS s"
            ),
            {"t": T0, "slot": SLOT},
        )
        conn.execute(text("ANALYZE"))
    alex, sam = user(store, ALEX), user(store, SAM)
    mine = meeting(store, alex, "mine", S.BOOKING)
    meeting(store, sam, "sams", S.BOOKED, email=JO, start=SLOT + timedelta(days=1))
    return {"alex": alex, "mine": mine}


@pytest.mark.parametrize("generic", [False, True], ids=["custom", "generic"])
def test_a_bookings_re_check_reads_the_peoples_meetings_not_every_owners(
    store: Store, engine: Engine, crowded: dict[str, int], generic: bool
) -> None:
    def recheck() -> None:
        store.booking_rivals([SAM, ALEX], SLOT, END, exclude_id=crowded["mine"], owner_email=ALEX)

    plans = _explained(engine, recheck, generic=generic)
    assert plans, "the re-check sent no SELECT"
    # ~16,000 meetings are held by other owners in those days; a range over them reads thousands
    assert sum(_rows_read(p, {"meetings"}) for p in plans) <= 20
    assert sum(_rows_read(p, {"users"}) for p in plans) <= 10


@pytest.mark.parametrize("generic", [False, True], ids=["custom", "generic"])
def test_a_rounds_meeting_read_probes_the_owners_it_returns_not_every_user(
    store: Store, engine: Engine, crowded: dict[str, int], generic: bool
) -> None:
    def read() -> None:
        store.round_meetings(
            crowded["alex"], ALEX, now=T0, declined_since=T0 - timedelta(days=30),
            declined_until=T0 + timedelta(days=30), history_since=T0 - timedelta(days=90),
        )  # fmt: skip

    plans = _explained(engine, read, generic=generic)
    assert plans
    assert sum(_rows_read(p, {"meetings"}) for p in plans) <= 10
    assert sum(_rows_read(p, {"users", "meeting_attendees"}) for p in plans) <= 10


@pytest.mark.parametrize("generic", [False, True], ids=["custom", "generic"])
def test_a_rounds_stakeholder_load_reads_its_peoples_meetings_not_every_owners(
    store: Store, engine: Engine, crowded: dict[str, int], generic: bool
) -> None:
    people = [f"c{i}@corp.example" for i in range(3)]  # 3 of the 400 the crowd meets

    def read() -> None:
        store.stakeholder_load(
            people, SLOT - timedelta(days=7), SLOT + timedelta(days=7),
            exclude_user_id=crowded["alex"], invited_since=T0 - timedelta(days=1),
        )  # fmt: skip

    plans = _explained(engine, read, generic=generic)
    assert plans
    # each of the 400 has ~40 of the 16,000 meetings: the read is by their e-mails
    assert sum(_rows_read(p, {"meetings"}) for p in plans) <= 3 * 80


@pytest.fixture
def backlog(store: Store, engine: Engine) -> list[int]:
    """20,000 finished meetings (the history, lowest ids), then 5,000 approved meetings in
    flight (sent, their send lease running: the workers' backlog), then 3 approved ones due
    now and one booking whose lease ran out; analysed. Returns the ids the tick must send,
    oldest first."""
    if engine.dialect.name != "postgresql":
        pytest.skip("EXPLAIN ANALYZE plans are PostgreSQL's")
    alex = user(store, ALEX)
    with engine.begin() as conn:
        conn.execute(
            text(
                'INSERT INTO meetings (user_id, stakeholder_email, kind, start, "end", state, '
                "mode, idempotency_key, provider, attempts, reason, created_at, updated_at) "
                "SELECT :alex, 'h' || (i % 400) || '@corp.example', 'coffee', :old, :old, "
                "CASE WHEN i % 5 = 0 THEN 'cancelled' ELSE 'completed' END, 'auto', "
                "'old-' || i, 'google', 1, '', :old, :old FROM generate_series(1, 20000) AS i"
            ),
            {"alex": alex, "old": T0 - timedelta(days=60)},
        )
        conn.execute(
            text(
                'INSERT INTO meetings (user_id, stakeholder_email, kind, start, "end", state, '
                "mode, idempotency_key, provider, attempts, reason, created_at, updated_at, "
                "lease_until) "
                "SELECT :alex, 'c' || (i % 400) || '@corp.example', 'coffee', :slot, :slot, "
                "'approved', 'auto', 'flight-' || i, 'google', 0, '', :t, :t, :lease "
                "FROM generate_series(1, 5000) AS i"
            ),
            {"alex": alex, "slot": SLOT, "t": T0, "lease": T0 + timedelta(minutes=10)},
        )
    due = [meeting(store, alex, f"due-{i}", S.APPROVED) for i in range(3)]
    stuck = meeting(store, alex, "stuck", S.BOOKING)  # its claim's lease ends at T0 + 60 s
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))
    return [*due, stuck]


@pytest.mark.parametrize("generic", [False, True], ids=["custom", "generic"])
def test_the_ticks_send_scan_reads_the_due_meetings_not_the_backlog_in_flight(
    store: Store, engine: Engine, backlog: list[int], generic: bool
) -> None:
    later = T0 + timedelta(minutes=2)  # the booking's lease has run out, the backlog's has not
    sent: list[int] = []
    plans = _explained(
        engine,
        lambda: sent.extend(store.approved_needing_send(later, 200, send_lease_s=600)),
        generic=generic,
    )
    assert sent == backlog
    assert plans
    # reading the 5,000 in flight to find the 4 due ones is what the tick did at every round
    assert sum(_rows_read(p, {"meetings"}) for p in plans) <= 50
