"""One store read of the other goodwill meetings, for every re-check of a batch of bookings.

A booking looks at the store twice (:mod:`scheduler.app.booking`): before it announces its
create (is the slot or the pair held already?) and after (did someone announce first?). Alone,
each look is one read of the meetings involving its people at its time. A batch of one owner's
bookings (:mod:`scheduler.app.booking_batch`) makes each look once for all of them: one read
over every slot's window and every meeting's people (:meth:`StorePort.booking_rival_rows`), and
each meeting's answer is taken from it with the store's own rule - a meeting other than this
one, holding the slot (its state says so, in the read), overlapping this meeting's time, and
involving one of its people (as stakeholder, owner or group attendee) - so every booking sees
exactly what its own read would have returned at the moment of the batch's read.

That moment matters only for the look after the announce, and there the batch keeps the order
that makes it a guard: every meeting of the batch is announced (one write) before the one read,
so of two workers racing for a person's slot the second to announce still sees the first.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from scheduler.app.pipeline import Pipeline
from scheduler.app.records import Meeting, Rival
from scheduler.core.policy import Policy
from scheduler.core.states import MeetingState

#: States in which a meeting's event is on the calendars.
_ON_CALENDARS = (MeetingState.BOOKED, MeetingState.ACCEPTED, MeetingState.TENTATIVE)

__all__ = [
    "RivalsRead",
    "clashing_meeting",
    "holds_slot",
    "other_side_meeting",
    "read_rivals",
    "rival_people",
]


@dataclass(frozen=True, slots=True)
class RivalsRead:
    """The rows of one read for several meetings of ``owner_email``."""

    owner_email: str
    rows: tuple[Rival, ...]

    def answer(
        self, m: Meeting, people: Iterable[str]
    ) -> tuple[list[Meeting], list[tuple[str, Meeting]]]:
        """What ``StorePort.booking_rivals(people, m.start, m.end, exclude_id=m.id,
        owner_email=self.owner_email)`` returns, from this read."""
        wanted = {e.lower() for e in people}
        overlapping = [
            r.meeting
            for r in self.rows
            if r.overlaps and r.meeting.id != m.id and _involves(r, wanted)
            and r.meeting.start < m.end and r.meeting.end > m.start
        ]  # fmt: skip
        theirs = [(r.owner_email, r.meeting) for r in self.rows if r.theirs]
        return sorted(overlapping, key=lambda c: c.id), theirs


def _involves(row: Rival, wanted: set[str]) -> bool:
    c = row.meeting
    return (
        c.stakeholder_email.lower() in wanted
        or row.owner_email.lower() in wanted
        or any(a.lower() in wanted for a in c.attendees)
    )


def read_rivals(
    p: Pipeline, owner_email: str, meetings: Sequence[Meeting], people: Iterable[str]
) -> RivalsRead:
    """One read covering ``meetings`` (all of ``owner_email``) and all of ``people``."""
    start: datetime = min(m.start for m in meetings)
    end: datetime = max(m.end for m in meetings)
    rows = p.store.booking_rival_rows(sorted(set(people)), start, end, owner_email=owner_email)
    return RivalsRead(owner_email, tuple(rows))


# -- who holds a slot or a pair (the booking's looks, :mod:`scheduler.app.booking`) -----------


def holds_slot(c: Meeting, m: Meeting, *, announced_only: bool) -> bool:
    """Whether meeting ``c`` keeps ``m`` from its slot (or its pair).

    Booked, accepted and tentative meetings hold it; so does any meeting whose create was
    attempted (its event may exist). Before announcing our own create, a meeting still being
    booked without a create holds it when its id is lower (a tie goes to the older one).
    """
    if (
        c.state in (MeetingState.BOOKED, MeetingState.ACCEPTED, MeetingState.TENTATIVE)
        or c.create_attempted_at is not None
    ):
        return True
    return not announced_only and c.state == MeetingState.BOOKING and c.id < m.id


def rival_people(policy: Policy, m: Meeting) -> list[str]:
    """The people whose other goodwill meetings can hold ``m``'s slot."""
    return [policy.owner.email, m.stakeholder_email, *m.attendees]


def clashing_meeting(
    m: Meeting, overlapping: Sequence[Meeting], *, announced_only: bool
) -> Meeting | None:
    """Another goodwill meeting with either person at this time that holds the slot.

    The provider re-check cannot see an event that is being created at this very moment: this
    is the guard against two owners booking the same person at the same time.
    """
    for c in overlapping:
        if holds_slot(c, m, announced_only=announced_only):
            return c
    return None


def other_side_meeting(
    p: Pipeline,
    owner_email: str,
    m: Meeting,
    *,
    announced_only: bool = False,
    known: Sequence[tuple[str, Meeting]] | None = None,
) -> Meeting | None:
    """The stakeholder's own goodwill meeting with this owner that holds the pair, or None.

    Two users who list each other get one meeting: the first one booked wins. Group meetings
    are nobody's pair meeting. ``known``: ``open_meetings_as_stakeholder(owner_email)``,
    already read.
    """
    if m.is_group:
        return None
    if known is None:
        known = p.store.open_meetings_as_stakeholder(owner_email)
    for other_owner, theirs in known:
        if other_owner != m.stakeholder_email.lower() or theirs.id == m.id or theirs.is_group:
            continue
        if holds_slot(theirs, m, announced_only=announced_only):
            return theirs
    return None
