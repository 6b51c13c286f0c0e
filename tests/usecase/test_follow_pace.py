"""How often the tick follows an owner's answers and conflicts: by how near their next meeting is.

Polling every owner every 15 minutes was most of the service's steady-state CPU (a sync pass
costs about as much as a third of a planning round, and there were 48 of them per planning
round) and, at 100,000 owners, about 13,000 provider requests a minute: above Google's 10,000 a
minute per project. Now a pass comes a twelfth of the time before the owner's next followed
meeting, between ``sync_every`` (15 min) and ``sync_max_every`` (2 h), and a meeting that is
booked or answered brings the next pass to within ``sync_every``.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from dramatiq.brokers.stub import StubBroker

from scheduler.app.records import FollowedOwner
from scheduler.core.states import MeetingState
from tests.usecase.stores import STORE_KINDS
from tests.usecase.test_tick_pacing import make_tick, round_
from tests.usecase.world import JO, KIM, NOW, World
from workers.actors import QUEUE
from workers.tick import Tick

PACE = {"sync_every": timedelta(minutes=15), "sync_max_every": timedelta(hours=2)}


def test_the_pace_is_a_twelfth_of_the_lead_between_the_bounds(world: World) -> None:
    tick, _ = make_tick(world, **PACE)
    assert tick.follow_every(NOW + timedelta(hours=1), NOW) == timedelta(minutes=15)
    assert tick.follow_every(NOW + timedelta(hours=12), NOW) == timedelta(hours=1)
    assert tick.follow_every(NOW + timedelta(days=9), NOW) == timedelta(hours=2)
    assert tick.follow_every(NOW - timedelta(hours=1), NOW) == timedelta(minutes=15)  # ended
    assert tick.follow_every(None, NOW) == timedelta(hours=2)  # only past declines followed
    fixed = Tick(world.p, tick.actors, interval_s=10, holder="u")  # no maximum: 15 min always
    assert fixed.follow_every(NOW + timedelta(days=9), NOW) == timedelta(minutes=15)


def book(world: World, stakeholder: str, start_in: timedelta) -> int:
    meeting = world.add_meeting("alex@corp.example", stakeholder, NOW + start_in)
    now = world.clock.now()
    assert world.store.claim_for_booking(meeting, now, 300) is not None
    assert world.store.transition(
        meeting, MeetingState.BOOKED, actor="worker", now=now, expect=MeetingState.BOOKING,
        provider_event_id=f"evt-{meeting}",
    )  # fmt: skip
    return meeting


def passes_over(world: World, tick: Tick, broker: object, steps: int) -> list[timedelta]:
    """Run ``steps`` rounds 7.5 minutes apart; when each sync was sent, as time since NOW."""
    sent = []
    for _ in range(steps):
        if round_(world, tick, timedelta(minutes=7, seconds=30)).sync_sent:
            sent.append(world.clock.now() - NOW)
        broker.flush(QUEUE)  # type: ignore[attr-defined]
    return sent


def followed_after_booking(world: World, start_in: timedelta) -> tuple[Tick, StubBroker]:
    """A tick at the default pace whose owner has just had a coffee with Kim booked
    ``start_in`` ahead, and whose first pass for it went out at once (and was taken)."""
    world.register()
    tick, broker = make_tick(world, **PACE)
    round_(world, tick)
    book(world, KIM, start_in)
    assert round_(world, tick).sync_sent == [world.user_id()]  # the new booking: at once
    broker.flush(QUEUE)
    return tick, broker


@pytest.mark.parametrize("store", STORE_KINDS, indirect=True)
def test_an_owner_whose_next_meeting_is_days_away_is_followed_every_two_hours(
    world: World,
) -> None:
    tick, broker = followed_after_booking(world, timedelta(days=5))
    assert len(passes_over(world, tick, broker, 4 * 4)) == 1  # in two hours, not eight times


@pytest.mark.parametrize("store", STORE_KINDS, indirect=True)
def test_a_meeting_within_hours_is_followed_every_fifteen_minutes(world: World) -> None:
    tick, broker = followed_after_booking(world, timedelta(hours=2))
    assert len(passes_over(world, tick, broker, 8)) == 4  # in one hour


@pytest.mark.parametrize("store", STORE_KINDS, indirect=True)
def test_a_new_booking_brings_the_next_pass_to_within_fifteen_minutes(world: World) -> None:
    tick, broker = followed_after_booking(world, timedelta(days=5))
    assert round_(world, tick, timedelta(minutes=10)).sync_sent == []  # next one in ~2 h
    book(world, JO, timedelta(days=6))  # another invite goes out
    assert len(passes_over(world, tick, broker, 3)) == 1  # in 22.5 minutes


def test_the_next_start_is_the_soonest_followed_meeting_not_ended(world: World) -> None:
    world.register()
    alex = world.user_id()
    assert world.store.followed_owners([alex], now=NOW) == {}
    world.add_meeting("alex@corp.example", JO, NOW + timedelta(days=1))  # approved: not followed
    later = book(world, KIM, timedelta(days=5))
    sooner = book(world, JO, timedelta(days=2))
    owners = world.store.followed_owners([alex], now=NOW)
    assert owners[alex].next_start == world.store.get_meeting(sooner).start
    assert not owners[alex].policy_missing
    after_sooner = world.store.followed_owners([alex], now=NOW + timedelta(days=3))
    assert after_sooner[alex].next_start == world.store.get_meeting(sooner).start  # to complete
    world.store.transition(
        sooner, MeetingState.COMPLETED, actor="sync", now=NOW + timedelta(days=3)
    )
    after_sooner = world.store.followed_owners([alex], now=NOW + timedelta(days=3))
    assert after_sooner[alex].next_start == world.store.get_meeting(later).start
    ended = world.store.followed_owners(None, now=NOW + timedelta(days=6))
    assert ended[alex].next_start == world.store.get_meeting(later).start  # to be completed
    assert world.store.followed_owners(None)[alex].next_start is None  # not asked for
    far = world.store.followed_owners([alex], now=NOW, cutoff=timedelta(days=3))
    assert far[alex].next_far_start == world.store.get_meeting(later).start
    assert far[alex].next_start == world.store.get_meeting(later).start  # sooner is completed
    # a decline that ended is followed (a change of mind) but paces nothing
    now = NOW + timedelta(days=6)
    assert world.store.transition(
        later, MeetingState.DECLINED, actor="sync", now=now, expect=MeetingState.BOOKED
    )
    declined = world.store.followed_owners([alex], now=now, cutoff=timedelta(hours=20))
    assert declined[alex] == FollowedOwner(False, None, None)


@pytest.mark.parametrize("store", STORE_KINDS, indirect=True)
def test_a_pass_comes_just_before_a_meeting_enters_its_last_twenty_hours(world: World) -> None:
    # A conflict seen more than not_within (20 h) before the coffee may still move it: the
    # last pass before that moment comes at most sync_every before it, as it did at 15 min.
    world.register()
    tick, broker = make_tick(world, **PACE)
    round_(world, tick)
    start = NOW + timedelta(hours=31)
    meeting = book(world, KIM, start - NOW)
    round_(world, tick)
    broker.flush(QUEUE)
    leads = [start - (NOW + at) for at in passes_over(world, tick, broker, 8 * 12)]
    before_cutoff = [lead for lead in leads if lead > timedelta(hours=20)]
    assert before_cutoff, leads
    assert min(before_cutoff) <= timedelta(hours=20, minutes=15), leads
    assert len(leads) < 4 * 12  # still fewer than every 15 minutes
    assert world.store.get_meeting(meeting).start == start


@pytest.mark.parametrize("store", STORE_KINDS, indirect=True)
def test_a_meeting_moved_sooner_is_followed_within_fifteen_minutes(world: World) -> None:
    world.register()
    tick, broker = make_tick(world, **PACE)
    round_(world, tick)
    meeting = book(world, KIM, timedelta(days=5))
    round_(world, tick)
    broker.flush(QUEUE)
    assert round_(world, tick, timedelta(minutes=10)).sync_sent == []  # next one in ~2 h
    now = world.clock.now()
    soon = now + timedelta(hours=1)
    assert world.store.reschedule(
        meeting,
        soon,
        soon + timedelta(minutes=30),
        now=now,
        actor="sync",
        why="moved at the provider",
    )
    assert passes_over(world, tick, broker, 3)  # within 15 minutes of the round that saw it


@pytest.mark.parametrize("store", ["fake"], indirect=True)
def test_a_failed_read_leaves_the_owners_due_not_lost(world: World) -> None:
    world.register()
    tick, _ = make_tick(world, **PACE)
    round_(world, tick)
    alex = world.user_id()
    book(world, KIM, timedelta(hours=2))
    real = world.p.store.followed_owners
    calls = {"n": 0}

    def failing_once(*args: object, **kwargs: object) -> object:
        calls["n"] += 1
        if kwargs.get("now") is not None and calls["n"] <= 2:
            raise OSError("the database went away")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    world.p.store.followed_owners = failing_once  # type: ignore[method-assign]
    world.advance(timedelta(seconds=30))
    assert tick.run_round() is None  # the round failed
    world.p.store.followed_owners = real  # type: ignore[method-assign]
    assert round_(world, tick).sync_sent == [alex]  # due again, not lost
