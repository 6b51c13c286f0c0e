"""The prebuilt one-statement writes (``scheduler.store.single``): their parameters never name
a ``meetings`` column. SQLAlchemy compiles an UPDATE with the parameter keys as column keys, so
a key that names a column not in the statement's ``values()`` would silently add
``SET <column> = …`` to it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy.dialects import postgresql

from scheduler.core.states import MeetingState
from scheduler.store import single
from scheduler.store.tables import MeetingRow

NOW = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)
COLUMNS = {c.key for c in MeetingRow.__table__.columns}
S = MeetingState


def _statements() -> list[tuple[str, single.Statement]]:
    return [
        ("claim", single.claim_statement(7, NOW, 300.0, actor="worker")),
        ("create attempted", single.create_attempted_statement(7, NOW, attempt=2)),
        (
            "transition",
            single.transition_statement(
                7,
                S.BOOKING,
                S.BOOKED,
                actor="worker",
                now=NOW,
                detail="booked",
                attempt=2,
                values={
                    "state": S.BOOKED,
                    "updated_at": NOW,
                    "provider_event_id": "e1",
                    "lease_until": None,
                },
            ),
        ),
    ]


@pytest.mark.parametrize(("name", "statement"), _statements(), ids=lambda v: str(v)[:20])
def test_no_parameter_names_a_meetings_column(name: str, statement: single.Statement) -> None:
    _, params = statement
    assert not set(params) & COLUMNS, f"{name}: {sorted(set(params) & COLUMNS)}"


def test_a_transition_sets_exactly_its_values() -> None:
    statement, params = _statements()[2][1]
    sql = str(statement.compile(dialect=postgresql.dialect(), column_keys=list(params)))
    set_clause = sql.split(" SET ", 1)[1].split(" WHERE ", 1)[0]
    assigned = {part.split("=", 1)[0].strip() for part in set_clause.split(", ")}
    assert assigned == {"state", "updated_at", "provider_event_id", "lease_until"}


def test_a_shape_is_built_once() -> None:
    first = single.create_attempted_statement(1, NOW, attempt=1)[0]
    assert single.create_attempted_statement(2, NOW, attempt=5)[0] is first
    a = single.transition_statement(1, S.BOOKING, S.BOOKED, actor="w", now=NOW, detail="",
                                    attempt=1, values={"state": S.BOOKED})  # fmt: skip
    b = single.transition_statement(9, S.BOOKING, S.BOOKED, actor="x", now=NOW, detail="d",
                                    attempt=3, values={"state": S.BOOKED})  # fmt: skip
    assert a[0] is b[0]
