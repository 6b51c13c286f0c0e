"""goodwill's own meetings as the calendars show them, for a plan that has no store.

With a database the store's open meetings make a stakeholder ``open_meeting``. Without one (a
dry run over calendar files), a future event that carries goodwill's key (``BusyBlock.key``)
is the same thing when it is a one-to-one between the owner and that stakeholder: on the
owner's calendar, its participants are exactly the two of them; on the stakeholder's, too, or
(a provider that shows the key but not the participants) the owner's calendar holds the same
key. Cancelled events and events either side declined are no meeting; a group meeting is
nobody's one-to-one (its time is busy anyway).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from scheduler.core.model import AttendeeStatus, BusyBlock, BusyResult, EventStatus
from scheduler.core.planner_model import ExistingMeeting

__all__ = ["calendar_meetings"]


def calendar_meetings(
    busy: BusyResult, owner: str, stakeholders: Iterable[str], now: datetime
) -> list[ExistingMeeting]:
    """The open one-to-ones goodwill booked between ``owner`` and each of ``stakeholders``
    that ``busy`` shows (one per event and stakeholder, in stakeholder order)."""
    owner = owner.lower()
    blocks = {email.lower(): found for email, found in busy.blocks.items()}
    mine = [b for b in blocks.get(owner, ()) if _live(b, now)]
    owner_keys = {b.key for b in mine}
    found: dict[tuple[str, str | None], ExistingMeeting] = {}
    for stakeholder in dict.fromkeys(s.lower() for s in stakeholders):
        if stakeholder == owner:
            continue
        pair = frozenset({owner, stakeholder})
        theirs = [b for b in blocks.get(stakeholder, ()) if _live(b, now)]
        matching = [b for b in mine if b.participants == pair] + [
            b
            for b in theirs
            if b.participants == pair or (not b.participants and b.key in owner_keys)
        ]
        for block in matching:
            found.setdefault(
                (stakeholder, block.key), ExistingMeeting(stakeholder, block.start, block.end)
            )
    return list(found.values())


def _live(block: BusyBlock, now: datetime) -> bool:
    """One of goodwill's events, not over, not cancelled, not declined by this calendar's
    person."""
    return (
        block.key is not None
        and block.end > now
        and block.status is not EventStatus.CANCELLED
        and block.response is not AttendeeStatus.DECLINED
    )
