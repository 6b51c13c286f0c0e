"""Issue 13: a planning round's one write statement has the same SQL for every round.

On PostgreSQL ``Store.record_plan_round`` is one statement (``single.plan_round_statement``).
Its varying inputs (the meetings, their attendees, the skips) are parameters, so SQLAlchemy
compiles it once per process instead of once per round (a round built of literals and
multi-row VALUES had a new shape, hence a new compilation, for each number of proposals, skips
and attendees: ~9% of the workers' CPU while planning).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event

from scheduler.core.states import MeetingState
from scheduler.store import NewMeeting, Store

pytestmark = pytest.mark.services

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SAM, KIM, LEE, MAX = "sam@corp.example", "kim@corp.example", "lee@corp.example", "max@corp.example"


@pytest.fixture
def engine(pg_engine: Engine) -> Engine:
    return pg_engine


def proposal(key: str, email: str, day: int, **kw: Any) -> NewMeeting:
    start = T0 + timedelta(days=day)
    return NewMeeting(
        stakeholder_email=email, kind="coffee", start=start, end=start + timedelta(minutes=30),
        mode="auto", idempotency_key=key, provider="google", state=MeetingState.APPROVED, **kw,
    )  # fmt: skip


def test_rounds_of_different_shapes_run_one_statement_compiled_once(engine: Engine) -> None:
    store = Store(engine)
    alex = store.upsert_user("alex@corp.example", "policies/alex.yaml", "h1", now=T0)
    writes: list[tuple[str, Any]] = []

    def note(_c: Any, _cur: Any, statement: str, _p: Any, context: Any, _many: Any) -> None:
        if " ".join(statement.split()).startswith("WITH planned AS"):
            writes.append((statement, context.compiled))

    group = proposal(
        "grp", LEE, 2, attendees=(LEE, MAX, SAM), group_name="platform", presenter=LEE, quorum=2
    )
    rounds = [
        ([proposal("one", SAM, 1)], []),
        ([group, proposal("two", KIM, 3), proposal("three", MAX, 4)], ["skipped a", "skipped b"]),
        ([], ["skipped c"]),
        ([proposal("one", SAM, 1), proposal("four", KIM, 5)], ["skipped d", "e", "f"]),
    ]
    event.listen(engine, "before_cursor_execute", note)
    try:
        for i, (proposals, skips) in enumerate(rounds):
            now = T0 + timedelta(hours=i)
            store.record_plan_round(alex, proposals, skips, now + timedelta(hours=6), now=now)
    finally:
        event.remove(engine, "before_cursor_execute", note)
    assert len(writes) == len(rounds)  # one write statement per round
    assert len({sql for sql, _ in writes}) == 1, "the round's SQL changed with its shape"
    assert len({id(compiled) for _, compiled in writes}) == 1, "compiled more than once"
    made = store.get_meeting(store.record_plan_round(alex, [group], [], T0, now=T0)[0])
    assert made is not None
    assert made.attendees == (LEE, MAX, SAM)
