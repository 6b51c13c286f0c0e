"""Issue 13: how far a planning round read the owner's calendar history, kept on the user.

A round reads the owner's history over ``[since, now)``; its one write (``record_plan_round``)
also records ``history=(now, key)``, and the next round reads ``User.history_read_until`` /
``User.history_read_key`` to read only what came after. On SQLite and PostgreSQL (there the
round is one statement, whose SQL must not change with the history given or not):

- a new user has neither; a round with a history sets both (an aware datetime back), a round
  without one keeps them, a round with another history overwrites them;
- migration 0010 adds both columns to the existing users (NULL: the whole lookback is read) and
  its downgrade drops them, keeping the rows: the users and, on SQLite, their meetings too (a
  batch copy-and-move of ``users`` would cascade-delete them).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any, cast

import pytest
from alembic import command
from sqlalchemy import Engine, Table, event, insert, inspect, text
from sqlalchemy.exc import StatementError

from scheduler.core.states import MeetingState
from scheduler.store import NewMeeting, Store, make_engine, migrate
from scheduler.store.migrations import alembic_config, at_head
from scheduler.store.tables import UserRow

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday
HOUR = timedelta(hours=1)
ALEX, SAM = "alex@corp.example", "sam@corp.example"
COLUMNS = {"history_read_until", "history_read_key"}


@pytest.fixture
def store(engine: Engine) -> Store:
    return Store(engine)


def proposal(key: str, day: int) -> NewMeeting:
    start = T0 + timedelta(days=day)
    return NewMeeting(
        stakeholder_email=SAM, kind="coffee", start=start, end=start + timedelta(minutes=30),
        mode="auto", idempotency_key=key, provider="google", state=MeetingState.APPROVED,
    )  # fmt: skip


def watermark(store: Store, user_id: int) -> tuple[datetime | None, str | None]:
    user = store.get_user(user_id)
    assert user is not None
    return user.history_read_until, user.history_read_key


def test_a_round_records_how_far_the_history_was_read_and_a_round_without_keeps_it(
    store: Store, engine: Engine
) -> None:
    alex = store.upsert_user(ALEX, "policies/alex.yaml", "h1", now=T0)
    assert watermark(store, alex) == (None, None)
    writes: list[str] = []

    def note(_c: Any, _cur: Any, statement: str, *_: Any) -> None:
        if " ".join(statement.split()).startswith("WITH planned AS"):
            writes.append(statement)

    event.listen(engine, "before_cursor_execute", note)
    try:
        # Given in another zone: stored and read back as the same instant, in UTC.
        read_at = (T0 + HOUR).astimezone(timezone(timedelta(hours=2)))
        ids = store.record_plan_round(
            alex, [proposal("one", 1)], ["skipped kim"], T0 + 6 * HOUR, now=T0 + HOUR,
            history=(read_at, "k1"),
        )  # fmt: skip
        until, key = watermark(store, alex)
        assert (until, key) == (T0 + HOUR, "k1")
        assert until is not None
        assert until.utcoffset() == timedelta(0)
        # A round that read no history (None) keeps what the last one recorded, and still
        # writes the rest of the round.
        again = T0 + 2 * HOUR
        assert store.record_plan_round(alex, [proposal("two", 2)], [], T0 + 8 * HOUR, now=again)
        assert watermark(store, alex) == (T0 + HOUR, "k1")
        user = store.get_user(alex)
        assert user is not None
        assert (user.next_plan_at, user.last_planned_at) == (T0 + 8 * HOUR, again)
        # A round with a history (here for another stakeholder set) overwrites both.
        later = T0 + 3 * HOUR
        assert store.record_plan_round(alex, [], [], T0 + 9 * HOUR, now=later,
                                       history=(later, "k2")) == []  # fmt: skip
        assert watermark(store, alex) == (later, "k2")
    finally:
        event.remove(engine, "before_cursor_execute", note)
    assert store.get_meeting(ids[0]) is not None
    # Other users' rows are not touched by a round's write.
    kim = store.upsert_user("kim@corp.example", "policies/kim.yaml", "h1", now=T0)
    assert watermark(store, kim) == (None, None)
    assert watermark(store, alex) == (later, "k2")
    if engine.dialect.name == "postgresql":  # one statement, one SQL text with or without
        assert len(writes) == 3
        assert len(set(writes)) == 1, "the round's SQL changed with its history"


def test_a_naive_history_time_is_refused_and_nothing_of_the_round_is_written(
    store: Store,
) -> None:
    alex = store.upsert_user(ALEX, "policies/alex.yaml", "h1", now=T0)
    before = store.get_user(alex)
    with pytest.raises((ValueError, StatementError), match="naive datetime"):
        store.record_plan_round(
            alex, [proposal("one", 1)], [], T0 + 6 * HOUR, now=T0 + HOUR,
            history=(datetime(2026, 3, 2, 10, 0), "k1"),
        )  # fmt: skip
    assert store.get_user(alex) == before
    assert store.open_meetings(alex) == []


# -- migration 0010 ------------------------------------------------------------------------------


def _user_columns(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return {str(c["name"]) for c in inspect(conn).get_columns("users")}


def _downgrade(engine: Engine, revision: str) -> None:
    with engine.begin() as connection:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def test_migration_0010_upgrades_and_downgrades_keeping_the_users(db_url: str) -> None:
    migrate(db_url, "0009")
    engine = make_engine(db_url)
    users = cast("Table", UserRow.__table__)
    try:
        # At 0009 the model has columns the table lacks: the rows are written with Core, by
        # the columns 0009 has.
        with engine.begin() as conn:
            conn.execute(insert(users), [
                {"email": email, "policy_path": f"policies/{email}.yaml", "policy_hash": "h1",
                 "created_at": T0, "next_plan_at": T0}
                for email in (ALEX, SAM)
            ])  # fmt: skip
        assert not COLUMNS & _user_columns(engine)
        migrate(db_url)
        assert at_head(db_url)
        assert _user_columns(engine) >= COLUMNS
        store = Store(engine)
        alex = store.get_user_by_email(ALEX)
        assert alex is not None
        [meeting] = store.add_meetings(alex.id, [proposal("kept", 1)], now=T0)
        assert watermark(store, alex.id) == (None, None)  # read before: the whole lookback
        store.record_plan_round(alex.id, [], [], T0 + HOUR, now=T0, history=(T0, "k1"))
        assert watermark(store, alex.id) == (T0, "k1")
        _downgrade(engine, "0009")
        assert not at_head(db_url)
        assert not COLUMNS & _user_columns(engine)
        with engine.connect() as conn:
            emails = conn.execute(text("SELECT email FROM users ORDER BY id")).scalars().all()
        assert emails == [ALEX, SAM]
        assert [m.id for m in store.open_meetings(alex.id)] == [meeting]
        migrate(db_url)
        assert at_head(db_url)
        assert watermark(store, alex.id) == (None, None)
        assert [u.email for u in store.all_users()] == [ALEX, SAM]
    finally:
        engine.dispose()
