"""Several bookings in one message (``book_meetings``), on every store, with the fake calendar.

Issue 13: booking each of a planning round's meetings on its own read both calendars again for
every one (two of a booking's three provider calls). A batch reads each owner once; every
booking otherwise behaves exactly as it does alone.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker

from scheduler.app import booking
from scheduler.app.booking import BookOutcome
from scheduler.app.booking_batch import BATCH_DEADLINE, RELEASED, book_meetings
from scheduler.app.recheck import SHARED_READ_MAX_AGE, SharedRead
from scheduler.core.errors import CalendarDataError, ProviderUnavailable, RateLimited
from scheduler.core.intervals import Interval
from scheduler.core.model import BusyResult
from scheduler.core.states import MeetingState
from tests.usecase.fakes import FAKE_PROVIDER
from tests.usecase.world import ALEX, JO, KIM, NOW, PRIYA, PRIYA_POLICY, SAM, World
from workers.actors import QUEUE, declare_actors
from workers.broker import make_broker

B = BookOutcome


def _slot(day: int, hour: int, minute: int = 0) -> datetime:
    return NOW.replace(hour=hour, minute=minute) + timedelta(days=day)


def _alex_three(world: World) -> list[int]:
    """Three approved coffees of Alex, on three days."""
    world.register()
    return [
        world.add_meeting(ALEX, who, _slot(day, 10)) for day, who in ((2, KIM), (3, JO), (4, SAM))
    ]


def test_one_read_serves_every_recheck_of_an_owners_batch(world: World) -> None:
    ids = _alex_three(world)
    world.calendar.calls.clear()

    results = book_meetings(world.p, ids)

    assert [(i, r.outcome) for i, r in results] == [(i, B.BOOKED) for i in ids]
    assert world.calendar.calls["busy"] == 1  # alone, each booking read both calendars
    assert world.calendar.calls["create_event"] == 3
    assert all(world.meeting(i).state == MeetingState.BOOKED for i in ids)


def test_each_booking_alone_reads_both_calendars_again(world: World) -> None:
    """The baseline the batch is measured against: one re-check read per booking."""
    ids = _alex_three(world)
    world.calendar.calls.clear()
    assert [world.book(i).outcome for i in ids] == [B.BOOKED] * 3
    assert world.calendar.calls["busy"] == 3


def test_a_slot_taken_in_the_shared_read_ends_only_that_meeting(world: World) -> None:
    ids = _alex_three(world)
    start = world.meeting(ids[1]).start
    world.calendar.add_busy(JO, start, start + timedelta(hours=1))

    outcomes = [r.outcome for _, r in book_meetings(world.p, ids)]

    assert outcomes == [B.BOOKED, B.SLOT_TAKEN, B.BOOKED]
    assert world.meeting(ids[1]).state == MeetingState.CANCELLED
    assert [e.attendee for e in world.calendar.events()] == [KIM, SAM]


def test_the_owners_own_busy_time_in_the_shared_read_counts_with_the_buffer(
    world: World,
) -> None:
    ids = _alex_three(world)
    start = world.meeting(ids[2]).start
    # Alex is busy until 5 minutes before the coffee: inside the policy's 10-minute buffer.
    world.calendar.add_busy(ALEX, start - timedelta(hours=1), start - timedelta(minutes=5))

    outcomes = [r.outcome for _, r in book_meetings(world.p, ids)]

    assert outcomes == [B.BOOKED, B.BOOKED, B.SLOT_TAKEN]


def test_a_failed_shared_read_leaves_each_meeting_to_read_for_itself(world: World) -> None:
    ids = _alex_three(world)
    world.calendar.fail_next("busy", ProviderUnavailable("503", provider=FAKE_PROVIDER, status=503))
    world.calendar.calls.clear()

    outcomes = [r.outcome for _, r in book_meetings(world.p, ids)]

    assert outcomes == [B.BOOKED] * 3
    assert world.calendar.calls["busy"] == 1 + 3


def test_each_owner_in_a_batch_is_read_once(world: World) -> None:
    world.write_policy(PRIYA, PRIYA_POLICY)
    ids = _alex_three(world)
    ids.append(world.add_meeting(PRIYA, KIM, _slot(5, 11)))
    ids.append(world.add_meeting(PRIYA, KIM, _slot(8, 11)))
    world.calendar.calls.clear()

    outcomes = [r.outcome for _, r in book_meetings(world.p, ids)]

    assert outcomes == [B.BOOKED] * 5
    assert world.calendar.calls["busy"] == 2


def test_a_meeting_given_twice_or_already_booked_is_booked_once(world: World) -> None:
    ids = _alex_three(world)
    assert world.book(ids[0]).outcome is B.BOOKED

    results = book_meetings(world.p, [ids[0], ids[1], ids[1], ids[2]])

    assert [(i, r.outcome) for i, r in results] == [
        (ids[0], B.ALREADY),
        (ids[1], B.BOOKED),
        (ids[2], B.BOOKED),
    ]
    assert world.calendar.calls["create_event"] == 3


def test_two_owners_booking_one_stakeholder_at_once_still_book_once(world: World) -> None:
    """The store guard is per meeting inside a batch: Priya's batch, claimed while Alex's
    meeting with Kim at the same time is being booked, backs off."""
    world.write_policy(PRIYA, PRIYA_POLICY)
    world.register()
    start = _slot(2, 10)
    alex = world.add_meeting(ALEX, KIM, start)
    priya = [world.add_meeting(PRIYA, KIM, start), world.add_meeting(PRIYA, KIM, _slot(9, 10))]
    seen: list[list[BookOutcome]] = []
    world.calendar.during_next(
        "create_event", lambda: seen.append([r.outcome for _, r in book_meetings(world.p, priya)])
    )

    assert world.book(alex).outcome is B.BOOKED
    assert seen == [[B.SLOT_TAKEN, B.BOOKED]]
    assert len([e for e in world.calendar.events(attendee=KIM) if e.start == start]) == 1


def test_a_short_retry_in_a_batch_is_sent_again_alone(world: World) -> None:
    ids = _alex_three(world)
    broker = make_broker("embedded", set_global=False)
    assert isinstance(broker, StubBroker)
    actors = declare_actors(broker, world.p)
    world.calendar.fail_next(
        "create_event", RateLimited("429", retry_after_s=5, provider=FAKE_PROVIDER)
    )

    actors.book_meetings.fn(ids)

    assert [world.meeting(i).state for i in ids] == [
        MeetingState.APPROVED,
        MeetingState.BOOKED,
        MeetingState.BOOKED,
    ]
    delayed = [dramatiq.Message.decode(raw) for raw in list(broker.queues[f"{QUEUE}.DQ"].queue)]
    assert [(m.actor_name, m.args) for m in delayed] == [("book_meeting", (ids[0],))]
    assert delayed[0].options["eta"] > 0


# -- found by review: each meeting of a batch on its own -----------------------------------------

S = MeetingState


def _two_inside_the_buffer(world: World) -> list[int]:
    """Alex's coffees at 10:00-10:30 (Kim) and 10:35-11:05 (Jo): 5 minutes apart, and Alex's
    buffer is 10 minutes (the policy changed after they were planned, say)."""
    world.register()
    return [
        world.add_meeting(ALEX, KIM, _slot(2, 10)),
        world.add_meeting(ALEX, JO, _slot(2, 10, 35)),
    ]


def test_alone_the_second_sees_the_first_inside_the_owners_buffer(world: World) -> None:
    assert [world.book(i).outcome for i in _two_inside_the_buffer(world)] == [
        B.BOOKED,
        B.SLOT_TAKEN,
    ]


def test_in_a_batch_the_second_sees_the_event_the_first_just_created(world: World) -> None:
    ids = _two_inside_the_buffer(world)
    assert [r.outcome for _, r in book_meetings(world.p, ids)] == [B.BOOKED, B.SLOT_TAKEN]
    assert world.calendar.calls["busy"] == 1


def test_an_unexpected_error_in_one_meeting_does_not_stop_the_others(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = _alex_three(world)
    real = booking._create

    def broken_for_the_first(b: Any, stakeholder: Any) -> Any:
        if b.m.id == ids[0]:
            raise RuntimeError("a bug that hits this one meeting")
        return real(b, stakeholder)

    monkeypatch.setattr(booking, "_create", broken_for_the_first)
    with pytest.raises(RuntimeError):  # raised once the others are done
        book_meetings(world.p, ids)

    assert [world.meeting(i).state for i in ids] == [S.BOOKING, S.BOOKED, S.BOOKED]
    assert world.calendar.calls["create_event"] == 2


def test_an_unreadable_shared_read_leaves_each_meeting_to_read_for_itself(world: World) -> None:
    ids = _alex_three(world)
    world.calendar.fail_next("busy", CalendarDataError("google event x", "unreadable start/end"))

    assert [r.outcome for _, r in book_meetings(world.p, ids)] == [B.BOOKED] * 3


def test_a_batch_past_its_deadline_gives_back_the_meetings_it_did_not_try(world: World) -> None:
    ids = _alex_three(world)
    world.calendar.during_next("create_event", lambda: world.advance(BATCH_DEADLINE * 2))

    results = book_meetings(world.p, ids)

    assert [r.outcome for _, r in results] == [B.BOOKED, B.ALREADY, B.ALREADY]
    released = [world.meeting(i) for i in ids[1:]]
    assert [m.state for m in released] == [S.APPROVED, S.APPROVED]
    assert [m.attempts for m in released] == [0, 0]  # the claim a batch gave back is not counted
    assert world.store.approved_needing_send(world.clock.now(), 10) == ids[1:]  # sent again
    assert all(r.detail == RELEASED for _, r in results[1:])


def test_a_shared_read_grown_old_is_not_used(world: World) -> None:
    """A slow batch: once the shared read is older than SHARED_READ_MAX_AGE, each remaining
    re-check reads both calendars again, as it would alone."""
    ids = _alex_three(world)
    world.calendar.calls.clear()
    world.calendar.during_next(
        "create_event", lambda: world.advance(SHARED_READ_MAX_AGE + timedelta(seconds=1))
    )
    assert [r.outcome for _, r in book_meetings(world.p, ids)] == [B.BOOKED] * 3
    assert world.calendar.calls["busy"] == 1 + 2


def test_a_shared_read_answers_only_for_slots_it_covers_with_the_buffer_of_the_moment() -> None:
    read = SharedRead(Interval(_slot(2, 9), _slot(4, 12)), BusyResult(blocks={}), read_at=NOW)
    ten = timedelta(minutes=10)
    assert read.answers(_slot(2, 10), _slot(2, 10, 30), ten, NOW)
    assert read.answers(_slot(4, 11), _slot(4, 11, 30), ten, NOW)
    assert not read.answers(_slot(4, 11), _slot(4, 11, 30), timedelta(hours=1), NOW)  # grown
    assert not read.answers(_slot(5, 10), _slot(5, 10, 30), ten, NOW)  # outside
    assert not read.answers(_slot(2, 10), _slot(2, 10, 30), ten, NOW + timedelta(minutes=1))


# -- one store read before the announce, one announce, one read after it (issue 13) ---------


@pytest.mark.parametrize("priya_older", [False, True], ids=["alex-older", "priya-older"])
def test_two_batches_racing_for_one_slot_never_both_create(
    world: World, monkeypatch: pytest.MonkeyPatch, priya_older: bool
) -> None:
    """Priya's whole batch runs after Alex's batch looked at the store and before it announced:
    the look after the announce (one read, made after the batch's one write) is the guard, so
    exactly one of them creates, and the store says so before any calendar re-check."""
    world.write_policy(PRIYA, PRIYA_POLICY)
    world.register()
    start = _slot(2, 10)
    if priya_older:
        priya, alex = world.add_meeting(PRIYA, KIM, start), world.add_meeting(ALEX, KIM, start)
    else:
        alex, priya = world.add_meeting(ALEX, KIM, start), world.add_meeting(PRIYA, KIM, start)
    real = world.p.store.mark_creates_attempted
    raced: list[list[tuple[int, Any]]] = []

    def priya_first(claims: Any, now: datetime) -> set[int]:
        if not raced and [c[0] for c in claims] == [alex]:
            raced.append([])
            raced[0].extend(book_meetings(world.p, [priya]))
        return real(claims, now)

    monkeypatch.setattr(world.p.store, "mark_creates_attempted", priya_first)
    [(_, alex_result)] = book_meetings(world.p, [alex])
    [(_, priya_result)] = raced[0]

    assert len([e for e in world.calendar.events(attendee=KIM) if e.start == start]) == 1
    winner, loser = (priya_result, alex_result) if priya_older else (alex_result, priya_result)
    assert winner.outcome is B.BOOKED
    assert loser.outcome is B.SLOT_TAKEN
    assert loser.detail.startswith("slot_taken: clashes with meeting"), loser.detail


def test_a_claim_lost_before_the_batch_announces_sends_nothing(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = _alex_three(world)
    real = world.p.store.mark_creates_attempted
    store = world.p.store

    def lost_first(claims: Any, now: datetime) -> set[int]:
        # another worker re-claims the first meeting (its lease ran out, say)
        store.transition(ids[0], S.APPROVED, actor="tick", now=now, expect=S.BOOKING)
        assert store.claim_for_booking(ids[0], now, 60) is not None
        return real(claims, now)

    monkeypatch.setattr(store, "mark_creates_attempted", lost_first)
    results = book_meetings(world.p, ids)

    first = results[0][1]
    assert (first.outcome, first.detail) == (B.ALREADY, "the claim was lost")
    assert [r.outcome for _, r in results][1:] == [B.BOOKED, B.BOOKED]
    assert world.calendar.calls["create_event"] == 2
    assert world.meeting(ids[0]).create_attempted_at is None  # nothing announced for it


def test_a_batch_makes_one_store_read_before_and_one_after_its_one_announce(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = _alex_three(world)
    calls: list[str] = []
    store = world.p.store
    for name in ("booking_rivals", "booking_rival_rows", "mark_creates_attempted"):
        real = getattr(store, name)

        def counted(*args: Any, _real: Any = real, _name: str = name, **kw: Any) -> Any:
            calls.append(_name)
            return _real(*args, **kw)

        monkeypatch.setattr(store, name, counted)
    assert [r.outcome for _, r in book_meetings(world.p, ids)] == [B.BOOKED] * 3
    assert calls == ["booking_rival_rows", "mark_creates_attempted", "booking_rival_rows"]


def test_a_batch_whose_record_fails_leaves_its_events_to_be_found_by_their_keys(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The events are created, the one write recording them fails (the database went away,
    the worker died): the meetings stay ``booking`` with their creates announced, and the next
    attempt after the lease finds each event by its key. Nothing is created twice."""
    ids = _alex_three(world)
    store = world.p.store

    def gone(*_: Any, **__: Any) -> set[int]:
        raise ConnectionError("the database went away")

    monkeypatch.setattr(store, "record_bookings", gone)
    with pytest.raises(ConnectionError):
        book_meetings(world.p, ids)
    assert world.calendar.calls["create_event"] == 3
    stuck = [world.meeting(i) for i in ids]
    assert [m.state for m in stuck] == [S.BOOKING] * 3
    assert all(m.create_attempted_at is not None for m in stuck)

    monkeypatch.undo()
    world.advance(timedelta(seconds=world.p.lease_s + 1))
    assert [r.outcome for _, r in book_meetings(world.p, ids)] == [B.BOOKED] * 3
    assert world.calendar.calls["create_event"] == 3  # found by key, not created again
    assert world.calendar.calls["find_by_key"] == 3
    assert [len(world.calendar.events(attendee=who)) for who in (KIM, JO, SAM)] == [1, 1, 1]


# -- found by review: the deadline and a failed announce, for a whole owner -------------------


def test_past_the_deadline_no_owners_shared_read_or_announce_starts(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Alex's first create takes the batch past its deadline: Priya's meetings are given back
    without her calendars or the store being read for them, and none is announced."""
    world.write_policy(PRIYA, PRIYA_POLICY)
    world.register()
    alex = [world.add_meeting(ALEX, KIM, _slot(2, 10)), world.add_meeting(ALEX, JO, _slot(3, 10))]
    priya = [
        world.add_meeting(PRIYA, KIM, _slot(5, 11)),
        world.add_meeting(PRIYA, KIM, _slot(8, 11)),
    ]
    began = world.clock.now()
    world.calendar.during_next("create_event", lambda: world.advance(BATCH_DEADLINE * 2))
    late: list[str] = []
    for name in ("booking_rival_rows", "mark_creates_attempted"):
        real = getattr(world.p.store, name)

        def spy(*args: Any, _real: Any = real, _name: str = name, **kw: Any) -> Any:
            if world.clock.now() - began > BATCH_DEADLINE:
                late.append(_name)
            return _real(*args, **kw)

        monkeypatch.setattr(world.p.store, name, spy)
    world.calendar.calls.clear()

    results = dict(book_meetings(world.p, alex + priya))

    assert late == []
    assert world.calendar.calls["busy"] == 1  # Alex's shared read only
    assert results[alex[0]].outcome is B.BOOKED
    assert [results[i].detail for i in (alex[1], *priya)] == [RELEASED] * 3
    assert [world.meeting(i).create_attempted_at for i in priya] == [None, None]
    assert [world.meeting(i).state for i in priya] == [S.APPROVED, S.APPROVED]


def test_an_announce_write_that_fails_leaves_that_owner_to_its_leases_and_the_others_go_on(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.write_policy(PRIYA, PRIYA_POLICY)
    world.register()
    alex = world.add_meeting(ALEX, KIM, _slot(2, 10))
    priya = world.add_meeting(PRIYA, KIM, _slot(5, 11))
    real = world.p.store.mark_creates_attempted

    def fails_for_alex(claims: Any, now: datetime) -> set[int]:
        if any(m == alex for m, _ in claims):
            raise ConnectionError("the database went away for one statement")
        return real(claims, now)

    monkeypatch.setattr(world.p.store, "mark_creates_attempted", fails_for_alex)
    with pytest.raises(ConnectionError):  # raised once the others are done
        book_meetings(world.p, [alex, priya])

    assert world.meeting(priya).state is S.BOOKED
    assert world.meeting(alex).state is S.BOOKING  # its lease brings it back
    assert world.calendar.calls["create_event"] == 1


def test_a_meeting_given_back_after_its_announce_is_booked_once_later(world: World) -> None:
    world.register()
    ids = [world.add_meeting(ALEX, who, _slot(d, 10)) for d, who in ((2, KIM), (3, JO))]
    world.calendar.during_next("create_event", lambda: world.advance(BATCH_DEADLINE * 2))
    results = book_meetings(world.p, ids)
    assert [(r.outcome, r.detail) for _, r in results][1] == (B.ALREADY, RELEASED)
    released = world.meeting(ids[1])
    assert (released.state, released.attempts) == (S.APPROVED, 0)
    assert released.create_attempted_at is not None  # announced: it holds its slot meanwhile

    [(_, again)] = book_meetings(world.p, [ids[1]])

    assert again.outcome is B.BOOKED
    assert world.calendar.calls["create_event"] == 2
    assert world.calendar.calls["find_by_key"] == 1  # what giving it back after announcing costs
    assert len(world.calendar.events(attendee=JO)) == 1
