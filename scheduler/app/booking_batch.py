"""Several bookings in one message: each owner's calendars read once for all their re-checks.

A planning round approves a few meetings of one owner at once (up to the week's cap), and
booking each on its own read the owner's calendar and the stakeholder's free/busy again for
every one: two provider calls out of three, and most of a booking's CPU. Here the meetings are
claimed one by one (each keeps its own claim, lease and fence, so a crash or a retry is exactly
what it is for a single booking), then the one-to-ones of each owner share one read of the owner
and all their stakeholders over a window covering every slot, then each is booked in turn by
:func:`scheduler.app.booking.attempt`, which answers its re-check from that read. The guards
against other goodwill meetings (:func:`scheduler.app.booking._rivals`, before and after the
create is announced) still read the store for each meeting: they are what keeps two workers from
booking one person at the same time. A read that fails leaves each meeting to read for itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from scheduler.app.booking import BookResult, Claimed, attempt, claim_for_booking
from scheduler.app.pipeline import Pipeline
from scheduler.app.recheck import read_for_bookings
from scheduler.core.errors import ConnectorError

__all__ = ["book_meetings"]


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
    for claimed in ready:
        results[claimed.meeting.id] = attempt(claimed)
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
    slots = [(c.stakeholder, c.meeting.start, c.meeting.end) for c in same_owner]
    try:
        read = read_for_bookings(
            p, first.policy, first.backend, [(s, a, z) for s, a, z in slots if s is not None]
        )
    except ConnectorError:
        return  # each booking reads for itself, and meets the error where it is handled
    for claimed in same_owner:
        claimed.booking.busy = read
