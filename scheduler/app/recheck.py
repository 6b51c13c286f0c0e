"""The re-check before a booking: both calendars read again, under the owner's busy rules.

One booking reads its two people for its own slot (:func:`calendars_busy`). Several bookings of
one owner sent together (:mod:`scheduler.app.booking_batch`) read the owner and all their
stakeholders once, over a window covering every slot (:func:`read_for_bookings`), and each
re-check is then answered from that :class:`SharedRead` when it covers the slot (with the
buffer the policy has at that moment) and is at most :data:`SHARED_READ_MAX_AGE` old; every
event the batch creates is added to it, so a later slot sees the earlier ones as a fresh read
would.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from scheduler.app.pipeline import Pipeline
from scheduler.core.busy import apply_busy_rules
from scheduler.core.intervals import Interval, overlaps_any
from scheduler.core.model import BusyBlock, BusyQuery, BusyResult, Person
from scheduler.core.policy import Policy, Stakeholder
from scheduler.core.ports import CalendarBackend

__all__ = ["SHARED_READ_MAX_AGE", "SharedRead", "calendars_busy", "read_for_bookings"]

#: How long a read shared by a batch of bookings answers their re-checks; after that (a slow
#: batch) each remaining booking reads for itself, as it would alone.
SHARED_READ_MAX_AGE = timedelta(seconds=30)


@dataclass(slots=True)
class SharedRead:
    """Both sides of several bookings of one owner, read once (:func:`read_for_bookings`)."""

    window: Interval
    result: BusyResult
    read_at: datetime

    def answers(self, start: datetime, end: datetime, buffer: timedelta, now: datetime) -> bool:
        """Whether this read may stand for a fresh one of ``[start - buffer, end + buffer)``."""
        covered = self.window.start <= start - buffer and end + buffer <= self.window.end
        return covered and now - self.read_at <= SHARED_READ_MAX_AGE

    def add_booked(self, emails: Sequence[str], start: datetime, end: datetime) -> None:
        """An event the batch just created, on each of ``emails``' calendars (as a fresh read
        would now show it), so the batch's later re-checks see it."""
        blocks = dict(self.result.blocks)
        for email in emails:
            key = next((k for k in blocks if k.lower() == email.lower()), email)
            blocks[key] = [*blocks.get(key, []), BusyBlock(start=start, end=end)]
        self.result = BusyResult(
            blocks=blocks,
            unavailable=self.result.unavailable,
            working_hours=self.result.working_hours,
        )


def calendars_busy(
    p: Pipeline,
    policy: Policy,
    backend: CalendarBackend,
    stakeholder: Stakeholder,
    start: datetime,
    end: datetime,
    *,
    read: SharedRead | None = None,
) -> bool:
    """Read both calendars again for ``[start, end)`` (owner with buffer) under the busy rules.

    True when either person is busy then, or a calendar cannot be read. Raises ConnectorError.
    ``read``: both calendars already read for a batch (used when it answers for this slot).
    """
    owner, person = policy.owner.person, policy.person_of(stakeholder)
    buffer = policy.availability.buffer
    result = None
    if read is not None and read.answers(start, end, buffer, p.clock.now()):
        result = read.result
    if result is None:
        with p.provider_call(backend.provider, "recheck"):
            result = backend.source.busy(
                BusyQuery(window=Interval(start - buffer, end + buffer), people=(owner, person))
            )
    rules = policy.availability.busy
    slot = Interval(start, end)
    email = stakeholder.email.lower()
    owner_busy = apply_busy_rules(result.blocks.get(owner.email, []), rules)
    their_busy = apply_busy_rules(
        result.blocks.get(email, result.blocks.get(stakeholder.email, [])), rules
    )
    return (
        email in result.unavailable
        or stakeholder.email in result.unavailable
        or owner.email in result.unavailable
        or overlaps_any(slot.padded(buffer), owner_busy)
        or overlaps_any(slot, their_busy)
    )


def read_for_bookings(
    p: Pipeline,
    policy: Policy,
    backend: CalendarBackend,
    slots: Sequence[tuple[Stakeholder, datetime, datetime]],
) -> SharedRead:
    """Both sides of several bookings in one read: the owner and every stakeholder in
    ``slots``, over the window from the first start to the last end (owner's buffer added).
    What :func:`calendars_busy` then reads from it is what it would have read itself: the busy
    rules and the overlap test apply to the blocks overlapping each slot. Raises
    ConnectorError."""
    buffer = policy.availability.buffer
    people: list[Person] = [policy.owner.person]
    seen = {policy.owner.email.lower()}
    for stakeholder, _, _ in slots:
        if stakeholder.email.lower() not in seen:
            seen.add(stakeholder.email.lower())
            people.append(policy.person_of(stakeholder))
    window = Interval(
        min(start for _, start, _ in slots) - buffer, max(end for _, _, end in slots) + buffer
    )
    read_at = p.clock.now()
    with p.provider_call(backend.provider, "recheck"):
        result = backend.source.busy(BusyQuery(window=window, people=tuple(people)))
    return SharedRead(window, result, read_at)
