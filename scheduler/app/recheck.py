"""The re-check before a booking: both calendars read again, under the owner's busy rules.

One booking reads its two people for its own slot (:func:`calendars_busy`). Several bookings of
one owner sent together (:mod:`scheduler.app.booking_batch`) read the owner and all their
stakeholders once, over a window covering every slot (:func:`read_for_bookings`), and each
re-check is then answered from that read.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from scheduler.app.pipeline import Pipeline
from scheduler.core.busy import apply_busy_rules
from scheduler.core.intervals import Interval, overlaps_any
from scheduler.core.model import BusyQuery, BusyResult, Person
from scheduler.core.policy import Policy, Stakeholder
from scheduler.core.ports import CalendarBackend

__all__ = ["calendars_busy", "read_for_bookings"]


def calendars_busy(
    p: Pipeline,
    policy: Policy,
    backend: CalendarBackend,
    stakeholder: Stakeholder,
    start: datetime,
    end: datetime,
    *,
    read: BusyResult | None = None,
) -> bool:
    """Read both calendars again for ``[start, end)`` (owner with buffer) under the busy rules.

    True when either person is busy then, or a calendar cannot be read. Raises ConnectorError.
    ``read``: both calendars already read over a window covering this one (then no request).
    """
    owner, person = policy.owner.person, policy.person_of(stakeholder)
    buffer = policy.availability.buffer
    result = read
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
) -> BusyResult:
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
    with p.provider_call(backend.provider, "recheck"):
        return backend.source.busy(BusyQuery(window=window, people=tuple(people)))
