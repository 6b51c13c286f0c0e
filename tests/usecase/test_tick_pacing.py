"""The tick under a backlog: one message per unit of work while it waits, sends paced to the queue.

Nothing drains the queue here (dramatiq's StubBroker without a worker), so every message the tick
sends stays in it: the test reads the queue itself to count messages per user and per meeting.
Time is the fixed clock, moved past the database leases (``plan_retry_s``, ``send_lease_s``).
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker

from scheduler.core.states import MeetingState
from tests.usecase.fakes import FakeStore
from tests.usecase.test_registration_by_change import CountingStore
from tests.usecase.world import JO, KIM, NOW, PRIYA, PRIYA_POLICY, SAM, SAM_POLICY, World
from workers import tick as tick_module
from workers.actors import QUEUE, declare_actors, queue_depth
from workers.broker import make_broker
from workers.tick import PLAN_SPREAD, Tick, plan_message_size

LEASE_OUT = timedelta(seconds=301)  # past plan_retry_s (300 s) and send_lease_s (120 s)


def queued(broker: StubBroker) -> Counter[tuple[str, int]]:
    """(actor, id) of every message waiting in the queue; a ``book_meetings`` (``plan_users``)
    message counts once for each of its meetings (users), as ``book_meeting`` (``plan_user``)."""
    messages = [dramatiq.Message.decode(raw) for raw in list(broker.queues[QUEUE].queue)]
    found: Counter[tuple[str, int]] = Counter()
    for m in messages:
        if m.actor_name in ("book_meetings", "plan_users"):
            found.update((m.actor_name[:-1], int(i)) for i in m.args[0])
        else:
            found[(m.actor_name, int(m.args[0]))] += 1
    return found


def make_tick(world: World, **kwargs: Any) -> tuple[Tick, StubBroker]:
    broker = make_broker("embedded", set_global=False)
    assert isinstance(broker, StubBroker)
    actors = declare_actors(broker, world.p)
    tick = Tick(
        world.p, actors, interval_s=10, holder="t", queue_depth=lambda: queue_depth(broker),
        **kwargs,
    )  # fmt: skip
    return tick, broker


def three_owners(world: World) -> list[int]:
    world.write_policy(SAM, SAM_POLICY)
    world.write_policy(PRIYA, PRIYA_POLICY)
    world.register()
    return sorted(u.id for u in world.store.all_users())


def round_(world: World, tick: Tick, by: timedelta = timedelta(seconds=30)) -> Any:
    world.advance(by)
    result = tick.run_once()
    assert result.won
    return result


def test_a_queued_plan_is_not_sent_again_when_its_lease_runs_out(world: World) -> None:
    owners = three_owners(world)
    tick, broker = make_tick(world)

    first = round_(world, tick)
    assert sorted(first.plan_sent) == owners
    for _ in range(3):  # the leases run out while the messages still wait
        later = round_(world, tick, LEASE_OUT)
        assert later.plan_sent == []
    assert queued(broker) == Counter({("plan_user", i): 1 for i in owners})
    assert tick.skipped_queued == 3 * len(owners)

    broker.flush(QUEUE)  # the messages are lost: sent again once their lease runs out
    assert round_(world, tick).plan_sent == []  # still leased
    again = round_(world, tick, LEASE_OUT)
    assert sorted(again.plan_sent) == owners
    assert queued(broker) == Counter({("plan_user", i): 1 for i in owners})


def test_sends_are_paced_to_what_the_queue_can_take(world: World) -> None:
    owners = three_owners(world)
    tick, broker = make_tick(world, queue_max=2)

    first = round_(world, tick)
    assert len(first.plan_sent) == 2
    (waiting,) = set(owners) - set(first.plan_sent)
    user = world.store.get_user(waiting)
    assert user is not None
    assert user.next_plan_at is not None
    assert user.next_plan_at <= world.clock.now()  # not claimed: no lease taken for it

    assert round_(world, tick).plan_sent == []  # the queue is full
    broker.queues[QUEUE].get_nowait()  # a worker took one
    assert round_(world, tick).plan_sent == [waiting]
    assert sum(queued(broker).values()) == 2


def test_a_queued_booking_is_not_sent_again_when_its_send_lease_runs_out(world: World) -> None:
    world.register()
    meeting_ids = [
        world.add_meeting("alex@corp.example", who, NOW + timedelta(days=3, hours=h))
        for h, who in ((1, KIM), (2, JO))
    ]
    tick, broker = make_tick(world)

    assert sorted(round_(world, tick).book_sent) == meeting_ids
    for _ in range(3):
        assert round_(world, tick, LEASE_OUT).book_sent == []
    books = {k: v for k, v in queued(broker).items() if k[0] == "book_meeting"}
    assert books == {("book_meeting", i): 1 for i in meeting_ids}
    raw = [dramatiq.Message.decode(m) for m in list(broker.queues[QUEUE].queue)]
    batches = [m.args[0] for m in raw if m.actor_name.startswith("book_")]
    assert batches == [meeting_ids]  # the owner's two meetings, one message
    assert all(world.meeting(i).state == MeetingState.APPROVED for i in meeting_ids)


def test_without_a_known_depth_each_scan_claims_at_most_its_batch(world: World) -> None:
    owners = three_owners(world)
    broker = make_broker("embedded", set_global=False)
    tick = Tick(world.p, declare_actors(broker, world.p), interval_s=10, holder="t", batch=2)
    assert len(round_(world, tick).plan_sent) == 2
    assert len(round_(world, tick).plan_sent) == 1
    assert sorted(k[1] for k in queued(broker)) == owners  # type: ignore[arg-type]


@pytest.mark.parametrize("store", ["fake"], indirect=True)
def test_a_round_reads_neither_every_user_nor_every_meeting(world: World) -> None:
    """The sync scan follows owners by the audit rows and the due ones, not by full scans."""
    world.register()
    booked = world.add_meeting("alex@corp.example", KIM, NOW + timedelta(days=3))
    counting = CountingStore(world.store)  # type: ignore[arg-type]
    world.p.store = counting  # type: ignore[assignment]
    assert isinstance(counting.inner, FakeStore)
    tick, broker = make_tick(world)
    round_(world, tick)  # the first round looks at everything once
    alex = world.user_id()

    now = world.clock.now()
    assert world.store.claim_for_booking(booked, now, 300) is not None
    assert world.store.transition(
        booked, MeetingState.BOOKED, actor="worker", now=now, expect=MeetingState.BOOKING,
        provider_event_id="evt-1",
    )  # fmt: skip
    counting.calls.clear()
    synced = round_(world, tick)
    assert synced.sync_sent == [alex]  # the new booking is followed at once
    quiet = round_(world, tick)
    assert quiet.sync_sent == []  # not again before sync_every
    assert counting.calls["all_users"] == 0
    assert counting.calls["meetings_by_state"] == 0
    assert counting.calls["register_users"] == 0
    assert round_(world, tick, timedelta(minutes=15)).sync_sent == []  # its message still waits
    broker.flush(QUEUE)  # the workers took it
    assert round_(world, tick, timedelta(minutes=15)).sync_sent == [alex]


# -- several users per planning message -------------------------------------------------------


def _plan_messages(broker: StubBroker) -> list[tuple[str, Any]]:
    raw = [dramatiq.Message.decode(m) for m in list(broker.queues[QUEUE].queue)]
    return [(m.actor_name, m.args[0]) for m in raw if m.actor_name.startswith("plan_")]


def _packing(
    world: World, monkeypatch: pytest.MonkeyPatch, **kwargs: Any
) -> tuple[list[int], Tick, StubBroker]:
    """Three owners due, and a tick that packs them (PLAN_SPREAD 1: three count as a backlog)."""
    monkeypatch.setattr(tick_module, "PLAN_SPREAD", 1)
    owners = three_owners(world)
    return (owners, *make_tick(world, **kwargs))


def test_plan_message_size_fits_the_room_and_spreads_a_small_round() -> None:
    for most in (1, 2, 10, 50):
        for room in range(1, 40):
            for due in range(0, room * most + 1):
                size = plan_message_size(due, room, most)
                assert 1 <= size <= most
                assert -(-due // size) <= room  # every due user goes out this round
                if due <= PLAN_SPREAD * 2 - 1 and due <= room:
                    assert size == 1  # few due: one each, so every worker thread has one
    assert plan_message_size(500, 500, 10) == 10  # a backlog: full messages
    assert plan_message_size(40, 500, 10) == 2


def test_a_small_round_sends_one_plan_user_each_even_when_batches_are_allowed(
    world: World,
) -> None:
    owners = three_owners(world)
    tick, broker = make_tick(world, plans_per_message=10)
    assert sorted(round_(world, tick).plan_sent) == owners
    assert sorted(_plan_messages(broker)) == [("plan_user", i) for i in owners]


def test_under_a_backlog_users_share_messages_and_a_queued_batch_is_not_sent_again(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    owners, tick, broker = _packing(world, monkeypatch, plans_per_message=2)

    assert round_(world, tick).plan_sent == owners
    assert _plan_messages(broker) == [("plan_users", owners[:2]), ("plan_user", owners[2])]
    for _ in range(2):  # the leases run out while the two messages still wait
        assert round_(world, tick, LEASE_OUT).plan_sent == []
    assert queued(broker) == Counter({("plan_user", i): 1 for i in owners})

    broker.flush(QUEUE)  # lost: sent again once their lease runs out
    assert round_(world, tick, LEASE_OUT).plan_sent == owners
    assert len(_plan_messages(broker)) == 2


def test_the_room_is_counted_in_messages_when_users_share_them(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    owners, tick, broker = _packing(world, monkeypatch, plans_per_message=2, queue_max=1)

    assert round_(world, tick).plan_sent == owners[:2]  # one message, two users
    assert _plan_messages(broker) == [("plan_users", owners[:2])]
    waiting = world.store.get_user(owners[2])
    assert waiting is not None
    assert waiting.next_plan_at is not None
    assert waiting.next_plan_at <= world.clock.now()  # not claimed


def test_plans_per_message_must_be_positive(world: World) -> None:
    with pytest.raises(ValueError, match="plans_per_message"):
        make_tick(world, plans_per_message=0)


def test_a_round_claims_at_most_its_batch_of_users_however_many_a_message_may_carry(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    owners, tick, broker = _packing(world, monkeypatch, plans_per_message=3, batch=2)
    assert round_(world, tick).plan_sent == owners[:2]  # GOODWILL_TICK_BATCH rows a scan
    assert _plan_messages(broker) == [("plan_users", owners[:2])]
