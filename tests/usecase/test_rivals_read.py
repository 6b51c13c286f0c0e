"""A batch's one store read answers each meeting's look exactly as its own read would.

``scheduler.app.rivals.RivalsRead`` filters one ``booking_rival_rows`` read (every slot's window,
every meeting's people) down to each meeting with the store's own rule. Here, on every store,
random organisations of owners, shared stakeholders and group meetings in every state that
holds a slot or does not: for each meeting of one owner, the answer from the shared read must
equal ``booking_rivals`` for that meeting alone.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from scheduler.app.records import NewMeeting
from scheduler.app.rivals import RivalsRead
from scheduler.core.states import MeetingState
from tests.usecase.stores import STORE_KINDS, InspectableStore, open_store

S = MeetingState
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
OWNERS = [f"{n}@corp.example" for n in ("alex", "kim", "sam", "lee")]
OUTSIDERS = [f"{n}@corp.example" for n in ("ana", "bo", "cy")]
#: How a meeting is walked: plain states, and the ones a booking leaves behind.
WALKS = ("proposed", "approved", "booking", "announced", "booked", "cancelled", "uncertain")


@pytest.fixture(params=STORE_KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[InspectableStore]:
    with open_store(request.param, request, tmp_path) as opened:
        yield opened


def _new(rng: random.Random, key: str, owner: str) -> NewMeeting:
    start = T0 + timedelta(minutes=15 * rng.randrange(0, 4 * 24))
    email = rng.choice([o for o in OWNERS + OUTSIDERS if o != owner])
    meeting = NewMeeting(
        stakeholder_email=email, kind="coffee", start=start,
        end=start + timedelta(minutes=rng.choice((30, 45, 60))), mode="auto",
        idempotency_key=key, provider="fake", reason="both free", state=S.APPROVED,
    )  # fmt: skip
    if rng.random() < 0.2:  # a group meeting: its attendees are people too
        people = rng.sample([o for o in OWNERS + OUTSIDERS if o != owner], 3)
        meeting = replace(
            meeting, stakeholder_email=people[0], attendees=tuple(people), group_name="g",
            presenter=people[0], quorum=2,
        )  # fmt: skip
    return meeting


def _walk(store: InspectableStore, meeting_id: int, how: str) -> None:
    if how == "proposed":
        return
    if how == "cancelled":
        store.transition(meeting_id, S.CANCELLED, actor="user", now=T0)
        return
    if how == "approved":
        return
    claimed = store.claim_for_booking(meeting_id, T0, 600)
    assert claimed is not None
    if how in ("announced", "uncertain"):
        assert store.mark_create_attempted(meeting_id, T0, attempt=claimed.attempts)
    if how == "uncertain":  # back to approved, its create attempted: it holds the slot
        assert store.transition(
            meeting_id, S.APPROVED, actor="worker", now=T0, expect=S.BOOKING,
            attempt=claimed.attempts,
        )  # fmt: skip
    if how == "booked":
        assert store.transition(meeting_id, S.BOOKED, actor="worker", now=T0)


def _organisation(store: InspectableStore, seed: int) -> dict[str, list[int]]:
    rng = random.Random(seed)
    ids: dict[str, list[int]] = {}
    for owner in OWNERS:
        user_id = store.upsert_user(owner, f"policies/{owner}.yaml", "h", now=T0)
        for n in range(12):
            key = f"{owner}-{n}"
            new = _new(rng, key, owner)
            state = S.PROPOSED if (how := rng.choice(WALKS)) == "proposed" else S.APPROVED
            (meeting_id,) = store.add_meetings(user_id, [replace(new, state=state)], now=T0)
            _walk(store, meeting_id, how)
            ids.setdefault(owner, []).append(meeting_id)
    return ids


@pytest.mark.parametrize("seed", range(6))
def test_the_shared_read_answers_each_meeting_as_its_own_read(
    store: InspectableStore, seed: int
) -> None:
    ids = _organisation(store, seed)
    owner = OWNERS[seed % len(OWNERS)]
    batch = [m for i in ids[owner] if (m := store.get_meeting(i)) is not None]
    people_of = {m.id: [owner, m.stakeholder_email, *m.attendees] for m in batch}
    start, end = min(m.start for m in batch), max(m.end for m in batch)
    every = sorted({e for people in people_of.values() for e in people})
    read = RivalsRead(owner, tuple(store.booking_rival_rows(every, start, end, owner_email=owner)))
    compared = 0
    for m in batch:
        alone = store.booking_rivals(
            people_of[m.id], m.start, m.end, exclude_id=m.id, owner_email=owner
        )
        overlapping, theirs = read.answer(m, people_of[m.id])
        assert [c.id for c in overlapping] == [c.id for c in alone[0]], m
        assert sorted((o, c.id) for o, c in theirs) == sorted((o, c.id) for o, c in alone[1])
        compared += len(alone[0])
    assert compared > 0, "the organisation should have some clashes to compare"
