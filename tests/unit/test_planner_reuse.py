"""The planner's reuse of the owner's side between takes does not change the plan (issue 13).

After each slot it takes, a plan builds the owner's side of the slot finder again
(:class:`~scheduler.core.slots.OwnerContext`), from the context before the take: the days whose
busy time the take did not touch are taken over. Here every plan of the caps-stop scenarios is
compared with the plan made when each context is built from nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings

import scheduler.core.planner_round as planner_round
from scheduler.core.planner import plan
from scheduler.core.policy import load_policy_text
from scheduler.core.slots import OwnerContext
from tests.unit.test_planner_caps_stop import free_for, peers, policy_text, scenarios


class _Fresh(OwnerContext):
    """Builds every context from nothing (``previous`` ignored), as before the reuse."""

    @classmethod
    def build(cls, *args: Any, previous: OwnerContext | None = None, **kwargs: Any) -> Any:
        del previous
        return OwnerContext.build(*args, **kwargs)


class _Counting(OwnerContext):
    reused = 0

    @classmethod
    def build(cls, *args: Any, previous: OwnerContext | None = None, **kwargs: Any) -> Any:
        _Counting.reused += previous is not None
        return OwnerContext.build(*args, previous=previous, **kwargs)


def _fresh_plan(kw: dict[str, Any]) -> Any:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(planner_round, "OwnerContext", _Fresh)
        return plan(**kw)


@settings(max_examples=150, deadline=None)
@given(scenarios())
def test_the_plan_is_the_same_with_and_without_reusing_the_owner_side(kw: dict[str, Any]) -> None:
    assert plan(**kw) == _fresh_plan(kw)
    assert plan(**kw, _stop_at_caps=False) == _fresh_plan({**kw, "_stop_at_caps": False})


def test_a_plan_that_takes_slots_reuses_the_owner_side() -> None:
    # Guards the property above: it compares something only if the reuse happens at all.
    text = policy_text(peers(8), per_day=2, per_week=6)
    policy = load_policy_text(text, source="p.yaml", fmt="yaml")
    now = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    kw: dict[str, Any] = {
        "policy": policy,
        "now": now,
        "busy": free_for(policy),
        "last_contacts": {},
    }
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(planner_round, "OwnerContext", _Counting)
        made = plan(**kw)
    assert len(made.proposals) == 8  # two weeks of the horizon, 6 a week, 2 a day
    assert _Counting.reused == 7  # after each take but the last (nobody is left to plan)
    assert made == _fresh_plan(kw)
