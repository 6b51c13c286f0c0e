"""Conflict watch (pure): which booked coffees does a new busy event now overlap?

A meeting is *conflicted* when an event that is busy under that person's busy rules overlaps
it, for the owner or the stakeholder. goodwill's own event never counts: it is recognised by its
key where the provider shows one (ICS/CalDAV UID, Google or Graph extended property). Opaque
free/busy (Google freeBusy, a CalDAV free-busy report) shows no keys and merges busy time that
overlaps or touches, so a keyless block that covers the whole slot is taken to include our own
event: a conflict inside it cannot be told apart (better missed than a coffee moved for nothing,
e.g. when a meeting was booked right after it). A keyless block that overlaps only part of the
slot means our event is not in that busy time, so the overlap is a real conflict.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from zoneinfo import ZoneInfo

from scheduler.core.availability import working_intervals
from scheduler.core.busy import explain_block
from scheduler.core.durations import format_duration
from scheduler.core.intervals import Interval, overlaps_any
from scheduler.core.model import BusyBlock, BusyResult, BusyRules
from scheduler.core.policy import Policy

__all__ = [
    "Conflict",
    "WatchedMeeting",
    "counter_misfit",
    "find_conflicts",
    "without_our_event",
]


@dataclass(frozen=True, slots=True)
class WatchedMeeting:
    """A goodwill meeting still ahead whose invite is out."""

    id: int
    owner: str
    stakeholder: str
    start: datetime
    end: datetime
    key: str

    @property
    def slot(self) -> Interval:
        return Interval(self.start, self.end)


@dataclass(frozen=True, slots=True)
class Conflict:
    """``meeting`` now overlaps a busy event on ``side``'s calendar (``owner``/``stakeholder``)."""

    meeting: WatchedMeeting
    side: str
    busy: Interval
    why: str


def _our_block(
    blocks: Sequence[BusyBlock], key: str, start: datetime, end: datetime
) -> BusyBlock | None:
    """The block that is goodwill's own event on this calendar, if any: the one with its key;
    else (keyless free/busy) the block exactly at the slot, else one covering the slot."""
    keyed = [b for b in blocks if b.key == key]
    if keyed:
        return keyed[0]
    keyless = [b for b in blocks if b.key is None and b.start <= start and b.end >= end]
    exact = [b for b in keyless if (b.start, b.end) == (start, end)]
    candidates = exact or keyless
    return candidates[0] if candidates else None


def without_our_event(
    blocks: Sequence[BusyBlock], key: str, start: datetime, end: datetime
) -> list[BusyBlock]:
    """``blocks`` with goodwill's own event for ``key`` at ``[start, end)`` taken out.

    The block taken for ours (as in the conflict check) is dropped; if it is a keyless block
    wider than the slot (merged free/busy), what lies before and after the slot is kept, so a
    meeting booked right next to ours still counts.
    """
    ours = _our_block(blocks, key, start, end)
    out: list[BusyBlock] = []
    for b in blocks:
        if b is not ours:
            out.append(b)
            continue
        if b.start < start:
            out.append(replace(b, end=start))
        if b.end > end:
            out.append(replace(b, start=end))
    return out


def _first_conflict(
    m: WatchedMeeting, side: str, blocks: Sequence[BusyBlock], rules: BusyRules
) -> Conflict | None:
    ours = _our_block(blocks, m.key, m.start, m.end)
    for block in sorted(blocks, key=lambda b: (b.start, b.end)):
        if block is ours or not block.interval.overlaps(m.slot):
            continue
        busy, why = explain_block(block, rules)
        if busy:
            return Conflict(m, side, block.interval, why)
    return None


def find_conflicts(
    meetings: Sequence[WatchedMeeting], busy: BusyResult, rules: BusyRules
) -> list[Conflict]:
    """The conflicted meetings, at most one conflict each (the owner's side first).

    A person whose calendar could not be read (``busy.unavailable``) gives no conflict: it is
    unknown, and unknown never moves a meeting.
    """
    blocks = {k.lower(): v for k, v in busy.blocks.items()}
    unavailable = {k.lower() for k in busy.unavailable}
    found: list[Conflict] = []
    for m in meetings:
        for side, email in (("owner", m.owner.lower()), ("stakeholder", m.stakeholder.lower())):
            if email in unavailable:
                continue
            conflict = _first_conflict(m, side, blocks.get(email, []), rules)
            if conflict is not None:
                found.append(conflict)
                break
    return found


def counter_misfit(
    policy: Policy, start: datetime, end: datetime, *, now: datetime, owner_busy: list[Interval]
) -> str | None:
    """Why a time the stakeholder proposed does not fit the owner's rules (None: it fits).

    It must start after the minimum notice, lie inside the owner's working hours, avoid their
    no-meeting days and blackouts, and be free on their calendar (our own event left out).
    """
    av = policy.availability
    zone = ZoneInfo(policy.owner.timezone)
    local = start.astimezone(zone)
    slot = Interval(start, end)
    if start < now + av.min_notice:
        return f"it starts sooner than your minimum notice ({format_duration(av.min_notice)})"
    if local.weekday() in av.no_meeting_days:
        return f"{local:%A} is one of your no-meeting days"
    if any(local.date() in b for b in av.blackout):
        return f"{local:%d %b} is in a blackout"
    work = working_intervals(av.working_hours, policy.owner.timezone, slot)
    if not any(w.start <= start and w.end >= end for w in work):
        return "it is outside your working hours"
    if overlaps_any(slot, owner_busy):
        return "you are busy then"
    return None
