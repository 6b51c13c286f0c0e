"""Several users planned in one message (``plan_users``), on every store, with the fake calendar.

Issue 13: many users per message where it pays. A batch is each user's own round in turn; what
it may not do is let one user's failure, or a slow round, cost the others theirs.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware.time_limit import TimeLimitExceeded

from scheduler.app import planning
from scheduler.app.planning_batch import PLAN_BATCH_DEADLINE, plan_users
from scheduler.core.clock import FixedClock
from tests.usecase.fakes import FakeCalendar
from tests.usecase.stores import open_store
from tests.usecase.world import NOW, PRIYA, PRIYA_POLICY, SAM, SAM_POLICY, World, make_pipeline
from workers import tick as tick_module
from workers.actors import QUEUE, declare_actors, queue_depth
from workers.broker import make_broker
from workers.tick import Tick


def _three_owners(world: World) -> list[int]:
    world.write_policy(SAM, SAM_POLICY)
    world.write_policy(PRIYA, PRIYA_POLICY)
    world.register()
    return sorted(u.id for u in world.store.all_users())


def _outcome(world: World) -> dict[str, Any]:
    """Every owner's meetings (stakeholder, start, state) and next planning time."""
    return {
        u.email: (
            sorted((m.stakeholder_email, m.start, m.state.value) for m in world.meetings(u.email)),
            u.next_plan_at,
        )
        for u in world.store.all_users()
    }


def test_a_batch_plans_each_user_exactly_as_their_own_rounds_would(
    world: World, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    ids = _three_owners(world)

    batch = plan_users(world.p, ids)

    assert [r.user_id for r in batch.runs] == ids
    assert (batch.failed, batch.left) == ([], [])
    assert all(r.error is None for r in batch.runs)
    assert sum(len(r.meeting_ids) for r in batch.runs) > 0
    kind = request.node.callspec.params["store"]
    with open_store(kind, request, tmp_path / "alone") as store:
        calendar, clock = FakeCalendar(), FixedClock(NOW)
        pipeline = make_pipeline(store, calendar, clock, world.policy_dir)
        alone = World(store, calendar, clock, world.policy_dir, pipeline)
        alone.register()
        for user in sorted(alone.store.all_users(), key=lambda u: u.id):
            planning.plan_user(alone.p, user.id)
        assert _outcome(alone) == _outcome(world)


def test_an_id_given_twice_is_planned_once(world: World) -> None:
    ids = _three_owners(world)
    batch = plan_users(world.p, [ids[0], ids[1], ids[0]])
    assert [r.user_id for r in batch.runs] == ids[:2]


def test_a_user_whose_round_fails_in_the_store_is_left_to_its_claim_and_the_others_go_on(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The round's own isolation records a crash in the store; when the store itself fails for
    one user (a lock timeout, a dropped connection), that user waits for the claim the tick took
    and the batch plans the rest."""
    ids = _three_owners(world)
    doomed = ids[1]
    claimed = world.store.claim_users_for_planning(NOW, limit=10, retry_s=world.p.plan_retry_s)
    assert sorted(claimed) == ids
    store = world.p.store
    get_user = store.get_user

    def failing(user_id: int) -> Any:
        if user_id == doomed:
            raise ConnectionError("server closed the connection unexpectedly")
        return get_user(user_id)

    monkeypatch.setattr(store, "get_user", failing)
    batch = plan_users(world.p, ids)
    monkeypatch.undo()

    assert [r.user_id for r in batch.runs] == [ids[0], ids[2]]
    assert [(u, type(e)) for u, e in batch.failed] == [(doomed, ConnectionError)]
    claim_ends = NOW + timedelta(seconds=world.p.plan_retry_s)
    by_id = {u.id: u for u in world.store.all_users()}
    assert by_id[doomed].next_plan_at == claim_ends  # the tick re-takes it then
    assert all(by_id[i].next_plan_at == NOW + world.p.plan_every for i in (ids[0], ids[2]))


def test_past_the_deadline_no_further_round_starts_and_the_rest_are_handed_back(
    world: World,
) -> None:
    ids = _three_owners(world)
    world.calendar.during_next("busy", lambda: world.advance(PLAN_BATCH_DEADLINE))

    batch = plan_users(world.p, ids)

    assert [r.user_id for r in batch.runs] == ids[:1]
    assert batch.left == ids[1:]
    assert not batch.failed
    planned = {u.id: u.next_plan_at for u in world.store.all_users()}
    assert [planned[i] for i in ids[1:]] == [world.clock.now()] * 2  # given back: due now


def test_users_given_back_past_the_deadline_are_sent_by_the_ticks_next_round(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by review: the actor re-sending them itself made a message the tick did not know
    of, and the tick sent those users again once their claims ran out while it still waited."""
    monkeypatch.setattr(tick_module, "PLAN_SPREAD", 1)
    a, b, c = _three_owners(world)
    broker = make_broker("embedded", set_global=False)
    assert isinstance(broker, StubBroker)
    tick = Tick(
        world.p, declare_actors(broker, world.p), interval_s=10, holder="t",
        queue_depth=lambda: queue_depth(broker), plans_per_message=2,
    )  # fmt: skip
    world.advance(timedelta(seconds=30))
    assert tick.run_once().plan_sent == [a, b, c]  # [a, b] and [c]
    queue = broker.queues[QUEUE]
    first = dramatiq.Message.decode(queue.get_nowait())  # a worker takes [a, b]
    world.calendar.during_next("busy", lambda: world.advance(PLAN_BATCH_DEADLINE))
    tick.actors.plan_users.fn(first.args[0])  # a is planned, b given back
    queue.get_nowait()  # another worker takes [c]
    assert _messages(broker) == []

    assert tick.run_once().plan_sent == [b]
    for _ in range(3):  # b's claim runs out while it waits: not sent again
        world.advance(timedelta(seconds=world.p.plan_retry_s + 1))
        assert b not in tick.run_once().plan_sent
    assert _messages(broker).count(("plan_user", b)) == 1


# -- the actor --------------------------------------------------------------------------------


def _messages(broker: StubBroker) -> list[tuple[str, Any]]:
    raw = [dramatiq.Message.decode(m) for m in list(broker.queues[QUEUE].queue)]
    return [(m.actor_name, m.args[0]) for m in raw]


def _actors(world: World) -> tuple[Any, StubBroker]:
    broker = make_broker("embedded", set_global=False)
    assert isinstance(broker, StubBroker)
    return declare_actors(broker, world.p), broker


def test_the_actor_gives_the_users_past_the_deadline_back_and_sends_nothing(
    world: World,
) -> None:
    ids = _three_owners(world)
    actors, broker = _actors(world)
    world.calendar.during_next("busy", lambda: world.advance(PLAN_BATCH_DEADLINE))

    actors.plan_users.fn(ids)

    assert _messages(broker) == []
    assert [_next_plan(world, i) for i in ids[1:]] == [world.clock.now()] * 2


def test_the_actor_never_raises_for_a_users_failure_the_claims_bring_them_back(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Some users failing, or all of them (the database is down): nothing raises, so the
    broker does not retry the message and plan again those that were planned."""
    ids = _three_owners(world)
    actors, broker = _actors(world)
    store = world.p.store
    get_user = store.get_user
    failing = {ids[1]}

    def flaky(user_id: int) -> Any:
        if user_id in failing:
            raise ConnectionError("connection refused")
        return get_user(user_id)

    monkeypatch.setattr(store, "get_user", flaky)
    actors.plan_users.fn(ids)  # one fails
    failing.update(ids)
    actors.plan_users.fn(ids)  # all fail
    assert _messages(broker) == []


def test_a_batch_stopped_by_the_time_limit_is_not_retried_by_the_broker(world: World) -> None:
    """Found by review: a round that starts before the deadline may still run past the actors'
    time limit (dramatiq's ``TimeLimitExceeded`` is no ``Exception``); a broker retry of the
    message would plan again the users already planned. The users not planned keep their
    claims."""
    ids = _three_owners(world)
    actors, broker = _actors(world)
    world.calendar.calls.clear()

    def time_limit() -> None:
        raise TimeLimitExceeded()

    world.calendar.during_next("busy", lambda: None)
    world.calendar.during_next("busy", time_limit)  # the second round runs out of time
    worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=50)
    worker.start()
    try:
        actors.plan_users.send(ids)
        broker.join(QUEUE, fail_fast=False)
        worker.join()
    finally:
        worker.stop()

    assert world.calendar.calls["busy"] == 2  # a retry would have read again
    assert len(broker.dead_letters) == 1
    assert _next_plan(world, ids[0]) == NOW + world.p.plan_every  # planned once


def _next_plan(world: World, user_id: int) -> datetime | None:
    user = world.store.get_user(user_id)
    assert user is not None
    return user.next_plan_at
