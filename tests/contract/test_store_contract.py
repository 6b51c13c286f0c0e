"""The store port's contract: the same assertions on the in-memory fake and the real store.

Every test runs on :class:`tests.usecase.fakes.FakeStore`, and on :class:`scheduler.store.Store`
over SQLite and PostgreSQL (``tests/usecase/stores.py``). The use-case tests trust the fake to
behave like the real store; this suite is what keeps that true, method by method of
:class:`scheduler.app.ports.StorePort` (plus the read-outs the tests use).
"""

from __future__ import annotations

import threading
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.exc import IntegrityError, StatementError

from scheduler.app.records import (
    BookedEvent,
    ContactSource,
    Meeting,
    NewMeeting,
    StakeholderStatus,
)
from scheduler.core.model import AttendeeStatus
from scheduler.core.states import OPEN_STATES, IllegalTransition, MeetingState
from tests.concurrency import run_together
from tests.usecase.stores import STORE_KINDS, InspectableStore, open_store

S = MeetingState
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday
ALEX, SAM, KIM = "alex@corp.example", "sam@corp.example", "kim@corp.example"
#: What a store raises for a row it refuses: the fake's ValueError, the driver's errors.
REFUSED = (ValueError, StatementError, IntegrityError)


@pytest.fixture(params=STORE_KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[InspectableStore]:
    with open_store(request.param, request, tmp_path) as opened:
        yield opened


def proposal(
    key: str,
    *,
    day: float = 3,
    email: str = SAM,
    state: MeetingState = S.PROPOSED,
    start: datetime | None = None,
    minutes: int = 30,
    reason: str = "both free",
) -> NewMeeting:
    begin = start if start is not None else T0 + timedelta(days=day)
    return NewMeeting(
        stakeholder_email=email,
        kind="coffee",
        start=begin,
        end=begin + timedelta(minutes=minutes),
        mode="auto" if state == S.APPROVED else "propose",
        idempotency_key=key,
        provider="fake",
        reason=reason,
        state=state,
    )


def new_user(store: InspectableStore, email: str = ALEX, *, now: datetime = T0) -> int:
    return store.upsert_user(email, f"policies/{email}.yaml", "hash-1", now=now)


def new_meeting(
    store: InspectableStore,
    key: str = "m1",
    *,
    user_id: int | None = None,
    state: MeetingState = S.APPROVED,
    **kw: Any,
) -> int:
    owner = user_id if user_id is not None else new_user(store)
    (meeting_id,) = store.add_meetings(owner, [proposal(key, state=state, **kw)], now=T0)
    return meeting_id


def get(store: InspectableStore, meeting_id: int) -> Meeting:
    found = store.get_meeting(meeting_id)
    assert found is not None
    return found


def trail(store: InspectableStore, meeting_id: int) -> list[tuple[str, str | None, str | None]]:
    return [(e.actor, e.from_state, e.to_state) for e in store.audit_trail(meeting_id)]


def booked(store: InspectableStore, key: str, *, user_id: int, **kw: Any) -> int:
    """A meeting walked to ``booked`` the legal way."""
    meeting_id = new_meeting(store, key, user_id=user_id, **kw)
    assert store.claim_for_booking(meeting_id, T0, 60) is not None
    assert store.transition(meeting_id, S.BOOKED, actor="worker", now=T0, provider_event_id=key)
    return meeting_id


# -- users -----------------------------------------------------------------------------------


def test_upsert_user_lowercases_the_email_and_a_new_user_is_due_now(
    store: InspectableStore,
) -> None:
    user_id = store.upsert_user(" Alex@Corp.Example ", "p/alex.yaml", "h1", now=T0)
    user = store.get_user(user_id)
    assert user is not None
    assert (user.email, user.policy_path, user.policy_hash, user.policy_error) == (
        ALEX,
        "p/alex.yaml",
        "h1",
        None,
    )
    assert (user.next_plan_at, user.last_planned_at, user.created_at) == (T0, None, T0)
    assert user.policy_missing_since is None
    assert store.get_user_by_email("ALEX@corp.example") == user
    assert store.upsert_user("alex@corp.example", "p/alex.yaml", "h1", now=T0) == user_id
    assert store.get_user(user_id + 100) is None
    assert store.get_user_by_email("nobody@corp.example") is None


def test_upsert_user_brings_planning_forward_only_when_the_file_changed(
    store: InspectableStore,
) -> None:
    user_id = new_user(store)
    later, tomorrow = T0 + timedelta(hours=1), T0 + timedelta(days=1)
    store.set_next_plan(user_id, tomorrow, planned_at=later)
    # Same content, new path: the path is updated, the plan time stays
    store.upsert_user(ALEX, "moved/alex.yaml", "hash-1", now=later)
    user = store.get_user(user_id)
    assert user is not None
    assert (user.policy_path, user.next_plan_at) == ("moved/alex.yaml", tomorrow)
    # Edited: planned at once
    store.upsert_user(ALEX, "moved/alex.yaml", "hash-2", now=later)
    user = store.get_user(user_id)
    assert user is not None
    assert (user.policy_hash, user.next_plan_at, user.last_planned_at) == ("hash-2", later, later)
    # An edit never pushes an earlier plan time later
    store.set_next_plan(user_id, T0)
    store.upsert_user(ALEX, "moved/alex.yaml", "hash-3", now=later)
    user = store.get_user(user_id)
    assert user is not None
    assert user.next_plan_at == T0


def test_claim_users_for_planning_takes_the_most_overdue_and_hides_them_until_the_retry(
    store: InspectableStore,
) -> None:
    ids = [new_user(store, f"u{i}@corp.example") for i in range(4)]
    for i, user_id in enumerate(ids):
        store.set_next_plan(user_id, T0 - timedelta(hours=i))
    store.set_next_plan(ids[0], T0 + timedelta(hours=1))  # not due
    assert store.claim_users_for_planning(T0, 2, retry_s=300) == [ids[3], ids[2]]
    assert store.claim_users_for_planning(T0, 10, retry_s=300) == [ids[1]]
    assert store.claim_users_for_planning(T0 + timedelta(seconds=299), 10, retry_s=300) == []
    user = store.get_user(ids[3])
    assert user is not None
    assert user.next_plan_at == T0 + timedelta(seconds=300)
    # The message was lost: due again once the retry delay has passed, by id on a tie
    again = store.claim_users_for_planning(T0 + timedelta(seconds=300), 10, retry_s=300)
    assert again == [ids[1], ids[2], ids[3]]
    with pytest.raises(ValueError, match="retry_s"):
        store.claim_users_for_planning(T0, 10, retry_s=0)


def test_set_next_plan_and_policy_errors(store: InspectableStore) -> None:
    user_id = new_user(store)
    store.set_next_plan(user_id, T0 + timedelta(hours=12))
    user = store.get_user(user_id)
    assert user is not None
    assert (user.next_plan_at, user.last_planned_at) == (T0 + timedelta(hours=12), None)
    store.set_next_plan(user_id + 99, T0)  # unknown: nothing happens
    store.record_policy_error(user_id, "p/alex.yaml:3: tiers.mentor.every: not a duration")
    user = store.get_user(user_id)
    assert user is not None
    assert user.policy_error == "p/alex.yaml:3: tiers.mentor.every: not a duration"
    store.record_policy_error(user_id, None)
    user = store.get_user(user_id)
    assert user is not None
    assert user.policy_error is None


def test_all_users_by_id(store: InspectableStore) -> None:
    ids = [new_user(store, e) for e in ("zed@corp.example", ALEX, SAM)]
    assert [u.id for u in store.all_users()] == sorted(ids)
    assert [u.email for u in store.all_users()] == ["zed@corp.example", ALEX, SAM]


def test_a_missing_policy_file_is_marked_once_and_cleared_when_it_returns(
    store: InspectableStore,
) -> None:
    user_id = new_user(store)
    later = T0 + timedelta(hours=1)
    assert store.mark_policy_missing(user_id, now=T0) == T0
    assert store.mark_policy_missing(user_id, now=later) == T0  # the first time is kept
    assert store.mark_policy_missing(user_id + 99, now=T0) is None
    user = store.get_user(user_id)
    assert user is not None
    assert user.policy_missing_since == T0
    store.set_next_plan(user_id, T0 + timedelta(days=1))
    assert store.clear_policy_missing(user_id, now=later)
    assert not store.clear_policy_missing(user_id, now=later)
    assert not store.clear_policy_missing(user_id + 99, now=later)
    user = store.get_user(user_id)
    assert user is not None
    assert (user.policy_missing_since, user.next_plan_at) == (None, later)  # due at once


def test_removed_owners_are_claimed_apart_from_planning(store: InspectableStore) -> None:
    present, gone_long, gone_now = (new_user(store, f"u{i}@corp.example") for i in range(3))
    store.mark_policy_missing(gone_long, now=T0 - timedelta(days=2))
    store.mark_policy_missing(gone_now, now=T0)
    assert store.claim_users_for_planning(T0, 10, retry_s=60) == [present]
    grace_over = T0 - timedelta(days=1)
    assert store.claim_removed_owners(grace_over, T0, 10, retry_s=60) == [gone_long]
    assert store.claim_removed_owners(grace_over, T0, 10, retry_s=60) == []  # pushed back
    later = T0 + timedelta(seconds=60)
    # Most overdue first: gone_now was never claimed (due since T0), gone_long since T0 + 60 s
    assert store.claim_removed_owners(later, later, 10, retry_s=60) == [gone_now, gone_long]
    with pytest.raises(ValueError, match="retry_s"):
        store.claim_removed_owners(T0, T0, 10, retry_s=0)


# -- writing meetings ------------------------------------------------------------------------


def test_add_meetings_writes_each_proposal_with_defaults_and_an_audit_row(
    store: InspectableStore,
) -> None:
    user_id = new_user(store)
    london = datetime(2026, 3, 30, 10, 30, tzinfo=ZoneInfo("Europe/London"))  # BST: 09:30 UTC
    ids = store.add_meetings(
        user_id,
        [proposal("a", email="Sam@Corp.Example", start=london), proposal("b", state=S.APPROVED)],
        now=T0,
        actor="planner:test",
    )
    assert len(set(ids)) == 2
    m = get(store, ids[0])
    assert (m.user_id, m.stakeholder_email, m.state, m.idempotency_key) == (
        user_id,
        SAM,
        S.PROPOSED,
        "a",
    )
    assert m.start == datetime(2026, 3, 30, 9, 30, tzinfo=UTC)
    assert (m.start.tzinfo, m.end.tzinfo) == (UTC, UTC)
    assert (m.kind, m.mode, m.provider, m.reason) == ("coffee", "propose", "fake", "both free")
    assert (m.provider_event_id, m.attempts, m.next_attempt_at, m.lease_until) == (
        None,
        0,
        None,
        None,
    )
    assert (m.last_error, m.create_attempted_at, m.created_at, m.updated_at) == (
        None,
        None,
        T0,
        T0,
    )
    assert get(store, ids[1]).state is S.APPROVED
    [entry] = store.audit_trail(ids[1])
    assert (entry.actor, entry.from_state, entry.to_state, entry.detail) == (
        "planner:test",
        None,
        "approved",
        "created",
    )
    assert (entry.at, entry.user_id, entry.meeting_id) == (T0, user_id, ids[1])


def test_add_meetings_is_idempotent_on_the_key(store: InspectableStore) -> None:
    alex, bo = new_user(store), new_user(store, "bo@corp.example")
    first = store.add_meetings(alex, [proposal("k1"), proposal("k2", day=4)], now=T0)
    later = T0 + timedelta(hours=1)
    again = store.add_meetings(
        alex, [proposal("k2", day=9), proposal("k1"), proposal("k3", day=5)], now=later
    )
    assert again[:2] == [first[1], first[0]]
    assert again[2] not in first
    # The repeat changed nothing: k2 keeps its first slot and its one "created" row
    k2 = get(store, first[1])
    assert (k2.start, k2.updated_at) == (T0 + timedelta(days=4), T0)
    assert [e.detail for e in store.audit_trail(first[1])] == ["created"]
    # The key is global: another user writing it gets the existing row back
    assert store.add_meetings(bo, [proposal("k1")], now=T0) == [first[0]]
    assert get(store, first[0]).user_id == alex
    # The same key twice in one call is one row
    twice = store.add_meetings(bo, [proposal("k4"), proposal("k4", day=6)], now=T0)
    assert twice[0] == twice[1]
    assert len(store.open_meetings(alex)) == 3
    assert len(store.open_meetings(bo)) == 1
    assert store.add_meetings(alex, [], now=T0) == []


def test_add_meetings_writes_all_or_nothing_and_refuses_bad_proposals(
    store: InspectableStore,
) -> None:
    user_id = new_user(store)
    with pytest.raises(ValueError, match="booked"):
        store.add_meetings(user_id, [proposal("ok"), proposal("x", state=S.BOOKED)], now=T0)
    backwards = proposal("y", minutes=-30)
    with pytest.raises(ValueError, match="ends before"):
        store.add_meetings(user_id, [proposal("ok"), backwards], now=T0)
    with pytest.raises(ValueError, match="ends before"):
        store.add_meetings(user_id, [proposal("z", minutes=0)], now=T0)
    assert store.open_meetings(user_id) == []
    assert store.add_meetings(user_id, [proposal("ok")], now=T0) != []  # the key is still free


def test_record_plan_round_writes_proposals_skips_and_the_next_round_together(
    store: InspectableStore,
) -> None:
    alex = new_user(store)
    [existing] = store.add_meetings(alex, [proposal("k1")], now=T0)
    later, again = T0 + timedelta(hours=1), T0 + timedelta(hours=6)
    ids = store.record_plan_round(
        alex,
        [proposal("k1"), proposal("k2", state=S.APPROVED, day=4), proposal("k2", day=6)],
        ["skipped kim [weekly_cap]: week full", "skipped jo [not_due]: met lately"],
        again,
        now=later,
    )
    assert ids[0] == existing  # a known key keeps its row
    assert ids[1] == ids[2] != existing
    assert get(store, ids[1]).state is S.APPROVED
    assert [e.detail for e in store.audit_trail(ids[1])] == ["created"]
    assert [e.detail for e in store.audit_trail(existing)] == ["created"]
    skips = [e for e in store.user_events(alex, since=later) if e.meeting_id is None]
    assert [(e.detail, e.actor, e.at) for e in skips] == [
        ("skipped kim [weekly_cap]: week full", "planner", later),
        ("skipped jo [not_due]: met lately", "planner", later),
    ]
    user = store.get_user(alex)
    assert user is not None
    assert (user.next_plan_at, user.last_planned_at) == (again, later)
    # A round with nothing to propose still audits its skips and reschedules the user
    assert store.record_plan_round(alex, [], ["skipped sam [paused]: paused"], T0, now=again) == []
    user = store.get_user(alex)
    assert user is not None
    assert (user.next_plan_at, user.last_planned_at) == (T0, again)
    assert [e.detail for e in store.user_events(alex, since=again) if e.meeting_id is None] == [
        "skipped sam [paused]: paused"
    ]


def test_record_plan_round_keeps_how_far_the_history_was_read(store: InspectableStore) -> None:
    alex = new_user(store)
    user = store.get_user(alex)
    assert user is not None
    assert (user.history_read_until, user.history_read_key) == (None, None)
    read = T0.astimezone(ZoneInfo("Europe/Berlin"))
    store.record_plan_round(alex, [proposal("k1")], [], T0 + timedelta(hours=6), now=T0,
                            history=(read, "k1"))  # fmt: skip
    store.record_plan_round(alex, [], [], T0 + timedelta(hours=7), now=T0 + timedelta(hours=1))
    user = store.get_user(alex)
    assert user is not None
    assert (user.history_read_until, user.history_read_key) == (T0, "k1")  # None: kept
    assert user.history_read_until is not None
    assert user.history_read_until.tzinfo == UTC
    assert user.last_planned_at == T0 + timedelta(hours=1)
    later = T0 + timedelta(hours=2)
    store.record_plan_round(alex, [], [], T0 + timedelta(hours=8), now=later,
                            history=(later, "k2"))  # fmt: skip
    user = store.get_user(alex)
    assert user is not None
    assert (user.history_read_until, user.history_read_key) == (later, "k2")
    with pytest.raises(REFUSED, match="naive datetime"):
        store.record_plan_round(alex, [proposal("k3")], [], T0, now=later,
                                history=(datetime(2026, 3, 2, 12, 0), "k3"))  # fmt: skip
    assert store.get_user(alex) == user
    assert [m.idempotency_key for m in store.open_meetings(alex)] == ["k1"]


def test_record_plan_round_writes_nothing_when_a_proposal_is_refused(
    store: InspectableStore,
) -> None:
    alex = new_user(store)
    before = store.get_user(alex)
    with pytest.raises(ValueError, match="ends before"):
        store.record_plan_round(
            alex, [proposal("ok"), proposal("y", minutes=-30)], ["skipped kim [x]: y"],
            T0 + timedelta(days=1), now=T0 + timedelta(hours=1),
        )  # fmt: skip
    assert store.open_meetings(alex) == []
    assert store.user_events(alex, since=T0 + timedelta(hours=1)) == []
    assert store.get_user(alex) == before


def test_naive_times_and_unknown_users_are_refused(store: InspectableStore) -> None:
    user_id = new_user(store)
    naive = datetime(2026, 3, 5, 10, 0)
    with pytest.raises(REFUSED, match="naive datetime"):
        store.add_meetings(user_id, [proposal("n", start=naive)], now=T0)
    with pytest.raises(REFUSED):
        store.add_meetings(user_id + 99, [proposal("orphan")], now=T0)
    assert store.open_meetings(user_id) == []
    assert store.open_meetings(user_id + 99) == []


# -- reading meetings ------------------------------------------------------------------------


def test_get_meeting_and_meeting_by_event_id(store: InspectableStore) -> None:
    user_id = new_user(store)
    first = booked(store, "e1", user_id=user_id)
    assert store.get_meeting(first + 99) is None
    found = store.meeting_by_event_id("e1")
    assert found is not None
    assert found.id == first
    assert store.meeting_by_event_id("nope") is None
    # Two rows with one event id (a re-created event): the newest wins
    second = new_meeting(store, "e2", user_id=user_id, day=5)
    assert store.claim_for_booking(second, T0, 60) is not None
    assert store.transition(second, S.BOOKED, actor="w", now=T0, provider_event_id="e1")
    found = store.meeting_by_event_id("e1")
    assert found is not None
    assert found.id == second


def test_open_meetings_are_the_users_open_ones_by_start(store: InspectableStore) -> None:
    user_id, other = new_user(store), new_user(store, "bo@corp.example")
    late = new_meeting(store, "late", user_id=user_id, state=S.PROPOSED, day=5)
    early = new_meeting(store, "early", user_id=user_id, day=1)
    same_start = new_meeting(store, "same", user_id=user_id, day=5, email=KIM)
    gone = new_meeting(store, "gone", user_id=user_id, day=2)
    store.transition(gone, S.CANCELLED, actor="user", now=T0)
    new_meeting(store, "theirs", user_id=other, day=1)
    on = booked(store, "on", user_id=user_id, day=3)
    assert [m.id for m in store.open_meetings(user_id)] == [early, on, late, same_start]
    assert {m.state for m in store.open_meetings(user_id)} <= OPEN_STATES


def test_open_meetings_as_stakeholder_names_the_owner(store: InspectableStore) -> None:
    sam, kim = new_user(store, SAM), new_user(store, KIM)
    alex = new_user(store)
    by_sam = new_meeting(store, "s", user_id=sam, email="Alex@Corp.example", day=4)
    by_kim = new_meeting(store, "k", user_id=kim, email=ALEX, day=2, state=S.PROPOSED)
    done = new_meeting(store, "d", user_id=kim, email=ALEX, day=1)
    store.transition(done, S.EXPIRED, actor="tick", now=T0)
    new_meeting(store, "other", user_id=alex, email=SAM, day=1)
    found = store.open_meetings_as_stakeholder("ALEX@corp.example")
    assert [(owner, m.id) for owner, m in found] == [(KIM, by_kim), (SAM, by_sam)]


def test_stakeholder_load_counts_other_owners_meetings_and_fresh_invites(
    store: InspectableStore,
) -> None:
    alex, bo, cy = new_user(store), new_user(store, "bo@corp.example"), new_user(store, "cy@x.io")
    new_meeting(store, "mine", user_id=alex, day=3)  # the asking owner's own: not counted
    open_one = new_meeting(store, "open", user_id=bo, day=3, state=S.PROPOSED)
    completed = booked(store, "done", user_id=bo, day=1)
    store.transition(completed, S.COMPLETED, actor="sync", now=T0)
    cancelled = new_meeting(store, "gone", user_id=bo, day=2)
    store.transition(cancelled, S.CANCELLED, actor="user", now=T0)
    new_meeting(store, "ending", user_id=bo, start=T0 - timedelta(minutes=30))  # ends at start
    # Cy invited Kim an hour ago (approved: the invite is going out) for a slot far outside the
    # window; a proposal still waiting for Cy's approval is no invite yet
    fresh = proposal("fresh", email=KIM, day=40, state=S.APPROVED)
    waiting = proposal("waiting", email="nobody@corp.example", day=41)
    store.add_meetings(cy, [fresh, waiting], now=T0 + timedelta(hours=2))
    meetings, invited = store.stakeholder_load(
        ["Sam@corp.example", "KIM@corp.example", "nobody@corp.example"],
        T0,
        T0 + timedelta(days=10),
        exclude_user_id=alex,
        invited_since=T0 + timedelta(hours=1),
    )
    starts = [get(store, i).start for i in (completed, open_one)]
    assert meetings == {SAM: starts}
    assert invited == {KIM}
    assert store.stakeholder_load(
        [], T0, T0 + timedelta(days=1), exclude_user_id=alex, invited_since=T0
    ) == ({}, set())
    # Created at invited_since exactly is not "since"
    _, invited = store.stakeholder_load(
        [SAM], T0, T0, exclude_user_id=alex, invited_since=T0 - timedelta(seconds=1)
    )
    assert invited == {SAM}
    _, invited = store.stakeholder_load([SAM], T0, T0, exclude_user_id=alex, invited_since=T0)
    assert invited == set()


def test_active_overlapping_finds_meetings_held_by_either_person(store: InspectableStore) -> None:
    alex, kim = new_user(store), new_user(store, KIM)
    slot = T0 + timedelta(days=3)
    mine = new_meeting(store, "mine", user_id=alex, email=SAM, start=slot)
    # Kim's own booked meeting with Jo overlaps: Kim is an owner there
    kims = booked(store, "kims", user_id=kim, email="jo@corp.example", start=slot)
    # A meeting being booked with Sam, overlapping by ten minutes
    being = new_meeting(store, "being", user_id=kim, start=slot + timedelta(minutes=20))
    assert store.claim_for_booking(being, T0, 60) is not None
    # Not held: proposed, approved, cancelled, or only touching the slot's end
    new_meeting(store, "proposed", user_id=kim, start=slot, state=S.PROPOSED)
    new_meeting(store, "approved", user_id=kim, start=slot)
    touching = booked(store, "touching", user_id=kim, start=slot + timedelta(minutes=30))
    cancelled = booked(store, "cancelled", user_id=kim, start=slot)
    store.transition(cancelled, S.CANCELLED, actor="sync", now=T0)
    end = slot + timedelta(minutes=30)
    found = store.active_overlapping(
        ["Sam@corp.example", "KIM@corp.example"], slot, end, exclude_id=mine
    )
    assert [m.id for m in found] == [kims, being]
    assert touching not in [m.id for m in found]
    assert store.active_overlapping([SAM], slot, end, exclude_id=being) == []
    assert [m.id for m in store.active_overlapping([SAM], slot, end, exclude_id=mine)] == [being]


def test_booking_rivals_is_active_overlapping_and_open_meetings_as_stakeholder_in_one(
    store: InspectableStore,
) -> None:
    alex, kim, sam = new_user(store), new_user(store, KIM), new_user(store, SAM)
    slot = T0 + timedelta(days=3)
    end = slot + timedelta(minutes=30)
    mine = new_meeting(store, "mine", user_id=alex, email=SAM, start=slot)
    booked(store, "kims", user_id=kim, email=SAM, start=slot + timedelta(minutes=10))
    booked(store, "kims-later", user_id=kim, email=SAM, start=slot + timedelta(days=1))
    # Sam's and Kim's meetings with Alex as their stakeholder: one open, one over
    new_meeting(store, "sams", user_id=sam, email=ALEX, start=slot + timedelta(days=2))
    new_meeting(store, "kims-alex", user_id=kim, email=ALEX, start=slot + timedelta(days=1))
    gone = new_meeting(store, "gone", user_id=sam, email=ALEX, start=slot + timedelta(days=4))
    store.transition(gone, S.CANCELLED, actor="sync", now=T0)
    # Kim's group meeting with Alex first: read back with its attendees (loaded only for it)
    kims_group = replace(
        group_proposal("kims-group", day=6), stakeholder_email=ALEX, attendees=(ALEX, LEE, MAX),
        presenter=ALEX,
    )  # fmt: skip
    store.add_meetings(kim, [kims_group], now=T0)
    emails = [ALEX, "Sam@corp.example"]
    overlapping, theirs = store.booking_rivals(
        emails, slot, end, exclude_id=mine, owner_email="Alex@Corp.Example"
    )
    assert overlapping == store.active_overlapping(emails, slot, end, exclude_id=mine)
    assert [m.idempotency_key for m in overlapping] == ["kims"]
    assert theirs == store.open_meetings_as_stakeholder(ALEX)
    assert [(owner, m.idempotency_key) for owner, m in theirs] == [
        (KIM, "kims-alex"),
        (SAM, "sams"),
        (KIM, "kims-group"),
    ]
    assert theirs[2][1].attendees == (ALEX, LEE, MAX)
    assert [m.attendees for _, m in theirs[:2]] == [(), ()]
    nobody = "nobody@corp.example"
    assert store.booking_rivals([nobody], slot, end, exclude_id=mine, owner_email=nobody) == (
        [],
        [],
    )


def test_booking_rival_rows_are_booking_rivals_rows_with_their_owners_and_flags(
    store: InspectableStore,
) -> None:
    """The rows a batch answers its re-checks from: what ``booking_rivals`` reads, nothing
    excluded, each with its owner's e-mail (the app filters them per meeting by it)."""
    alex, kim, sam = new_user(store), new_user(store, KIM), new_user(store, SAM)
    slot = T0 + timedelta(days=3)
    end = slot + timedelta(minutes=30)
    mine = new_meeting(store, "mine", user_id=alex, email=SAM, start=slot)
    booked(store, "kims", user_id=kim, email=SAM, start=slot + timedelta(minutes=10))
    new_meeting(store, "sams", user_id=sam, email=ALEX, start=slot + timedelta(days=2))
    claimed = store.claim_for_booking(mine, T0, 60)
    assert claimed is not None
    emails = [ALEX, "Sam@corp.example"]
    rows = store.booking_rival_rows(emails, slot, end, owner_email="Alex@Corp.Example")
    found = {(r.owner_email, r.meeting.idempotency_key, r.overlaps, r.theirs) for r in rows}
    assert found == {
        (ALEX, "mine", True, False),  # being booked: it holds the slot, and is not excluded
        (KIM, "kims", True, False),
        (SAM, "sams", False, True),
    }
    overlapping, theirs = store.booking_rivals(emails, slot, end, exclude_id=mine, owner_email=ALEX)
    assert [m.id for m in overlapping] == sorted(
        r.meeting.id for r in rows if r.overlaps and r.meeting.id != mine
    )
    assert sorted(m.id for _, m in theirs) == sorted(r.meeting.id for r in rows if r.theirs)
    nobody = "nobody@corp.example"
    assert store.booking_rival_rows([nobody], slot, end, owner_email=nobody) == []


def test_claim_bookings_claims_each_due_meeting_as_claim_booking_would(
    store: InspectableStore,
) -> None:
    alex, kim = new_user(store), new_user(store, KIM)
    due = [
        new_meeting(store, f"d{i}", user_id=alex, start=T0 + timedelta(days=2 + i))
        for i in range(3)
    ]
    theirs = new_meeting(store, "kim", user_id=kim, start=T0 + timedelta(days=6))
    later = new_meeting(store, "later", user_id=alex, start=T0 + timedelta(days=7))
    store.transition(later, S.BOOKING, actor="worker", now=T0, expect=S.APPROVED)
    store.transition(later, S.APPROVED, actor="worker", now=T0, expect=S.BOOKING,
                     next_attempt_at=T0 + timedelta(hours=1))  # fmt: skip
    expired = new_meeting(store, "expired", user_id=alex, start=T0 + timedelta(days=8))
    assert store.claim_for_booking(expired, T0 - timedelta(minutes=5), 60) is not None
    done = booked(store, "done", user_id=alex, start=T0 + timedelta(days=9))
    asked = [*due, theirs, later, expired, done, due[0], 10_000]

    claims = store.claim_bookings(asked, T0, 60)

    assert sorted(claims) == sorted([*due, theirs, expired])  # not due, booked, unknown: none
    for meeting_id, claim in claims.items():
        assert claim.meeting.id == meeting_id
        assert claim.meeting.state == S.BOOKING
        assert claim.meeting.lease_until == T0 + timedelta(seconds=60)
        assert claim.owner is not None
        assert claim.owner.id == (kim if meeting_id == theirs else alex)
    assert claims[due[0]].meeting.attempts == 1
    assert claims[expired].meeting.attempts == 2  # re-claimed: its lease had run out
    assert [e.detail for e in store.audit_trail(due[1])][-1] == "claimed"
    assert store.audit_trail(expired)[-1].detail.startswith("lease expired at")
    assert store.claim_bookings(due, T0, 60) == {}  # leased now
    with pytest.raises(ValueError, match="lease_s"):
        store.claim_bookings(due, T0, 0)


def test_record_bookings_books_each_claim_it_still_holds_with_its_event_and_detail(
    store: InspectableStore,
) -> None:
    ids = [new_meeting(store, f"r{i}", start=T0 + timedelta(days=2 + i)) for i in range(4)]
    claims = store.claim_bookings(ids[:3], T0, 60)
    store.transition(ids[0], S.APPROVED, actor="worker", now=T0, expect=S.BOOKING,
                     attempt=claims[ids[0]].meeting.attempts, last_error="boom")  # fmt: skip
    again = store.claim_bookings([ids[0]], T0, 60)[ids[0]]  # retried: claim number 2
    later = T0 + timedelta(minutes=1)
    booked_events = [
        BookedEvent(ids[0], again.meeting.attempts, "ev0", "created"),
        BookedEvent(ids[1], claims[ids[1]].meeting.attempts + 1, "ev1", "created"),  # lost
        BookedEvent(ids[2], claims[ids[2]].meeting.attempts, "ev2", "reconciled existing event"),
        BookedEvent(ids[3], 1, "ev3", "created"),  # never claimed
    ]
    assert store.record_bookings(booked_events, later) == {ids[0], ids[2]}
    states = [(get(store, i).state, get(store, i).provider_event_id) for i in ids]
    assert states == [(S.BOOKED, "ev0"), (S.BOOKING, None), (S.BOOKED, "ev2"), (S.APPROVED, None)]
    first = get(store, ids[0])
    assert (first.last_error, first.lease_until, first.updated_at) == (None, None, later)
    entries = [store.audit_trail(i)[-1] for i in (ids[0], ids[2])]
    assert [(e.actor, e.from_state, e.to_state, e.detail, e.at) for e in entries] == [
        ("worker", S.BOOKING, S.BOOKED, "created", later),
        ("worker", S.BOOKING, S.BOOKED, "reconciled existing event", later),
    ]
    assert store.record_bookings([], later) == set()


def test_mark_creates_attempted_is_fenced_per_claim_with_an_audit_row_each(
    store: InspectableStore,
) -> None:
    ids = [new_meeting(store, f"m{i}", start=T0 + timedelta(days=2 + i)) for i in range(4)]
    claims = [store.claim_for_booking(i, T0, 60) for i in ids[:3]]
    assert all(c is not None for c in claims)
    attempts = [c.attempts for c in claims if c is not None]
    later = T0 + timedelta(minutes=1)
    asked = [
        (ids[0], attempts[0]),
        (ids[1], attempts[1] + 1),  # a claim this caller no longer holds
        (ids[2], attempts[2]),
        (ids[3], 1),  # never claimed: not booking
    ]
    assert store.mark_creates_attempted(asked, later) == {ids[0], ids[2]}
    assert [get(store, i).create_attempted_at for i in ids] == [later, None, later, None]
    assert [store.audit_trail(i)[-1].detail for i in (ids[0], ids[2])] == ["create attempted"] * 2
    assert store.audit_trail(ids[1])[-1].detail != "create attempted"
    assert store.mark_creates_attempted([], later) == set()
    again = T0 + timedelta(minutes=2)  # the first time is kept
    assert store.mark_creates_attempted([(ids[0], attempts[0])], again) == {ids[0]}
    assert get(store, ids[0]).create_attempted_at == later


def test_an_approved_meeting_whose_create_was_attempted_holds_its_slot(
    store: InspectableStore,
) -> None:
    user_id = new_user(store)
    slot = T0 + timedelta(days=3)
    uncertain = new_meeting(store, "u", user_id=user_id, start=slot)
    claimed = store.claim_for_booking(uncertain, T0, 60)
    assert claimed is not None
    assert store.mark_create_attempted(uncertain, T0, attempt=claimed.attempts)
    assert store.transition(
        uncertain, S.APPROVED, actor="worker", now=T0, expect=S.BOOKING,
        attempt=claimed.attempts, next_attempt_at=T0 + timedelta(seconds=30),
    )  # fmt: skip
    end = slot + timedelta(minutes=30)
    found = store.active_overlapping([SAM], slot, end, exclude_id=0)
    assert [m.id for m in found] == [uncertain]


def test_meetings_by_state_oldest_first_with_a_limit(store: InspectableStore) -> None:
    user_id = new_user(store)
    ids = store.add_meetings(
        user_id, [proposal(f"k{d}", day=10 - d, state=S.APPROVED) for d in range(4)], now=T0
    )
    store.transition(ids[1], S.CANCELLED, actor="user", now=T0)
    assert [m.id for m in store.meetings_by_state(S.APPROVED)] == [ids[0], ids[2], ids[3]]
    assert [m.id for m in store.meetings_by_state(S.APPROVED, limit=2)] == [ids[0], ids[2]]
    assert [m.id for m in store.meetings_by_state(S.CANCELLED)] == [ids[1]]
    assert store.meetings_by_state(S.BOOKED) == []


def test_meetings_between_is_half_open_and_filters_by_state(store: InspectableStore) -> None:
    user_id, other = new_user(store), new_user(store, "bo@corp.example")
    ids = store.add_meetings(user_id, [proposal(f"k{d}", day=d) for d in (1, 2, 3)], now=T0)
    store.add_meetings(other, [proposal("other", day=2)], now=T0)
    store.transition(ids[0], S.CANCELLED, actor="user", now=T0)
    day2 = T0 + timedelta(days=2)
    assert store.meetings_between(user_id, day2 - timedelta(hours=1), day2) == []
    assert (
        store.meetings_between(user_id, day2 + timedelta(minutes=30), day2 + timedelta(hours=1))
        == []
    )
    window = store.meetings_between(user_id, T0, day2 + timedelta(minutes=1))
    assert [m.id for m in window] == ids[:2]
    only = store.meetings_between(user_id, T0, day2 + timedelta(minutes=1), states=[S.PROPOSED])
    assert [m.id for m in only] == [ids[1]]
    assert store.meetings_between(user_id, T0, day2, states=[]) == []


# -- transitions -----------------------------------------------------------------------------


def test_a_meeting_walks_its_whole_life_with_one_audit_row_per_step(
    store: InspectableStore,
) -> None:
    user_id = new_user(store)
    meeting_id = new_meeting(store, "k1", user_id=user_id, state=S.PROPOSED)
    later = T0 + timedelta(minutes=5)
    assert store.transition(meeting_id, S.APPROVED, actor="user:alex", now=later, detail="ok")
    assert store.claim_for_booking(meeting_id, later, 60) is not None
    path = [S.BOOKED, S.TENTATIVE, S.ACCEPTED, S.DECLINED, S.ACCEPTED, S.COMPLETED]
    for target in path:
        assert store.transition(meeting_id, target, actor="sync", now=later)
    m = get(store, meeting_id)
    assert (m.state, m.updated_at) == (S.COMPLETED, later)
    entries = store.audit_trail(meeting_id)
    assert [e.to_state for e in entries] == ["proposed", "approved", "booking", *path]
    assert (entries[1].actor, entries[1].from_state, entries[1].detail) == (
        "user:alex",
        "proposed",
        "ok",
    )
    assert {(e.at, e.user_id) for e in entries[1:]} == {(later, user_id)}
    assert [e.id for e in entries] == sorted(e.id for e in entries)


def test_illegal_transitions_raise_and_change_nothing(store: InspectableStore) -> None:
    meeting_id = new_meeting(store, "k1", state=S.PROPOSED)
    with pytest.raises(IllegalTransition, match="proposed to booked"):
        store.transition(meeting_id, S.BOOKED, actor="worker", now=T0)
    with pytest.raises(IllegalTransition, match="completed to approved"):
        store.transition(meeting_id, S.APPROVED, actor="worker", now=T0, expect=S.COMPLETED)
    # An illegal move from ``expect`` is refused before the row is even looked up
    with pytest.raises(IllegalTransition):
        store.transition(meeting_id + 99, S.BOOKED, actor="w", now=T0, expect=S.PROPOSED)
    assert store.transition(meeting_id, S.EXPIRED, actor="tick", now=T0)
    with pytest.raises(IllegalTransition, match="terminal"):
        store.transition(meeting_id, S.CANCELLED, actor="user", now=T0)
    assert get(store, meeting_id).state is S.EXPIRED
    assert len(store.audit_trail(meeting_id)) == 2


def test_transition_is_a_compare_and_set_on_the_expected_state(store: InspectableStore) -> None:
    meeting_id = new_meeting(store, "k1", state=S.PROPOSED)
    later = T0 + timedelta(minutes=5)
    assert store.transition(meeting_id, S.APPROVED, actor="a", now=later, expect=S.PROPOSED)
    # A second decision read "proposed" too: its compare-and-set finds "approved" and loses
    assert not store.transition(meeting_id, S.CANCELLED, actor="b", now=T0, expect=S.PROPOSED)
    # Stale and illegal from where the row is now: still just False, never an error
    assert store.transition(meeting_id, S.CANCELLED, actor="c", now=later)
    assert not store.transition(meeting_id, S.APPROVED, actor="d", now=T0, expect=S.PROPOSED)
    m = get(store, meeting_id)
    assert (m.state, m.updated_at) == (S.CANCELLED, later)
    assert trail(store, meeting_id) == [
        ("planner", None, "proposed"),
        ("a", "proposed", "approved"),
        ("c", "approved", "cancelled"),
    ]
    with pytest.raises(LookupError):
        store.transition(meeting_id + 99, S.CANCELLED, actor="e", now=T0)


def test_transition_is_fenced_on_the_claim_number(store: InspectableStore) -> None:
    # Given worker A claimed (attempt 1), stalled past its lease, and B re-claimed (attempt 2)
    meeting_id = new_meeting(store)
    first = store.claim_for_booking(meeting_id, T0, 10)
    assert first is not None
    second = store.claim_for_booking(meeting_id, T0 + timedelta(seconds=10), 10)
    assert second is not None
    assert (first.attempts, second.attempts) == (1, 2)
    # When A reports with its old claim number, nothing is written
    assert not store.transition(
        meeting_id, S.FAILED, actor="A", now=T0, expect=S.BOOKING, attempt=1, last_error="x"
    )
    m = get(store, meeting_id)
    assert (m.state, m.last_error) == (S.BOOKING, None)
    # And B's result lands
    assert store.transition(
        meeting_id, S.BOOKED, actor="B", now=T0, expect=S.BOOKING, attempt=2,
        provider_event_id="ev-1",
    )  # fmt: skip
    assert get(store, meeting_id).provider_event_id == "ev-1"
    assert trail(store, meeting_id)[-1] == ("B", "booking", "booked")


def test_transition_sets_fields_and_leaving_booking_drops_the_lease(
    store: InspectableStore,
) -> None:
    meeting_id = new_meeting(store)
    assert store.claim_for_booking(meeting_id, T0, 60) is not None
    retry_at = T0 + timedelta(minutes=10)
    assert store.transition(
        meeting_id, S.APPROVED, actor="worker", now=T0, next_attempt_at=retry_at,
        last_error="503", reason="retrying",
    )  # fmt: skip
    m = get(store, meeting_id)
    assert (m.state, m.next_attempt_at, m.lease_until, m.last_error, m.reason) == (
        S.APPROVED,
        retry_at,
        None,
        "503",
        "retrying",
    )
    # Entering booking through transition() keeps whatever lease it is given
    lease = T0 + timedelta(minutes=1)
    assert store.transition(meeting_id, S.BOOKING, actor="w", now=T0, lease_until=lease)
    assert get(store, meeting_id).lease_until == lease
    assert store.transition(meeting_id, S.APPROVED, actor="w", now=T0, lease_until=lease)
    assert get(store, meeting_id).lease_until == lease  # set explicitly: kept
    assert store.transition(meeting_id, S.CANCELLED, actor="w", now=T0, attempts=7)
    m = get(store, meeting_id)
    assert (m.lease_until, m.attempts) == (None, 7)
    with pytest.raises(TypeError, match="user_id"):
        store.transition(meeting_id, S.CANCELLED, actor="sync", now=T0, user_id=2)


def test_reschedule_follows_a_moved_event_until_the_meeting_ends(store: InspectableStore) -> None:
    user_id = new_user(store)
    meeting_id = booked(store, "k1", user_id=user_id)
    start = T0 + timedelta(days=4, hours=2)
    end = start + timedelta(minutes=45)
    later = T0 + timedelta(hours=1)
    assert store.reschedule(meeting_id, start, end, now=later, actor="sync")
    m = get(store, meeting_id)
    assert (m.start, m.end, m.state, m.updated_at) == (start, end, S.BOOKED, later)
    [entry] = store.audit_trail(meeting_id)[-1:]
    assert (entry.actor, entry.from_state, entry.to_state) == ("sync", None, None)
    assert entry.detail == (
        f"moved from {(T0 + timedelta(days=3)).isoformat()}.."
        f"{(T0 + timedelta(days=3, minutes=30)).isoformat()} to {start.isoformat()}.."
        f"{end.isoformat()}"
    )
    with pytest.raises(ValueError, match="end after"):
        store.reschedule(meeting_id, end, start, now=later, actor="sync")
    assert not store.reschedule(meeting_id + 99, start, end, now=later, actor="sync")
    store.transition(meeting_id, S.CANCELLED, actor="sync", now=later)
    assert not store.reschedule(meeting_id, T0, T0 + timedelta(hours=1), now=later, actor="s")
    assert get(store, meeting_id).start == start


# -- booking claims --------------------------------------------------------------------------


def test_claim_for_booking_takes_a_lease_and_counts_an_attempt(store: InspectableStore) -> None:
    meeting_id = new_meeting(store)
    claimed = store.claim_for_booking(meeting_id, T0, 60, actor="w1")
    assert claimed is not None
    assert (claimed.state, claimed.attempts, claimed.lease_until, claimed.updated_at) == (
        S.BOOKING,
        1,
        T0 + timedelta(seconds=60),
        T0,
    )
    assert claimed == get(store, meeting_id)
    assert store.audit_trail(meeting_id)[-1].detail == "claimed"
    assert trail(store, meeting_id)[-1] == ("w1", "approved", "booking")
    # Leased: nobody else gets it before the lease ends
    assert store.claim_for_booking(meeting_id, T0 + timedelta(seconds=59), 60) is None
    with pytest.raises(ValueError, match="lease_s"):
        store.claim_for_booking(meeting_id, T0, 0)


def test_an_expired_lease_is_re_claimed_with_a_new_claim_number(store: InspectableStore) -> None:
    meeting_id = new_meeting(store)
    assert store.claim_for_booking(meeting_id, T0, 10) is not None
    lease_end = T0 + timedelta(seconds=10)
    again = store.claim_for_booking(meeting_id, lease_end, 10, actor="w2")
    assert again is not None
    assert (again.attempts, again.lease_until) == (2, lease_end + timedelta(seconds=10))
    entry = store.audit_trail(meeting_id)[-1]
    assert (entry.actor, entry.from_state, entry.to_state) == ("w2", "booking", "booking")
    assert entry.detail == f"lease expired at {lease_end.isoformat()}: re-claimed"


def test_only_due_approved_meetings_are_claimable(store: InspectableStore) -> None:
    user_id = new_user(store)
    proposed = new_meeting(store, "p", user_id=user_id, state=S.PROPOSED)
    assert store.claim_for_booking(proposed, T0, 60) is None
    waiting = new_meeting(store, "w", user_id=user_id)
    assert store.claim_for_booking(waiting, T0, 60) is not None
    retry_at = T0 + timedelta(minutes=10)
    store.transition(waiting, S.APPROVED, actor="worker", now=T0, next_attempt_at=retry_at)
    assert store.claim_for_booking(waiting, retry_at - timedelta(seconds=1), 60) is None
    assert store.claim_for_booking(waiting, retry_at, 60) is not None
    done = new_meeting(store, "d", user_id=user_id)
    store.transition(done, S.CANCELLED, actor="user", now=T0)
    assert store.claim_for_booking(done, T0, 60) is None
    assert store.claim_for_booking(done + 99, T0, 60) is None
    assert get(store, proposed).attempts == 0


def test_concurrent_claims_have_exactly_one_winner(store: InspectableStore) -> None:
    user_id = new_user(store)
    ids = store.add_meetings(
        user_id, [proposal(f"k{i}", day=i + 1, state=S.APPROVED) for i in range(5)], now=T0
    )
    winners: defaultdict[int, list[int]] = defaultdict(list)
    lock = threading.Lock()

    def work(worker: int, barrier: threading.Barrier) -> None:
        for meeting_id in ids:
            barrier.wait()
            if store.claim_for_booking(meeting_id, T0, 60, actor=f"w{worker}") is not None:
                with lock:
                    winners[meeting_id].append(worker)

    run_together(4, work)
    assert {mid: len(w) for mid, w in winners.items()} == dict.fromkeys(ids, 1)
    assert {get(store, mid).attempts for mid in ids} == {1}


def test_mark_create_attempted_is_fenced_and_keeps_the_first_time(
    store: InspectableStore,
) -> None:
    meeting_id = new_meeting(store)
    assert not store.mark_create_attempted(meeting_id, T0, attempt=0)  # not booking
    claimed = store.claim_for_booking(meeting_id, T0, 10)
    assert claimed is not None
    assert not store.mark_create_attempted(meeting_id, T0, attempt=claimed.attempts + 1)
    assert get(store, meeting_id).create_attempted_at is None
    assert store.mark_create_attempted(meeting_id, T0, attempt=claimed.attempts)
    entry = store.audit_trail(meeting_id)[-1]
    assert (entry.actor, entry.detail, entry.from_state, entry.to_state) == (
        "worker",
        "create attempted",
        None,
        None,
    )
    # Back to approved for a retry, claimed again: a second mark keeps the first time
    store.transition(meeting_id, S.APPROVED, actor="worker", now=T0, expect=S.BOOKING)
    later = T0 + timedelta(minutes=1)
    again = store.claim_for_booking(meeting_id, later, 10)
    assert again is not None
    assert again.create_attempted_at == T0
    assert not store.mark_create_attempted(meeting_id, later, attempt=claimed.attempts)
    assert store.mark_create_attempted(meeting_id, later, attempt=again.attempts)
    m = get(store, meeting_id)
    assert (m.create_attempted_at, m.updated_at) == (T0, later)
    assert not store.mark_create_attempted(meeting_id + 99, T0, attempt=1)


# -- sending book messages -------------------------------------------------------------------


def test_approved_needing_send_marks_meetings_in_flight(store: InspectableStore) -> None:
    user_id = new_user(store)
    first = new_meeting(store, "a", user_id=user_id)
    new_meeting(store, "p", user_id=user_id, state=S.PROPOSED)
    second = new_meeting(store, "b", user_id=user_id, day=4)
    third = new_meeting(store, "c", user_id=user_id, day=5)
    assert store.approved_needing_send(T0, 2, send_lease_s=30) == [first, second]
    assert get(store, first).lease_until == T0 + timedelta(seconds=30)
    assert get(store, first).state is S.APPROVED
    assert store.approved_needing_send(T0, 10, send_lease_s=30) == [third]
    assert store.approved_needing_send(T0 + timedelta(seconds=29), 10, send_lease_s=30) == []
    # The message was lost: sent again once the send lease is over
    resend = T0 + timedelta(seconds=30)
    assert store.approved_needing_send(resend, 10, send_lease_s=30) == [first, second, third]
    # A claim ignores the in-flight mark (the message arrived)
    assert store.claim_for_booking(first, resend, 60) is not None
    with pytest.raises(ValueError, match="send_lease_s"):
        store.approved_needing_send(T0, 10, send_lease_s=0)


def test_approved_needing_send_waits_for_the_retry_time(store: InspectableStore) -> None:
    meeting_id = new_meeting(store)
    assert store.claim_for_booking(meeting_id, T0, 60) is not None
    retry_at = T0 + timedelta(minutes=10)
    store.transition(meeting_id, S.APPROVED, actor="worker", now=T0, next_attempt_at=retry_at)
    assert store.approved_needing_send(retry_at - timedelta(seconds=1), 10) == []
    assert store.approved_needing_send(retry_at, 10) == [meeting_id]


def test_approved_needing_send_re_drives_an_expired_booking_lease(
    store: InspectableStore,
) -> None:
    user_id = new_user(store)
    dead = new_meeting(store, "dead", user_id=user_id)
    alive = new_meeting(store, "alive", user_id=user_id, day=4)
    assert store.claim_for_booking(dead, T0, 10) is not None
    assert store.claim_for_booking(alive, T0, 100) is not None
    lease_end = T0 + timedelta(seconds=10)
    assert store.approved_needing_send(lease_end - timedelta(seconds=1), 10) == []
    assert store.approved_needing_send(lease_end, 10, send_lease_s=30) == [dead]
    m = get(store, dead)
    assert (m.state, m.next_attempt_at, m.lease_until, m.attempts) == (
        S.APPROVED,
        None,
        lease_end + timedelta(seconds=30),
        1,
    )
    entry = store.audit_trail(dead)[-1]
    assert (entry.actor, entry.from_state, entry.to_state) == ("tick", "booking", "approved")
    assert entry.detail == f"lease expired at {lease_end.isoformat()}: re-drive"
    assert get(store, alive).state is S.BOOKING
    # The dead worker's claim number is void; the next claim gets a new one
    assert not store.transition(dead, S.BOOKED, actor="w", now=T0, expect=S.BOOKING, attempt=1)
    again = store.claim_for_booking(dead, lease_end, 60)
    assert again is not None
    assert again.attempts == 2


def test_meetings_of_an_owner_whose_policy_is_gone_are_not_sent(store: InspectableStore) -> None:
    alex, bo = new_user(store), new_user(store, "bo@corp.example")
    kept = new_meeting(store, "kept", user_id=alex)
    held = new_meeting(store, "held", user_id=bo, day=4)
    leased = new_meeting(store, "leased", user_id=bo, day=5)
    assert store.claim_for_booking(leased, T0, 10) is not None
    store.mark_policy_missing(bo, now=T0)
    later = T0 + timedelta(seconds=10)
    assert store.approved_needing_send(later, 10) == [kept]
    assert get(store, leased).state is S.BOOKING
    assert store.clear_policy_missing(bo, now=later)
    assert store.approved_needing_send(later, 10) == [held, leased]


def test_an_owner_pause_is_set_audited_and_cleared(store: InspectableStore) -> None:
    alex = new_user(store)
    assert store.get_user(alex).paused_until is None  # type: ignore[union-attr]
    until = T0 + timedelta(days=4, hours=15)
    assert store.set_owner_pause(alex, until, now=T0)
    user = store.get_user(alex)
    assert user is not None
    assert user.paused_until == until
    assert user.paused_at(T0)
    assert not user.paused_at(until)
    assert store.set_owner_pause(alex, None, now=T0 + timedelta(hours=1))
    assert store.get_user(alex).paused_until is None  # type: ignore[union-attr]
    assert not store.set_owner_pause(10_000, until, now=T0)
    details = [(e.actor, e.detail) for e in store.user_events(alex, since=T0)]
    assert details == [("owner", f"paused until {until.isoformat()}"), ("owner", "resumed")]


def test_meetings_of_a_paused_owner_are_sent_once_the_pause_ends(store: InspectableStore) -> None:
    alex, bo = new_user(store), new_user(store, "bo@corp.example")
    kept = new_meeting(store, "kept", user_id=alex)
    held = new_meeting(store, "held", user_id=bo, day=4)
    store.set_owner_pause(bo, T0 + timedelta(hours=1), now=T0)
    assert store.approved_needing_send(T0, 10) == [kept]
    assert store.approved_needing_send(T0 + timedelta(hours=1), 10) == [kept, held]


def test_a_proposal_keeps_its_alternatives_in_utc(store: InspectableStore) -> None:
    alex = new_user(store)
    paris = ZoneInfo("Europe/Paris")
    alts = (
        (datetime(2026, 3, 4, 10, 0, tzinfo=paris), datetime(2026, 3, 4, 10, 30, tzinfo=paris)),
        (T0 + timedelta(days=5), T0 + timedelta(days=5, minutes=30)),
    )
    (meeting_id, plain_id) = store.add_meetings(
        alex, [replace(proposal("alts"), alternatives=alts), proposal("plain", day=6)], now=T0
    )
    stored = get(store, meeting_id).alternatives
    assert stored == alts
    assert all(s.utcoffset() == timedelta(0) and e.tzinfo is not None for s, e in stored)
    assert get(store, plain_id).alternatives == ()


# -- the tick --------------------------------------------------------------------------------


def test_the_tick_lease_is_won_once_per_period(store: InspectableStore) -> None:
    assert store.last_tick() is None
    assert store.try_acquire_tick("a", T0, 10)
    assert not store.try_acquire_tick("a", T0 + timedelta(seconds=9), 10)
    assert not store.try_acquire_tick("b", T0 + timedelta(seconds=9.999), 10)
    assert store.last_tick() == ("a", T0)
    assert store.try_acquire_tick("b", T0 + timedelta(seconds=10), 10)
    assert store.last_tick() == ("b", T0 + timedelta(seconds=10))
    with pytest.raises(ValueError, match="lease_s"):
        store.try_acquire_tick("c", T0, 0)


def test_the_tick_lease_has_one_winner_per_period_among_replicas(
    store: InspectableStore,
) -> None:
    rounds, period = 10, timedelta(seconds=10)
    wins: Counter[int] = Counter()
    lock = threading.Lock()

    def replica(i: int, barrier: threading.Barrier) -> None:
        for r in range(rounds):
            barrier.wait()
            now = T0 + r * period + timedelta(milliseconds=7 * i)  # clocks differ a little
            if store.try_acquire_tick(f"replica-{i}", now, period.total_seconds()):
                with lock:
                    wins[r] += 1

    run_together(4, replica)
    assert [wins[r] for r in range(rounds)] == [1] * rounds


# -- audit, contacts, etiquette, credentials -------------------------------------------------


def test_record_event_writes_an_audit_row_that_is_no_state_change(
    store: InspectableStore,
) -> None:
    user_id = new_user(store)
    meeting_id = new_meeting(store, user_id=user_id)
    later = T0 + timedelta(hours=1)
    store.record_event(now=later, actor="planner", detail="skipped x", user_id=user_id)
    store.record_event(now=later, actor="ops", detail="note", meeting_id=meeting_id)
    entry = store.audit_trail(meeting_id)[-1]
    assert (entry.actor, entry.detail, entry.at, entry.user_id) == ("ops", "note", later, None)
    events = store.user_events(user_id, since=later)
    assert [(e.actor, e.detail, e.meeting_id) for e in events] == [("planner", "skipped x", None)]
    assert [e.detail for e in store.user_events(user_id, since=T0)] == ["created", "skipped x"]


def test_record_contact_twice_is_a_no_op_and_the_latest_counts(store: InspectableStore) -> None:
    user_id, other = new_user(store), new_user(store, "bo@corp.example")
    old, recent = T0 - timedelta(days=30), T0 - timedelta(days=2)
    store.record_contact(user_id, "Sam@Corp.example", old, ContactSource.ORGANIC)
    store.record_contact(user_id, SAM, recent, ContactSource.GOODWILL)
    store.record_contact(user_id, SAM, recent, ContactSource.ORGANIC)  # same meeting again
    store.record_contact(user_id, SAM, old - timedelta(days=1), ContactSource.ORGANIC)  # older
    store.record_contact(user_id, KIM, old, ContactSource.ORGANIC)
    store.record_contact(other, SAM, T0, ContactSource.ORGANIC)
    assert store.last_contacts(user_id) == {SAM: recent, KIM: old}
    assert store.last_contacts(other) == {SAM: T0}
    assert store.last_contacts(user_id + 99) == {}
    with pytest.raises(ValueError, match="lunch"):
        store.record_contact(user_id, KIM, T0, "lunch")  # type: ignore[arg-type]


def test_stakeholder_status_defaults_and_is_replaced_whole(store: InspectableStore) -> None:
    user_id = new_user(store)
    assert store.get_stakeholder_status(user_id, "Sam@corp.example") == StakeholderStatus(
        user_id, SAM
    )
    assert store.stakeholder_statuses(user_id) == {}
    london = ZoneInfo("Europe/London")
    declined = StakeholderStatus(
        user_id,
        "SAM@corp.example",
        unanswered_in_row=2,
        backoff_until=datetime(2026, 4, 1, 12, 0, tzinfo=london),
        last_declined_at=T0,
    )
    store.save_stakeholder_status(declined)
    saved = store.get_stakeholder_status(user_id, SAM)
    assert saved == StakeholderStatus(
        user_id,
        SAM,
        unanswered_in_row=2,
        backoff_until=datetime(2026, 4, 1, 11, 0, tzinfo=UTC),
        last_declined_at=T0,
    )
    assert saved.backoff_until is not None
    assert saved.backoff_until.tzinfo is UTC
    paused = StakeholderStatus(user_id, SAM, paused_reason="leave", paused_until=T0)
    store.save_stakeholder_status(paused)
    assert store.get_stakeholder_status(user_id, SAM) == paused  # every field replaced
    assert store.stakeholder_statuses(user_id) == {SAM: paused}


def test_credentials_are_flagged_revoked_until_saved_again(store: InspectableStore) -> None:
    assert not store.mark_credential_revoked(ALEX, "google", "invalid_grant", now=T0)
    store.save_credential("Alex@corp.example", "google", b"grant", now=T0)
    assert store.load_credential(ALEX, "google") == b"grant"
    later = T0 + timedelta(hours=1)
    assert store.mark_credential_revoked("ALEX@corp.example", "google", "invalid_grant", now=later)
    assert store.load_credential(ALEX, "google") is None
    [revoked] = store.revoked_credentials()
    assert (revoked.user_email, revoked.provider, revoked.reason, revoked.updated_at) == (
        ALEX,
        "google",
        "invalid_grant",
        later,
    )
    assert not store.mark_credential_revoked(ALEX, "microsoft", "x", now=T0)
    store.save_credential(ALEX, "google", b"new grant", now=later)
    assert store.revoked_credentials() == []
    assert store.load_credential(ALEX, "google") == b"new grant"


def test_an_app_wide_grant_is_flagged_revoked_without_a_stored_one(
    store: InspectableStore,
) -> None:
    store.flag_credential_revoked("Bot@corp.example", "microsoft", "AADSTS7000215", now=T0)
    later = T0 + timedelta(minutes=5)
    store.flag_credential_revoked("bot@corp.example", "microsoft", "still refused", now=later)
    [revoked] = store.revoked_credentials()
    assert (revoked.user_email, revoked.provider, revoked.reason, revoked.updated_at) == (
        "bot@corp.example",
        "microsoft",
        "still refused",
        later,
    )
    assert store.load_credential("bot@corp.example", "microsoft") is None
    # A stored grant is flagged in place; reconnecting replaces either
    store.save_credential(ALEX, "google", b"grant", now=T0)
    store.flag_credential_revoked(ALEX, "google", "invalid_grant", now=T0)
    assert store.load_credential(ALEX, "google") is None
    store.save_credential("bot@corp.example", "microsoft", b"new", now=later)
    assert [(r.user_email, r.provider) for r in store.revoked_credentials()] == [(ALEX, "google")]


def test_a_tick_lease_from_a_clock_running_ahead_is_void(store: InspectableStore) -> None:
    ahead = T0 + timedelta(hours=1)
    assert store.try_acquire_tick("fast", ahead, 10, max_lease_s=30)
    # Without a bound the lease holds until the fast clock's time; with one it is void
    assert not store.try_acquire_tick("ok", T0, 10)
    assert store.try_acquire_tick("ok", T0, 10, max_lease_s=30)
    assert store.last_tick() == ("ok", T0)
    # A lease within the bound is respected
    assert not store.try_acquire_tick("other", T0 + timedelta(seconds=5), 10, max_lease_s=30)
    with pytest.raises(ValueError, match="max_lease_s"):
        store.try_acquire_tick("x", T0, 60, max_lease_s=30)


def test_heartbeats_count_failures_since_the_last_completed_round(
    store: InspectableStore,
) -> None:
    assert store.heartbeat("tick") is None
    assert store.record_heartbeat_failure("tick", "boom") == 0  # no round yet: nothing counted
    assert store.heartbeat("tick") is None
    beat_at = store.record_heartbeat("tick", "host:1")
    assert beat_at.tzinfo is UTC
    assert abs(beat_at - datetime.now(UTC)) < timedelta(minutes=5)  # the database's clock
    beat = store.heartbeat("tick")
    assert beat is not None
    assert (beat.name, beat.holder, beat.beat_at, beat.failures, beat.last_error) == (
        "tick",
        "host:1",
        beat_at,
        0,
        None,
    )
    assert store.record_heartbeat_failure("tick", "db down") == 1
    assert store.record_heartbeat_failure("tick", "x" * 600) == 2
    beat = store.heartbeat("tick")
    assert beat is not None
    assert (beat.beat_at, beat.failures, beat.last_error) == (beat_at, 2, "x" * 500)
    again = store.record_heartbeat("tick", "host:2")
    assert again >= beat_at
    beat = store.heartbeat("tick")
    assert beat is not None
    assert (beat.holder, beat.failures, beat.last_error) == ("host:2", 0, None)
    assert store.heartbeat("worker") is None


def test_database_now_is_aware_utc_and_moves_forward(store: InspectableStore) -> None:
    first = store.database_now()
    second = store.database_now()
    assert first.tzinfo is UTC
    assert first <= second
    assert abs(first - datetime.now(UTC)) < timedelta(minutes=5)


# -- replies held for the owner ------------------------------------------------------------------


def test_a_held_reply_is_kept_once_per_mail_and_decided_once(store: InspectableStore) -> None:
    from scheduler.app.records import HeldReplyState, NewHeldReply
    from scheduler.core.model import AttendeeStatus

    user_id = new_user(store)
    meeting_id = new_meeting(store, user_id=user_id)
    reply = NewHeldReply(
        meeting_id=meeting_id,
        user_id=user_id,
        sender=" Mallory@Evil.Example ",
        attendee="Sam@Corp.Example",
        answer=AttendeeStatus.DECLINED,
        uid="gw1@goodwill",
        sequence=None,
        reason="it was sent by mallory@evil.example, not by sam@corp.example",
        message_digest="d" * 64,
    )
    held = store.hold_reply(reply, now=T0)
    assert (held.sender, held.attendee) == ("mallory@evil.example", "sam@corp.example")
    assert (held.answer, held.state) == (AttendeeStatus.DECLINED, HeldReplyState.HELD)
    assert held.sequence is None
    assert held.received_at == T0
    assert held.decided_at is None
    assert store.hold_reply(reply, now=T0 + timedelta(hours=1)).id == held.id  # same mail
    assert store.get_held_reply(held.id) == held
    assert store.get_held_reply(held.id + 1000) is None
    assert store.held_replies(user_id) == [held]
    assert store.held_replies(new_user(store, KIM)) == []

    later = T0 + timedelta(days=1)
    assert store.decide_held_reply(held.id, HeldReplyState.APPLIED, now=later, actor="cli")
    assert not store.decide_held_reply(held.id, HeldReplyState.REFUSED, now=later, actor="cli")
    assert store.held_replies(user_id) == []
    [applied] = store.held_replies(user_id, states=[HeldReplyState.APPLIED])
    assert (applied.state, applied.decided_at) == (HeldReplyState.APPLIED, later)
    assert [e.detail for e in store.audit_trail(meeting_id)][-2:] == [
        f"reply held for the owner ({held.id})",
        f"held reply {held.id} applied",
    ]
    with pytest.raises(ValueError, match="applied or refused"):
        store.decide_held_reply(held.id, HeldReplyState.HELD, now=later, actor="cli")


# -- group meetings ----------------------------------------------------------------------------

LEE, MAX = "lee@corp.example", "max@corp.example"


def group_proposal(key: str = "g1", *, day: float = 3, **kw: Any) -> NewMeeting:
    return replace(
        proposal(key, day=day, email=KIM),
        attendees=(KIM, MAX, LEE),
        group_name="platform",
        presenter=KIM,
        quorum=2,
        **kw,
    )


def test_a_group_meeting_is_read_back_with_its_attendees_first_the_stakeholder(
    store: InspectableStore,
) -> None:
    uid = new_user(store)
    [gid] = store.add_meetings(uid, [group_proposal()], now=T0)
    [one] = store.add_meetings(uid, [proposal("o1", day=4)], now=T0)
    m = store.get_meeting(gid)
    assert m is not None
    assert m.is_group
    assert m.attendees == (KIM, LEE, MAX)  # the stakeholder first, then by e-mail
    assert m.attendee_status == ((KIM, "needsAction"), (LEE, "needsAction"), (MAX, "needsAction"))
    assert (m.group_name, m.presenter, m.quorum, m.stakeholder_email) == ("platform", KIM, 2, KIM)
    plain = store.get_meeting(one)
    assert plain is not None
    assert not plain.is_group
    assert (plain.attendees, plain.attendee_status, plain.quorum) == ((), (), None)
    assert [x.attendees for x in store.open_meetings(uid)] == [m.attendees, ()]
    assert store.meetings_by_state(S.PROPOSED)[0] == m
    # Written twice (a retried round): one row, its attendees once.
    assert store.add_meetings(uid, [group_proposal()], now=T0) == [gid]
    assert store.get_meeting(gid) == m


def test_a_group_meeting_must_start_with_its_stakeholder_and_list_each_attendee_once(
    store: InspectableStore,
) -> None:
    uid = new_user(store)
    with pytest.raises(ValueError, match="first attendee"):
        store.add_meetings(uid, [replace(group_proposal(), attendees=(MAX, KIM))], now=T0)
    with pytest.raises(ValueError, match="twice"):
        store.add_meetings(uid, [replace(group_proposal(), attendees=(KIM, MAX, MAX))], now=T0)
    assert store.open_meetings(uid) == []


def test_one_attendees_answer_is_set_once_with_an_audit_row(store: InspectableStore) -> None:
    uid = new_user(store)
    [gid] = store.add_meetings(uid, [group_proposal()], now=T0)
    later = T0 + timedelta(hours=1)
    assert store.set_attendee_status(gid, "Max@Corp.example", AttendeeStatus.DECLINED, now=later)
    assert not store.set_attendee_status(gid, MAX, AttendeeStatus.DECLINED, now=later)  # same
    assert not store.set_attendee_status(gid, SAM, AttendeeStatus.ACCEPTED, now=later)  # not one
    m = store.get_meeting(gid)
    assert m is not None
    assert dict(m.attendee_status) == {KIM: "needsAction", LEE: "needsAction", MAX: "declined"}
    assert store.audit_trail(gid)[-1].detail == f"attendee {MAX} answered declined"
    assert len(store.audit_trail(gid)) == 2  # created, answered


def test_active_overlapping_finds_a_group_meeting_by_any_attendee(store: InspectableStore) -> None:
    uid = new_user(store)
    [gid] = store.add_meetings(uid, [group_proposal(state=S.APPROVED)], now=T0)
    assert store.claim_for_booking(gid, T0, 60) is not None
    m = store.get_meeting(gid)
    assert m is not None
    assert m.attendees
    found = store.active_overlapping([LEE], m.start, m.end, exclude_id=0)
    assert [x.id for x in found] == [gid]
    assert found[0].attendees == (KIM, LEE, MAX)
    assert store.active_overlapping([SAM], m.start, m.end, exclude_id=0) == []


def test_group_meetings_are_the_users_group_ones_since_a_time(store: InspectableStore) -> None:
    uid, other = new_user(store), new_user(store, SAM)
    [old, new] = store.add_meetings(
        uid, [group_proposal("g-old", day=1), group_proposal("g-new", day=5)], now=T0
    )
    store.add_meetings(uid, [proposal("o1", day=5)], now=T0)
    store.add_meetings(other, [group_proposal("g-sam", day=5)], now=T0)
    assert [m.id for m in store.group_meetings(uid, since=T0)] == [old, new]
    assert [m.id for m in store.group_meetings(uid, since=T0 + timedelta(days=2))] == [new]


def test_stakeholder_load_counts_every_attendee_of_another_owners_group_meeting(
    store: InspectableStore,
) -> None:
    alex, bo = new_user(store), new_user(store, "bo@corp.example")
    # approved an hour after invited_since: its invite is going out to every attendee
    [gid] = store.add_meetings(bo, [group_proposal(state=S.APPROVED)], now=T0 + timedelta(hours=2))
    store.add_meetings(alex, [group_proposal("g-mine", day=4)], now=T0 + timedelta(hours=2))
    [gone] = store.add_meetings(bo, [group_proposal("g-gone", day=5)], now=T0)
    store.transition(gone, S.CANCELLED, actor="user", now=T0)
    start = get(store, gid).start
    meetings, invited = store.stakeholder_load(
        [KIM, "MAX@corp.example", LEE, SAM],
        T0,
        T0 + timedelta(days=10),
        exclude_user_id=alex,
        invited_since=T0 + timedelta(hours=1),
    )
    # Each attendee once (the first attendee is the stakeholder too: not counted twice);
    # the asking owner's own group meeting and a cancelled one are not counted.
    assert meetings == {KIM: [start], MAX: [start], LEE: [start]}
    assert invited == {KIM, MAX, LEE}


# -- issue 13: one query per round's meetings, one statement per booking write ----------------


def test_round_meetings_is_the_five_meeting_reads_of_a_round_in_one(
    store: InspectableStore,
) -> None:
    alex, kim, sam = new_user(store), new_user(store, KIM), new_user(store, SAM)
    now = T0 + timedelta(days=10)
    since, until, history = now - timedelta(days=30), now + timedelta(days=400), T0
    open_one = new_meeting(store, "open", user_id=alex, state=S.PROPOSED, day=12)
    declined = booked(store, "declined", user_id=alex, day=11)
    store.transition(declined, S.DECLINED, actor="sync", now=T0)
    old_decline = booked(store, "old-decline", user_id=alex, start=since - timedelta(days=2))
    store.transition(old_decline, S.DECLINED, actor="sync", now=T0)
    done = booked(store, "done", user_id=alex, day=2)
    store.transition(done, S.ACCEPTED, actor="sync", now=T0)
    store.transition(done, S.COMPLETED, actor="sync", now=T0)
    [group] = store.add_meetings(alex, [group_proposal("grp", day=13)], now=T0)
    new_meeting(store, "before-history", user_id=alex, state=S.PROPOSED, day=-1)
    new_meeting(store, "kims-alex", user_id=kim, email=ALEX, state=S.PROPOSED, day=14)
    new_meeting(store, "sams-alex", user_id=sam, email=ALEX, day=13)
    new_meeting(store, "kims-sam", user_id=kim, email=SAM, day=13)  # nobody's business here
    got = store.round_meetings(
        alex, "Alex@Corp.Example", now=now, declined_since=since, declined_until=until,
        history_since=history,
    )  # fmt: skip
    assert got.open == store.open_meetings(alex)
    assert got.declined == store.meetings_between(alex, since, until, states=[S.DECLINED])
    assert got.groups == store.group_meetings(alex, since=history)
    assert got.completed == store.meetings_between(alex, history, now, states=[S.COMPLETED])
    assert got.as_stakeholder == store.open_meetings_as_stakeholder(ALEX)
    # and they are not empty: each part was really read
    assert {open_one, group} <= {m.id for m in got.open}
    assert [m.id for m in got.declined] == [declined]
    assert [m.id for m in got.groups] == [group]
    assert got.groups[0].attendees == (KIM, LEE, MAX)
    assert [m.id for m in got.completed] == [done]
    assert [(o, m.idempotency_key) for o, m in got.as_stakeholder] == [
        (SAM, "sams-alex"),
        (KIM, "kims-alex"),
    ]
    nobody = store.round_meetings(
        999, "nobody@corp.example", now=now, declined_since=since, declined_until=until,
        history_since=history,
    )  # fmt: skip
    assert (nobody.open, nobody.declined, nobody.groups, nobody.completed) == ([], [], [], [])
    assert nobody.as_stakeholder == []


def test_claim_booking_claims_as_claim_for_booking_and_brings_the_owner(
    store: InspectableStore,
) -> None:
    alex = new_user(store)
    meeting_id = new_meeting(store, user_id=alex)
    claim = store.claim_booking(meeting_id, T0, 60, actor="w1")
    assert claim is not None
    assert claim.owner == store.get_user(alex)
    assert claim.meeting == get(store, meeting_id)
    assert (claim.meeting.state, claim.meeting.attempts, claim.meeting.lease_until) == (
        S.BOOKING,
        1,
        T0 + timedelta(seconds=60),
    )
    assert store.audit_trail(meeting_id)[-1].detail == "claimed"
    assert trail(store, meeting_id)[-1] == ("w1", "approved", "booking")
    assert len(store.audit_trail(meeting_id)) == 2  # created, claimed: one audit row per claim
    # Leased: not claimable again before the lease ends; then re-claimed, the old lease named
    assert store.claim_booking(meeting_id, T0 + timedelta(seconds=59), 60) is None
    lease_end = T0 + timedelta(seconds=60)
    again = store.claim_booking(meeting_id, lease_end, 10, actor="w2")
    assert again is not None
    assert (again.meeting.attempts, again.owner) == (2, store.get_user(alex))
    entry = store.audit_trail(meeting_id)[-1]
    assert (entry.actor, entry.from_state, entry.to_state) == ("w2", "booking", "booking")
    assert entry.detail == f"lease expired at {lease_end.isoformat()}: re-claimed"
    # Not due, not approved, unknown: nothing claimed, nothing written
    retry_at = T0 + timedelta(hours=1)
    waiting = new_meeting(store, "w", user_id=alex)
    assert store.claim_booking(waiting, T0, 60) is not None
    store.transition(waiting, S.APPROVED, actor="worker", now=T0, next_attempt_at=retry_at)
    assert store.claim_booking(waiting, retry_at - timedelta(seconds=1), 60) is None
    assert get(store, waiting).state == S.APPROVED
    proposed = new_meeting(store, "p", user_id=alex, state=S.PROPOSED)
    assert store.claim_booking(proposed, T0, 60) is None
    assert store.claim_booking(proposed + 99, T0, 60) is None
    assert len(store.audit_trail(proposed)) == 1
    with pytest.raises(ValueError, match="lease_s"):
        store.claim_booking(proposed, T0, 0)


def test_claim_booking_reads_a_group_meeting_with_its_attendees(store: InspectableStore) -> None:
    alex = new_user(store)
    [gid] = store.add_meetings(alex, [group_proposal(state=S.APPROVED)], now=T0)
    claim = store.claim_booking(gid, T0, 60)
    assert claim is not None
    assert claim.meeting == get(store, gid)
    assert claim.meeting.attendees == (KIM, LEE, MAX)
    assert claim.meeting.attendee_status == (
        (KIM, "needsAction"), (LEE, "needsAction"), (MAX, "needsAction"),
    )  # fmt: skip


def test_concurrent_claim_bookings_have_exactly_one_winner(store: InspectableStore) -> None:
    user_id = new_user(store)
    ids = store.add_meetings(
        user_id, [proposal(f"k{i}", day=i + 1, state=S.APPROVED) for i in range(5)], now=T0
    )
    winners: defaultdict[int, list[int]] = defaultdict(list)
    lock = threading.Lock()

    def work(worker: int, barrier: threading.Barrier) -> None:
        for meeting_id in ids:
            barrier.wait()
            if store.claim_booking(meeting_id, T0, 60, actor=f"w{worker}") is not None:
                with lock:
                    winners[meeting_id].append(worker)

    run_together(4, work)
    assert {mid: len(w) for mid, w in winners.items()} == dict.fromkeys(ids, 1)
    assert {get(store, mid).attempts for mid in ids} == {1}
    assert {len(store.audit_trail(mid)) for mid in ids} == {2}  # created, claimed once


def test_a_fenced_transition_of_an_unknown_meeting_raises_and_a_miss_writes_nothing(
    store: InspectableStore,
) -> None:
    with pytest.raises(Exception, match="no meeting with id 12345") as raised:
        store.transition(12345, S.CANCELLED, actor="x", now=T0, expect=S.PROPOSED)
    assert type(raised.value).__name__ == "UnknownMeeting"  # the fake has its own class
    meeting_id = new_meeting(store, state=S.PROPOSED)
    assert not store.transition(meeting_id, S.CANCELLED, actor="x", now=T0, expect=S.APPROVED)
    assert len(store.audit_trail(meeting_id)) == 1
    assert store.transition(
        meeting_id, S.CANCELLED, actor="x", now=T0, expect=S.PROPOSED, detail="why"
    )
    entry = store.audit_trail(meeting_id)[-1]
    assert (entry.actor, entry.from_state, entry.to_state, entry.detail) == (
        "x", "proposed", "cancelled", "why",
    )  # fmt: skip
    assert get(store, meeting_id).state == S.CANCELLED
