"""Several users planned in one message (``plan_users``), on every store, with the fake calendar.

Issue 13: many users per message where it pays. A batch is each user's own round in turn; what
it may not do is let one user's failure, or a slow round, cost the others theirs.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker

from scheduler.app import planning
from scheduler.app.planning_batch import PLAN_BATCH_DEADLINE, plan_users
from scheduler.core.clock import FixedClock
from tests.usecase.fakes import FakeCalendar
from tests.usecase.stores import open_store
from tests.usecase.world import NOW, PRIYA, PRIYA_POLICY, SAM, SAM_POLICY, World, make_pipeline
from workers.actors import QUEUE, declare_actors
from workers.broker import make_broker


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
    assert all(planned[i] is None or planned[i] <= world.clock.now() for i in ids[1:])


# -- the actor --------------------------------------------------------------------------------


def _messages(broker: StubBroker) -> list[tuple[str, Any]]:
    raw = [dramatiq.Message.decode(m) for m in list(broker.queues[QUEUE].queue)]
    return [(m.actor_name, m.args[0]) for m in raw]


def _actors(world: World) -> tuple[Any, StubBroker]:
    broker = make_broker("embedded", set_global=False)
    assert isinstance(broker, StubBroker)
    return declare_actors(broker, world.p), broker


def test_the_actor_sends_the_users_past_the_deadline_as_a_message_of_their_own(
    world: World,
) -> None:
    ids = _three_owners(world)
    actors, broker = _actors(world)
    world.calendar.during_next("busy", lambda: world.advance(PLAN_BATCH_DEADLINE))

    actors.plan_users.fn(ids)

    assert _messages(broker) == [("plan_users", ids[1:])]


def test_the_actor_sends_one_user_left_as_plan_user(world: World) -> None:
    ids = _three_owners(world)
    actors, broker = _actors(world)
    world.calendar.during_next("busy", lambda: world.advance(PLAN_BATCH_DEADLINE))

    actors.plan_users.fn(ids[1:])

    assert _messages(broker) == [("plan_user", ids[2])]


def test_when_no_user_gets_through_the_actor_raises_for_the_brokers_retry(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = _three_owners(world)
    actors, broker = _actors(world)

    def down(*_: Any, **__: Any) -> Any:
        raise ConnectionError("connection refused")

    monkeypatch.setattr(world.p.store, "get_user", down)
    with pytest.raises(ConnectionError):
        actors.plan_users.fn(ids)
    assert _messages(broker) == []  # the retry of this message carries them all
