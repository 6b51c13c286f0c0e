"""Booking one approved meeting (``book_meeting``) on every store, with the fake calendar."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import pytest

from scheduler.app import decisions
from scheduler.app.booking import BookOutcome, BookResult
from scheduler.core.errors import InvalidRequest, ProviderUnavailable, RateLimited
from scheduler.core.intervals import Interval
from scheduler.core.states import MeetingState
from tests.usecase.fakes import FAKE_PROVIDER, FakeEvent, Operation
from tests.usecase.world import (
    ALEX,
    JO,
    KIM,
    NOW,
    PRIYA,
    PRIYA_POLICY,
    SAM,
    SAM_POLICY,
    World,
    alex_policy,
)

S = MeetingState
B = BookOutcome


class WorkerDied(Exception):
    """The worker process vanished mid-call (not an error the use case handles)."""


def _unavailable(message: str = "503") -> ProviderUnavailable:
    return ProviderUnavailable(message, provider=FAKE_PROVIDER, status=503)


def _approved_with(world: World, stakeholder: str = KIM) -> int:
    world.plan()
    return world.only(ALEX, stakeholder, S.APPROVED).id


def _live_events_overlapping(world: World, attendee: str, start: datetime) -> list[FakeEvent]:
    slot = Interval(start, start + timedelta(minutes=30))
    return [
        e
        for e in world.calendar.events(attendee=attendee)
        if Interval(e.start, e.end).overlaps(slot)
    ]


def _two_owners_want_kim_at_once(world: World) -> tuple[int, int]:
    """Alex and Priya both have an approved coffee with Kim in the same slot (Alex's id first)."""
    world.write_policy(PRIYA, PRIYA_POLICY)
    world.register()
    start = NOW.replace(hour=10) + timedelta(days=2)
    return world.add_meeting(ALEX, KIM, start), world.add_meeting(PRIYA, KIM, start)


def _while_in_flight(
    world: World, operation: Operation, meeting_id: int
) -> Callable[[], list[BookResult]]:
    """Book ``meeting_id`` while the next ``operation`` call is in flight; returns its result."""
    results: list[BookResult] = []

    def other_worker() -> None:
        results.append(world.book(meeting_id))

    world.calendar.during_next(operation, other_worker)
    return lambda: results


def test_book_meeting_books_exactly_one_event_and_a_second_call_is_already(
    world: World,
) -> None:
    meeting_id = _approved_with(world)
    assert world.book(meeting_id).outcome is B.BOOKED
    assert world.book(meeting_id).outcome is B.ALREADY  # a redelivered message
    booked = world.meeting(meeting_id)
    assert booked.state is S.BOOKED
    [event] = world.calendar.events(attendee=KIM)
    assert (event.id, event.key, event.organizer) == (
        booked.provider_event_id,
        booked.idempotency_key,
        ALEX,
    )
    assert (event.start, event.end) == (booked.start, booked.end)
    assert "Kim" in event.title
    assert [(e.from_state, e.to_state) for e in world.store.audit_trail(meeting_id)] == [
        (None, "approved"),
        ("approved", "booking"),
        (None, None),  # create attempted
        ("booking", "booked"),
    ]
    assert world.store.audit_trail(meeting_id)[-1].detail == "created"
    assert world.calendar.calls["create_event"] == 1


def test_the_tick_and_the_workers_book_every_auto_meeting_once(world: World) -> None:
    world.plan()
    assert [r.outcome for r in world.book_all()] == [B.BOOKED, B.BOOKED]
    assert world.book_all() == []  # nothing left to send
    assert {e.attendee for e in world.calendar.events()} == {KIM, JO}
    assert world.only(ALEX, SAM).state is S.PROPOSED  # waits for Alex


def test_slot_taken_at_the_recheck_cancels_and_replans_the_user(world: World) -> None:
    meeting_id = _approved_with(world)
    m = world.meeting(meeting_id)
    world.calendar.add_busy(KIM, m.start - timedelta(minutes=15), m.end + timedelta(minutes=15))
    world.advance(timedelta(minutes=1))
    assert world.book(meeting_id).outcome is B.SLOT_TAKEN
    assert world.meeting(meeting_id).state is S.CANCELLED
    assert world.store.audit_trail(meeting_id)[-1].detail.startswith("slot_taken")
    assert world.calendar.events(attendee=KIM) == []
    assert world.calendar.calls["create_event"] == 0
    user = world.user()
    assert user.next_plan_at is not None
    assert user.next_plan_at <= world.clock.now()
    # The next round proposes Kim a fresh slot clear of the new busy block
    run = world.plan()
    fresh = [world.meeting(i) for i in run.meeting_ids]
    [new] = [x for x in fresh if x.stakeholder_email == KIM]
    assert new.id != meeting_id
    assert new.idempotency_key != m.idempotency_key
    blocked = Interval(m.start - timedelta(minutes=15), m.end + timedelta(minutes=15))
    assert not Interval(new.start, new.end).overlaps(blocked)


def test_a_transient_error_retries_with_backoff_then_books(world: World) -> None:
    meeting_id = _approved_with(world)
    world.calendar.fail_next("create_event", _unavailable(), times=2)
    first = world.book(meeting_id)
    assert (first.outcome, first.retry_after_s) == (B.RETRY, 30.0)
    assert world.meeting(meeting_id).next_attempt_at == NOW + timedelta(seconds=30)
    assert world.book(meeting_id).outcome is B.ALREADY  # not yet due
    assert world.store.approved_needing_send(world.clock.now(), 10) == [
        world.only(ALEX, JO).id
    ]  # Kim's retry is not sent before it is due
    world.advance(timedelta(seconds=30))
    assert world.store.approved_needing_send(world.clock.now(), 10) == [meeting_id]  # due now
    second = world.book(meeting_id)
    assert (second.outcome, second.retry_after_s) == (B.RETRY, 60.0)
    world.advance(timedelta(seconds=60))
    assert world.store.approved_needing_send(world.clock.now(), 10) == [meeting_id]
    assert world.book(meeting_id).outcome is B.BOOKED
    booked = world.meeting(meeting_id)
    assert (booked.attempts, booked.last_error) == (3, None)
    assert [e.id for e in world.calendar.events(attendee=KIM)] == [booked.provider_event_id]


def test_a_rate_limit_retries_after_the_providers_retry_after(world: World) -> None:
    meeting_id = _approved_with(world)
    world.calendar.fail_next(
        "create_event", RateLimited("429", retry_after_s=90, provider=FAKE_PROVIDER)
    )
    result = world.book(meeting_id)
    assert (result.outcome, result.retry_after_s) == (B.RETRY, 90)
    m = world.meeting(meeting_id)
    assert (m.state, m.next_attempt_at) == (S.APPROVED, NOW + timedelta(seconds=90))
    assert "RateLimited" in (m.last_error or "")


def test_a_create_whose_reply_was_lost_is_reconciled_into_exactly_one_event(
    world: World,
) -> None:
    meeting_id = _approved_with(world)
    world.calendar.lose_next_create_reply(_unavailable("timeout"))
    # The create reached the provider, but the worker heard nothing back
    assert world.book(meeting_id).outcome is B.RETRY
    assert len(world.calendar.events(attendee=KIM)) == 1
    world.advance(timedelta(seconds=30))
    assert world.book(meeting_id).outcome is B.BOOKED
    [event] = world.calendar.events(attendee=KIM)
    booked = world.meeting(meeting_id)
    assert (booked.state, booked.provider_event_id) == (S.BOOKED, event.id)
    assert booked.create_attempted_at == NOW  # the first attempt's time is kept
    assert world.store.audit_trail(meeting_id)[-1].detail == "reconciled existing event"


def test_a_worker_that_died_after_its_create_is_re_driven_without_a_second_event(
    world: World,
) -> None:
    meeting_id = _approved_with(world)
    world.calendar.lose_next_create_reply(WorkerDied())
    with pytest.raises(WorkerDied):
        world.book(meeting_id)
    stuck = world.meeting(meeting_id)
    assert stuck.state is S.BOOKING
    assert stuck.lease_until is not None
    # The tick re-drives it once the lease is over; the next worker finds the event
    world.advance_past(stuck.lease_until, timedelta(0))
    assert meeting_id in world.store.approved_needing_send(world.clock.now(), 10)
    assert world.book(meeting_id).outcome is B.BOOKED
    [event] = world.calendar.events(attendee=KIM)
    assert world.meeting(meeting_id).provider_event_id == event.id


def test_a_redelivered_message_while_the_first_worker_is_creating_is_already(
    world: World,
) -> None:
    meeting_id = _approved_with(world)
    duplicate = _while_in_flight(world, "create_event", meeting_id)
    assert world.book(meeting_id).outcome is B.BOOKED
    assert [r.outcome for r in duplicate()] == [B.ALREADY]
    assert world.calendar.calls["create_event"] == 1
    assert len(world.calendar.events(attendee=KIM)) == 1


def test_a_stalled_workers_late_failure_cannot_undo_the_next_workers_booking(
    world: World,
) -> None:
    # Given worker A claimed the meeting and stalled past its lease
    meeting_id = _approved_with(world)
    stalled = world.store.claim_for_booking(meeting_id, world.clock.now(), world.p.lease_s)
    assert stalled is not None
    world.advance(timedelta(seconds=world.p.lease_s))
    reported: list[bool] = []

    def stale_report() -> None:  # A wakes up while B's create is in flight and gives up
        moved = world.store.transition(
            meeting_id, S.FAILED, actor="worker", now=world.clock.now(),
            expect=S.BOOKING, attempt=stalled.attempts, last_error="timeout",
        )  # fmt: skip
        reported.append(moved)

    world.calendar.during_next("create_event", stale_report)
    # When worker B re-claims and books it
    assert world.book(meeting_id).outcome is B.BOOKED
    # Then A's report was refused (its claim number is stale) and the invite has its meeting
    assert reported == [False]
    booked = world.meeting(meeting_id)
    assert (booked.state, booked.attempts, booked.last_error) == (S.BOOKED, 2, None)
    assert [e.id for e in world.calendar.events(attendee=KIM)] == [booked.provider_event_id]


def test_an_uncertain_create_holds_its_slot_until_its_retry_finds_out(world: World) -> None:
    # Given Alex's create for Kim failed on the wire: nobody knows whether it landed
    first, second = _two_owners_want_kim_at_once(world)
    world.calendar.fail_next("create_event", _unavailable("connection reset"))
    assert world.book(first).outcome is B.RETRY
    assert world.meeting(first).create_attempted_at is not None
    # When Priya books Kim for the same slot, her worker yields to it
    assert world.book(second).outcome is B.SLOT_TAKEN
    # And Alex's retry finds no event, books, and Kim gets one invite
    world.advance(timedelta(seconds=30))
    assert world.book(first).outcome is B.BOOKED
    assert len(_live_events_overlapping(world, KIM, world.meeting(first).start)) == 1


def test_a_stakeholder_removed_after_a_lost_create_gets_the_stray_invite_cancelled(
    world: World,
) -> None:
    meeting_id = _approved_with(world)
    world.calendar.lose_next_create_reply(_unavailable("timeout"))
    assert world.book(meeting_id).outcome is B.RETRY
    # When Kim leaves the policy before the retry
    world.write_policy(ALEX, alex_policy(without=KIM))
    world.advance(timedelta(minutes=5))
    result = world.book(meeting_id)
    # Then the meeting ends and the invite that did go out is taken back, found by its key
    assert (result.outcome, result.detail) == (
        B.CANCELLED,
        "stakeholder no longer in the policy",
    )
    assert world.meeting(meeting_id).state is S.CANCELLED
    assert world.calendar.events(attendee=KIM) == []
    [stray] = world.calendar.events(attendee=KIM, cancelled=True)
    assert stray.key == world.meeting(meeting_id).idempotency_key
    assert world.calendar.calls["cancel_by_key"] == 1


def test_a_removed_stakeholder_without_a_create_is_cancelled_without_calling_the_provider(
    world: World,
) -> None:
    meeting_id = _approved_with(world)
    world.write_policy(ALEX, alex_policy(without=KIM))
    assert world.book(meeting_id).outcome is B.CANCELLED
    assert world.calendar.calls["cancel_by_key"] == 0
    assert world.calendar.calls["create_event"] == 0


def test_retries_exhausted_fail_the_meeting_with_the_reason(world: World) -> None:
    world.p.max_attempts = 3
    meeting_id = _approved_with(world)
    world.calendar.fail_next("create_event", _unavailable("down"), times=3)
    outcomes = []
    for _ in range(3):
        outcomes.append(world.book(meeting_id).outcome)
        world.advance(timedelta(hours=7))
    assert outcomes == [B.RETRY, B.RETRY, B.FAILED]
    failed = world.meeting(meeting_id)
    assert failed.state is S.FAILED
    assert "gave up after 3 attempts" in (failed.last_error or "")
    assert world.calendar.events(attendee=KIM) == []
    assert world.book(meeting_id).outcome is B.ALREADY


def test_a_permanent_provider_error_fails_at_once(world: World) -> None:
    meeting_id = _approved_with(world)
    world.calendar.fail_next("create_event", InvalidRequest("bad attendee", provider="fake"))
    assert world.book(meeting_id).outcome is B.FAILED
    failed = world.meeting(meeting_id)
    assert (failed.state, failed.attempts) == (S.FAILED, 1)
    assert "bad attendee" in (failed.last_error or "")


def test_a_slot_that_passed_before_booking_fails(world: World) -> None:
    meeting_id = _approved_with(world)
    world.advance_past(world.meeting(meeting_id).start)
    assert world.book(meeting_id).outcome is B.FAILED
    assert world.meeting(meeting_id).last_error == "slot passed before it could be booked"
    assert world.calendar.calls["create_event"] == 0


# -- two bookings at the same time -------------------------------------------------------------


@pytest.mark.parametrize("in_flight", ["first", "second"])
@pytest.mark.parametrize("operation", ["busy", "create_event"])
def test_two_owners_booking_one_stakeholder_at_once_make_one_event(
    world: World, in_flight: str, operation: Operation
) -> None:
    # Given Alex's and Priya's workers book Kim for the same slot, one while the other's
    # re-check (busy) or create call is in flight
    first, second = _two_owners_want_kim_at_once(world)
    outer, inner = (first, second) if in_flight == "first" else (second, first)
    inner_result = _while_in_flight(world, operation, inner)
    outer_result = world.book(outer)
    [inner_outcome] = inner_result()
    # Then exactly one of them books, and Kim receives one invite for that slot
    outcomes = sorted([outer_result.outcome.value, inner_outcome.outcome.value])
    assert outcomes == ["booked", "slot_taken"]
    start = world.meeting(first).start
    assert len(_live_events_overlapping(world, KIM, start)) == 1
    states = sorted(world.meeting(i).state.value for i in (first, second))
    assert states == ["booked", "cancelled"]


@pytest.mark.parametrize("in_flight", ["alex", "sam"])
def test_two_users_who_list_each_other_booking_at_once_get_one_coffee(
    world: World, in_flight: str
) -> None:
    world.write_policy(SAM, SAM_POLICY)
    world.register()
    day = NOW.replace(hour=15) + timedelta(days=2)
    alex_side = world.add_meeting(ALEX, SAM, day)
    sam_side = world.add_meeting(SAM, ALEX, day + timedelta(days=1))
    outer, inner = (alex_side, sam_side) if in_flight == "alex" else (sam_side, alex_side)
    inner_result = _while_in_flight(world, "create_event", inner)
    outer_result = world.book(outer)
    [inner_outcome] = inner_result()
    assert sorted([outer_result.outcome.value, inner_outcome.outcome.value]) == [
        "booked",
        "cancelled",
    ]
    pair_events = world.calendar.events(attendee=SAM) + world.calendar.events(attendee=ALEX)
    assert len(pair_events) == 1
    [loser] = [i for i in (alex_side, sam_side) if world.meeting(i).state is S.CANCELLED]
    assert world.store.audit_trail(loser)[-1].detail.startswith("pair_taken")


def _pair_with_alexs_proposal(world: World) -> tuple[int, int]:
    """Alex proposed Sam and Sam (a user too) auto-booked Alex, each on their own day."""
    world.write_policy(SAM, SAM_POLICY)
    world.register()
    day = NOW.replace(hour=15) + timedelta(days=2)
    alex_proposal = world.add_meeting(ALEX, SAM, day, state=S.PROPOSED)
    sam_meeting = world.add_meeting(SAM, ALEX, day + timedelta(days=1))
    return alex_proposal, sam_meeting


def test_approving_a_proposal_whose_pair_the_other_side_booked_withdraws_it(
    world: World,
) -> None:
    alex_proposal, sam_meeting = _pair_with_alexs_proposal(world)
    assert world.book(sam_meeting).outcome is B.BOOKED
    assert not decisions.approve(world.p, alex_proposal)
    assert world.meeting(alex_proposal).state is S.CANCELLED
    assert world.store.audit_trail(alex_proposal)[-1].detail == decisions.WITHDRAWN_PAIR
    assert world.book(alex_proposal).outcome is B.ALREADY
    assert len(world.calendar.events(attendee=ALEX)) == 1
    assert world.calendar.events(attendee=SAM) == []


def test_an_approved_meeting_whose_pair_was_booked_meanwhile_is_not_a_second_coffee(
    world: World,
) -> None:
    alex_proposal, sam_meeting = _pair_with_alexs_proposal(world)
    assert decisions.approve(world.p, alex_proposal)
    assert world.book(sam_meeting).outcome is B.BOOKED
    assert world.book(alex_proposal).outcome is B.CANCELLED
    assert world.store.audit_trail(alex_proposal)[-1].detail.startswith("pair_taken")
    assert len(world.calendar.events(attendee=ALEX)) == 1
    assert world.calendar.events(attendee=SAM) == []


def test_an_unreadable_reply_in_the_recheck_is_retried_later_not_left_in_booking(
    world: World,
) -> None:
    """A malformed provider reply (CalendarDataError, not a ConnectorError) used to escape the
    booking and leave the meeting in ``booking`` until its lease ran out."""
    from scheduler.core.errors import CalendarDataError

    meeting_id = _approved_with(world)
    world.calendar.fail_next("busy", CalendarDataError("google freeBusy", "unreadable time 'x'"))

    result = world.book(meeting_id)

    assert result.outcome is B.RETRY
    assert result.retry_after_s == 600.0
    m = world.meeting(meeting_id)
    assert m.state == S.APPROVED
    assert "unreadable calendar data" in (m.last_error or "")
    world.advance(timedelta(seconds=601))
    assert world.book(meeting_id).outcome is B.BOOKED
