"""Issue 13: on PostgreSQL the hottest statements' text does not vary with their lists' length.

psycopg prepares a statement per text and connection (on its fifth run), and PostgreSQL makes
a custom plan for each prepared statement's first five runs. A list written ``IN (…)``, one
parameter per item, gave a text per length (twenty due stakeholders or three, one claim or
six): most runs of ``stakeholder_load`` were planned afresh (``pg_stat_statements`` in
``docs/benchmarks.md``). Its e-mails and the batch claim's ids are one array parameter now
(``= ANY(…)``). Here the store's methods run on a real server with lists of different lengths
and the statements they send are captured: one text each. (The bookings' rivals read keeps
``IN (…)``: with an array PostgreSQL planned it at every run.) The fenced announce keeps its
fence: a stale claim moves nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event

from scheduler.core.states import MeetingState
from scheduler.store import NewMeeting, Store

pytestmark = pytest.mark.services

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday
SLOT = T0 + timedelta(days=3)
PEOPLE = [f"p{i}@corp.example" for i in range(6)]


@pytest.fixture
def engine(pg_engine: Engine) -> Engine:
    return pg_engine


@pytest.fixture
def store(engine: Engine) -> Store:
    return Store(engine)


def _sent(engine: Engine, call: Callable[[], object]) -> list[str]:
    """The statements ``call`` sends (BEGIN/COMMIT aside)."""
    texts: list[str] = []

    def capture(_c: Any, _cur: Any, statement: str, *_: Any) -> None:
        texts.append(statement)

    event.listen(engine, "before_cursor_execute", capture)
    try:
        call()
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    return texts


def _approved(store: Store, owner: int, n: int, *, tag: str) -> list[int]:
    def proposal(i: int) -> NewMeeting:
        start = SLOT + timedelta(hours=i)
        return NewMeeting(
            stakeholder_email=PEOPLE[i % len(PEOPLE)], kind="coffee", start=start,
            end=start + timedelta(minutes=30), mode="auto", idempotency_key=f"{tag}-{i}",
            provider="google", reason="both free", state=MeetingState.APPROVED,
        )  # fmt: skip

    return store.add_meetings(owner, [proposal(i) for i in range(n)], now=T0)


def test_the_planning_reads_send_one_text_for_any_number_of_people(
    store: Store, engine: Engine
) -> None:
    alex = store.upsert_user("alex@corp.example", "p/alex.yaml", "h", now=T0)
    other = store.upsert_user("kim@corp.example", "p/kim.yaml", "h", now=T0)
    held = _approved(store, other, 6, tag="kim")
    assert sorted(store.claim_bookings(held, T0, 60)) == held  # being booked: they hold slots
    window = (T0, T0 + timedelta(weeks=3))
    since = T0 - timedelta(days=1)

    def load(n: int) -> Callable[[], object]:
        return lambda: store.stakeholder_load(
            PEOPLE[:n], *window, exclude_user_id=alex, invited_since=since
        )

    texts = {n: _sent(engine, load(n)) for n in (1, 2, 6)}
    assert len(texts[1]) == 1
    assert texts[1] == texts[2] == texts[6]
    found, _ = store.stakeholder_load(
        PEOPLE[:2], *window, exclude_user_id=alex, invited_since=since
    )
    assert sorted(found) == PEOPLE[:2]  # the array finds what the list found

    found_rivals = store.booking_rival_rows(
        PEOPLE[:3], SLOT, SLOT + timedelta(hours=8), owner_email="alex@corp.example"
    )
    assert sorted(r.meeting.stakeholder_email for r in found_rivals if r.overlaps) == PEOPLE[:3]


def test_a_batch_claim_sends_one_text_for_any_batch_size(store: Store, engine: Engine) -> None:
    alex = store.upsert_user("alex@corp.example", "p/alex.yaml", "h", now=T0)
    texts: dict[str, list[list[str]]] = {"claim": []}
    for n in (2, 5):
        ids = _approved(store, alex, n, tag=f"b{n}")
        got: dict[int, Any] = {}
        moved: set[int] = set()

        def claim(ids: list[int] = ids, got: dict[int, Any] = got) -> None:
            got.update(store.claim_bookings(ids, T0, 60))

        def announce(
            ids: list[int] = ids, got: dict[int, Any] = got, moved: set[int] = moved
        ) -> None:
            claims = [(mid, got[mid].meeting.attempts) for mid in ids]
            moved.update(store.mark_creates_attempted(claims, T0))

        texts["claim"].append(_sent(engine, claim))
        assert sorted(got) == ids
        announce()
        assert moved == set(ids)
    for name, sent in texts.items():
        assert sent[0] == sent[1], name
        assert len(sent[0]) == 1, name


def test_the_announce_stays_fenced_on_each_claims_number(store: Store, engine: Engine) -> None:
    alex = store.upsert_user("alex@corp.example", "p/alex.yaml", "h", now=T0)
    first, second = _approved(store, alex, 2, tag="fence")
    got = store.claim_bookings([first, second], T0, 60)
    current = got[first].meeting.attempts
    stale = current - 1  # a claim number this row has left behind
    moved = store.mark_creates_attempted(
        [(first, stale), (second, got[second].meeting.attempts)], T0 + timedelta(seconds=1)
    )
    assert moved == {second}
    unmoved = store.get_meeting(first)
    assert unmoved is not None
    assert unmoved.create_attempted_at is None
    # the same meeting twice: its latest claim counts, as the row's number is its latest
    moved = store.mark_creates_attempted(
        [(first, stale), (first, current)], T0 + timedelta(seconds=2)
    )
    assert moved == {first}
