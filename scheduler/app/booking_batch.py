"""Several bookings in one message: each owner's calendars read once for all their re-checks.

A planning round approves a few meetings of one owner at once (up to the week's cap), and
booking each on its own read the owner's calendar and the stakeholder's free/busy again for
every one: two provider calls out of three, and most of a booking's CPU. Here the meetings are
claimed one by one (each keeps its own claim, lease and fence, so a crash or a retry is exactly
what it is for a single booking), then the one-to-ones of each owner share one read of the owner
and all their stakeholders over a window covering every slot
(:class:`~scheduler.app.recheck.SharedRead`), then each is booked in turn by
:func:`scheduler.app.booking.attempt`, which answers its re-check from that read while it
covers the slot and is fresh; every event the batch creates is added to the read, so a later
slot sees the earlier ones (the owner's buffer included) as a fresh read would. The guards
against other goodwill meetings (before and after the create is announced) still read the store
for each meeting: they are what keeps two workers from booking one person at the same time.

Each meeting is on its own: a read that fails leaves each meeting to read for itself, and a
meeting whose attempt raises something unexpected does not stop the others (the error is raised
once they are done, and that meeting waits for its lease, as alone). A batch starts no new
attempt after :data:`BATCH_DEADLINE`: the meetings not yet tried go back to ``approved``, their
claim not counted, and the tick sends them again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import timedelta

from scheduler.app.booking import BookOutcome, BookResult, Claimed, attempt, claim_for_booking
from scheduler.app.pipeline import Pipeline
from scheduler.app.recheck import SharedRead, read_for_bookings
from scheduler.core.states import MeetingState

__all__ = ["BATCH_DEADLINE", "book_meetings"]

log = logging.getLogger("goodwill.booking")

#: No attempt of a batch starts later than this after the batch did: well inside the actors'
#: time limit (120 s) even when each provider call of the batch takes seconds.
BATCH_DEADLINE = timedelta(seconds=45)
RELEASED = "released: its batch ran out of time before trying it"


def book_meetings(p: Pipeline, meeting_ids: Iterable[int]) -> list[tuple[int, BookResult]]:
    """Book each meeting as :func:`~scheduler.app.booking.book_meeting` would, with one
    calendar read per owner for the re-checks. Returns ``(meeting id, result)`` in the order
    given (an id given twice is booked once)."""
    ids = list(dict.fromkeys(meeting_ids))
    now = p.clock.now()
    results: dict[int, BookResult] = {}
    ready: list[Claimed] = []
    for meeting_id in ids:
        claimed = claim_for_booking(p, meeting_id, now)
        if isinstance(claimed, BookResult):
            results[meeting_id] = claimed
        else:
            ready.append(claimed)
    for same_owner in _one_to_ones_by_owner(ready):
        _share_one_read(p, same_owner)
    failure: Exception | None = None
    for claimed in ready:
        m = claimed.meeting
        if p.clock.now() - now > BATCH_DEADLINE:
            results[m.id] = _release(p, claimed)
            continue
        try:
            results[m.id] = result = attempt(claimed)
        except Exception as exc:  # this meeting waits for its lease; the others go on
            log.exception("booking meeting %s failed unexpectedly", m.id)
            failure = failure or exc
            results[m.id] = BookResult(BookOutcome.RETRY, detail=type(exc).__name__)
            continue
        read = claimed.booking.busy
        if read is not None and result.outcome is BookOutcome.BOOKED:
            read.add_booked(
                (claimed.booking.policy.owner.email, m.stakeholder_email), m.start, m.end
            )
    if failure is not None:
        raise failure
    return [(meeting_id, results[meeting_id]) for meeting_id in ids]


def _one_to_ones_by_owner(ready: Sequence[Claimed]) -> list[list[Claimed]]:
    """The one-to-ones of each owner (and calendar provider), two or more: the ones that gain
    from one read. Group meetings read all their attendees themselves."""
    groups: dict[tuple[str, str], list[Claimed]] = {}
    for claimed in ready:
        if claimed.stakeholder is None:
            continue
        b = claimed.booking
        groups.setdefault((b.policy.owner.email.lower(), b.backend.provider), []).append(claimed)
    return [group for group in groups.values() if len(group) > 1]


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
