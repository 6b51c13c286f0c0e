"""Several bookings in one message: each owner's calendars and store rows read once for all.

A planning round approves a few meetings of one owner at once (up to the week's cap), and
booking each on its own read the owner's calendar and the stakeholder's free/busy again for
every one (two provider calls out of three), and made five store round trips. Here the meetings
are claimed together (``claim_bookings``: one statement on PostgreSQL; each keeps its own
claim, lease and fence, so a crash or a retry is exactly what it is for a single booking), each
owner's policy is loaded once, and then, for the one-to-ones of each owner in turn:

1. one store read answers each meeting's look at other goodwill meetings before its announce
   (:mod:`scheduler.app.rivals`); a meeting whose slot or pair is held ends there;
2. the creates of the rest are announced in ONE write (``mark_creates_attempted``, fenced per
   claim); a meeting whose claim was lost stops;
3. one store read, made after that write, answers each meeting's look after its announce: of
   two workers racing for a person's slot, the second to announce still sees the first;
4. each is re-checked against the calendars from one shared read of the owner and all their
   stakeholders over a window covering every slot (:class:`~scheduler.app.recheck.SharedRead`,
   while it covers the slot and is fresh) and created, in turn; every event the batch creates
   is added to the read, so a later slot sees the earlier ones (the owner's buffer included)
   as a fresh read would;
5. the events created are recorded in ONE write (``record_bookings``, fenced per claim). A
   worker that dies before it leaves those meetings ``booking`` with their creates announced:
   the next attempt finds each event by its key, as after any crash after a create.

A meeting announced in step 2 whose calendar re-check then finds the slot busy ends like one
found busy before its announce (no create went out). Group meetings are booked each on its own
(:func:`scheduler.app.booking.attempt`).

Each meeting is on its own: a read that fails leaves each meeting to read for itself, and a
meeting whose step raises something unexpected does not stop the others (the error is raised
once they are done, and that meeting waits for its lease, as alone); a failed announce write
leaves that owner's meetings to their leases, the other owners go on. A batch starts no new
step after :data:`BATCH_DEADLINE`, a meeting's or an owner's shared read or announce: the
meetings not yet through go back to ``approved``, their claim not counted, and the tick sends
them again (one already announced is looked up by its key on its next attempt, as after a
crash).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta

from scheduler.app.booking import (
    BookOutcome,
    BookResult,
    Claimed,
    attempt,
    before_announce,
    check_claimed,
    create_announced,
)
from scheduler.app.pipeline import Pipeline
from scheduler.app.recheck import SharedRead, read_for_bookings
from scheduler.app.records import BookedEvent
from scheduler.app.rivals import read_rivals, rival_people
from scheduler.core.policy import Policy
from scheduler.core.states import MeetingState

__all__ = ["BATCH_DEADLINE", "book_meetings"]

log = logging.getLogger("goodwill.booking")

#: No step of a batch (a meeting's, or an owner's shared read or announce) starts later than
#: this after the batch did: well inside the actors' time limit (120 s) even when each provider
#: call of the batch takes seconds.
BATCH_DEADLINE = timedelta(seconds=45)
RELEASED = "released: its batch ran out of time before trying it"


def book_meetings(p: Pipeline, meeting_ids: Iterable[int]) -> list[tuple[int, BookResult]]:
    """Book each meeting as :func:`~scheduler.app.booking.book_meeting` would, with one
    calendar read per owner for the re-checks and one store read per owner for each of the two
    looks at other goodwill meetings. Returns ``(meeting id, result)`` in the order given (an
    id given twice is booked once)."""
    ids = list(dict.fromkeys(meeting_ids))
    batch = _Batch(p, p.clock.now())
    ready: list[Claimed] = []
    claims = p.store.claim_bookings(ids, batch.began, p.lease_s)  # with the owners' rows
    policies: dict[int | None, Policy | None] = {}  # each owner's loaded once for the batch
    for meeting_id in ids:
        claim = claims.get(meeting_id)
        if claim is None:
            batch.results[meeting_id] = BookResult(BookOutcome.ALREADY)
            continue
        try:
            claimed = check_claimed(p, claim, batch.began, policies)
        except Exception as exc:  # this meeting waits for its lease; the others go on
            batch.failed(meeting_id, exc)
            continue
        if isinstance(claimed, BookResult):
            batch.results[meeting_id] = claimed
        else:
            ready.append(claimed)
    for same_owner in _by_owner(ready):
        if same_owner[0].stakeholder is None:  # group meetings: each on its own
            for claimed in same_owner:
                batch.run(claimed, attempt)
        else:
            batch.one_owner(same_owner)
    if batch.failure is not None:
        raise batch.failure
    return [(meeting_id, batch.results[meeting_id]) for meeting_id in ids]


class _Batch:
    """The results of one batch, the first unexpected error, and its deadline."""

    def __init__(self, p: Pipeline, began: datetime) -> None:
        self.p = p
        self.began = began
        self.results: dict[int, BookResult] = {}
        self.failure: Exception | None = None

    def past_deadline(self) -> bool:
        return self.p.clock.now() - self.began > BATCH_DEADLINE

    def failed(self, meeting_id: int, exc: Exception) -> None:
        """Something unexpected: the meeting waits for its lease, the error is raised once
        the others are done."""
        log.exception("booking meeting %s failed unexpectedly", meeting_id, exc_info=exc)
        self.failure = self.failure or exc
        self.results[meeting_id] = BookResult(BookOutcome.RETRY, detail=type(exc).__name__)

    def release(self, claimed: Sequence[Claimed]) -> None:
        """Past the deadline: give these back, their claims not counted."""
        for c in claimed:
            self.results[c.meeting.id] = _release(self.p, c)

    def run(self, claimed: Claimed, step: Callable[[Claimed], BookResult | None]) -> bool:
        """One step of one meeting; True when the meeting goes on to the next step. Past the
        deadline the meeting is given back; an unexpected error leaves it to its lease."""
        m = claimed.meeting
        if self.past_deadline():
            self.results[m.id] = _release(self.p, claimed)
            return False
        try:
            result = step(claimed)
        except Exception as exc:  # this meeting waits for its lease; the others go on
            self.failed(m.id, exc)
            return False
        if result is None:
            return True
        self.results[m.id] = result
        if result.outcome is BookOutcome.BOOKED:
            _add_to_shared_read(claimed)
        return False

    def one_owner(self, same_owner: Sequence[Claimed]) -> None:
        """One owner's one-to-ones: one store read for the look before the announce, the
        creates announced in one write, one store read for the look after it, then each
        re-checked against the calendars and created in turn, and the events recorded in one
        write. Nothing shared starts past the deadline: the meetings not yet announced are
        given back instead."""
        if self.past_deadline():
            self.release(same_owner)
            return
        if len(same_owner) > 1:
            _share_one_read(self.p, same_owner)
        if not self._share_rivals(same_owner):
            for claimed in same_owner:
                self.run(claimed, attempt)
            return
        going = [c for c in same_owner if self.run(c, before_announce)]
        if self.past_deadline():
            self.release(going)
            return
        fresh = [c for c in going if not c.booking.uncertain]
        try:
            announced = self._announce(fresh)
        except Exception as exc:  # the write may have gone through: each waits for its lease
            for claimed in going:
                self.failed(claimed.meeting.id, exc)
            return
        going = [c for c in going if c.booking.uncertain or c.meeting.id in announced]
        if going and not self._share_rivals(going):
            for claimed in going:
                claimed.booking.rivals = None  # each reads for itself
        created: list[Claimed] = []
        for claimed in going:
            if self.run(claimed, create_announced):
                created.append(claimed)
                _add_to_shared_read(claimed)
        if created:
            self._record(created)

    def _record(self, created: Sequence[Claimed]) -> None:
        """The batch's events, recorded in one write. Should the write fail, each meeting
        waits for its lease (its event is found by its key on the next attempt)."""
        try:
            self.results.update(_record_created(self.p, created))
        except Exception as exc:
            log.exception("recording the batch's %d bookings failed", len(created))
            self.failure = self.failure or exc
            for claimed in created:
                self.results[claimed.meeting.id] = BookResult(
                    BookOutcome.RETRY, detail=type(exc).__name__
                )

    def _announce(self, fresh: Sequence[Claimed]) -> set[int]:
        claims = [(c.meeting.id, c.meeting.attempts) for c in fresh]
        announced = self.p.store.mark_creates_attempted(claims, self.began) if claims else set()
        for claimed in fresh:
            if claimed.meeting.id in announced:
                claimed.booking.announced = True
            else:
                self.results[claimed.meeting.id] = BookResult(
                    BookOutcome.ALREADY, detail="the claim was lost"
                )
        return announced

    def _share_rivals(self, same_owner: Sequence[Claimed]) -> bool:
        """Give each meeting one store read for its next look; False when the read failed."""
        policy = same_owner[0].booking.policy
        meetings = [c.meeting for c in same_owner]
        people = [e for m in meetings for e in rival_people(policy, m)]
        try:
            read = read_rivals(self.p, policy.owner.email, meetings, people)
        except Exception:  # each meeting reads for itself, and meets the error there
            log.info("the shared store read failed; each booking reads for itself", exc_info=True)
            return False
        for claimed in same_owner:
            claimed.booking.rivals = read
        return True


def _record_created(p: Pipeline, created: Sequence[Claimed]) -> dict[int, BookResult]:
    """Record the events :func:`~scheduler.app.booking.create_announced` made, in one write
    (each fenced on its claim, as a single booking's record): each meeting's result, by id.
    A meeting whose claim was lost meanwhile is left to its new holder (which finds the event
    by its key)."""
    booked = [_booked_event(c) for c in created]
    moved = p.store.record_bookings(booked, created[0].booking.now) if booked else set()
    if p.metrics is not None:
        for _ in moved:
            p.metrics.bookings_total.inc()
    return {
        b.meeting_id: BookResult(
            BookOutcome.BOOKED if b.meeting_id in moved else BookOutcome.ALREADY
        )
        for b in booked
    }


def _booked_event(claimed: Claimed) -> BookedEvent:
    b = claimed.booking
    assert b.created is not None, "recorded before it was created"
    detail = "created" if b.created.created else "reconciled existing event"
    return BookedEvent(b.m.id, b.m.attempts, b.created.provider_event_id, detail)


def _add_to_shared_read(claimed: Claimed) -> None:
    """The meeting's event is on both calendars now: the batch's later re-checks see it."""
    read, m = claimed.booking.busy, claimed.meeting
    if read is not None:
        read.add_booked((claimed.booking.policy.owner.email, m.stakeholder_email), m.start, m.end)


def _by_owner(ready: Sequence[Claimed]) -> list[list[Claimed]]:
    """The meetings of each owner (and calendar provider), one-to-ones and group meetings
    apart, in the order first seen."""
    groups: dict[tuple[str, str, bool], list[Claimed]] = {}
    for claimed in ready:
        b = claimed.booking
        key = (b.policy.owner.email.lower(), b.backend.provider, claimed.stakeholder is None)
        groups.setdefault(key, []).append(claimed)
    return list(groups.values())


def _share_one_read(p: Pipeline, same_owner: Sequence[Claimed]) -> None:
    first = same_owner[0].booking
    slots = [
        (c.stakeholder, c.meeting.start, c.meeting.end)
        for c in same_owner
        if c.stakeholder is not None
    ]
    try:
        read: SharedRead = read_for_bookings(p, first.policy, first.backend, slots)
    except Exception:  # each booking reads for itself, and meets the error where it is handled
        log.info("the shared re-check read failed; each booking reads for itself", exc_info=True)
        return
    for claimed in same_owner:
        claimed.booking.busy = read


def _release(p: Pipeline, claimed: Claimed) -> BookResult:
    """Give back a claim this batch will not try: ``approved`` again, the claim not counted."""
    m, now = claimed.meeting, p.clock.now()
    p.store.transition(
        m.id, MeetingState.APPROVED, actor="worker", now=now, expect=MeetingState.BOOKING,
        attempt=m.attempts, attempts=max(0, m.attempts - 1), detail=RELEASED,
    )  # fmt: skip
    return BookResult(BookOutcome.ALREADY, detail=RELEASED)
