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
    assert tick.follow_every(None, NOW) == timedelta(minutes=15)  # all ended: complete them
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


@pytest.mark.parametrize("store", STORE_KINDS, indirect=True)
def test_an_owner_whose_next_meeting_is_days_away_is_followed_every_two_hours(
    world: World,
) -> None:
    world.register()
    tick, broker = make_tick(world, **PACE)
    round_(world, tick)
    alex = world.user_id()
    book(world, KIM, timedelta(days=5))
    assert round_(world, tick).sync_sent == [alex]  # the new booking: followed at once
    broker.flush(QUEUE)
    sent = []
    for _ in range(4 * 4):  # two hours in 7.5-minute steps
        sent += round_(world, tick, timedelta(minutes=7, seconds=30)).sync_sent
        broker.flush(QUEUE)
    assert sent == [alex]  # once in two hours, not eight times


@pytest.mark.parametrize("store", STORE_KINDS, indirect=True)
def test_a_meeting_within_hours_is_followed_every_fifteen_minutes(world: World) -> None:
    world.register()
    tick, broker = make_tick(world, **PACE)
    round_(world, tick)
    alex = world.user_id()
    book(world, KIM, timedelta(hours=2))
    assert round_(world, tick).sync_sent == [alex]
    broker.flush(QUEUE)
    sent = []
    for _ in range(8):  # one hour in 7.5-minute steps
        sent += round_(world, tick, timedelta(minutes=7, seconds=30)).sync_sent
        broker.flush(QUEUE)
    assert sent == [alex] * 4


@pytest.mark.parametrize("store", STORE_KINDS, indirect=True)
def test_a_new_booking_brings_the_next_pass_to_within_fifteen_minutes(world: World) -> None:
    world.register()
    tick, broker = make_tick(world, **PACE)
    round_(world, tick)
    alex = world.user_id()
    book(world, KIM, timedelta(days=5))
    assert round_(world, tick).sync_sent == [alex]
    broker.flush(QUEUE)
    assert round_(world, tick, timedelta(minutes=10)).sync_sent == []  # next one in ~2 h
    book(world, JO, timedelta(days=6))  # another invite goes out
    sent = []
    for _ in range(3):  # 22.5 minutes
        sent += round_(world, tick, timedelta(minutes=7, seconds=30)).sync_sent
        broker.flush(QUEUE)
    assert sent == [alex]


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
    assert after_sooner[alex].next_start == world.store.get_meeting(later).start
    all_ended = world.store.followed_owners(None, now=NOW + timedelta(days=6))
    assert all_ended[alex].next_start is None  # both ended: they wait to be completed
    assert world.store.followed_owners(None)[alex].next_start is None  # not asked for
