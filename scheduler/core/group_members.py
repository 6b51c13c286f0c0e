"""Who of a group may be invited, for :mod:`scheduler.core.groups`. Pure.

- :func:`eligible`: the members who may be invited at all (nobody paused, nobody ``to_meet``
  not met yet, no senior before a one-to-one, nobody without a readable calendar, no senior
  who got a new goodwill invite from another owner today) and how many were left out why;
- :func:`capped_spans`: the weeks (ISO weeks in the member's own zone) in which a member
  already has the service-wide most goodwill meetings from other owners
  (``GOODWILL_STAKEHOLDER_WEEKLY_CAP``): they are not invited to a slot in those weeks. The
  load counts every attendee of other owners' group meetings, so a group invite counts
  towards each attendee's week as a one-to-one would;
- :func:`full_weeks`: the same for the owner's own meetings with a member (open one-to-ones,
  open and held group meetings and introductions, this round's proposals) against
  ``etiquette.max_per_stakeholder_per_week``.

Other owners are never named: the reasons say "other goodwill meetings", not whose.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime, time, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from scheduler.core.availability import Span
from scheduler.core.introductions import is_unmet
from scheduler.core.model import BusyResult, Person
from scheduler.core.policy import Policy
from scheduler.core.policy.groups import Group

__all__ = [
    "MemberLoad",
    "capped_spans",
    "choose_attendees",
    "eligible",
    "full_weeks",
    "group_person",
    "left_out_code",
    "left_out_text",
    "own_limit_text",
    "owner_meetings",
]


class MemberLoad(Protocol):
    """What members already have from other owners (the planner's ``StakeholderLoad``)."""

    @property
    def weekly_cap(self) -> int: ...
    @property
    def meetings(self) -> Mapping[str, Sequence[datetime]]: ...
    @property
    def invited_today(self) -> Collection[str]: ...


_LEFT_OUT = {
    "paused": "paused",
    "to_meet": "not met yet (never invited cold)",
    "senior_first": "senior, to meet one-to-one first",
    "stakeholder_busy": "senior, already asked by goodwill today (asked tomorrow)",
    "calendar_unavailable": "without a readable calendar",
}


def eligible(
    policy: Policy,
    group: Group,
    now: datetime,
    busy: BusyResult,
    last_contacts: Mapping[str, datetime],
    met: Collection[str] | None,
    load: MemberLoad | None,
) -> tuple[list[str], dict[str, int]]:
    """The members who may be invited, and how many were left out for each reason.

    ``met``: e-mails with a completed one-to-one (None: anyone in ``last_contacts``).
    """
    today = now.astimezone(ZoneInfo(policy.owner.timezone)).date()
    met_set = {e.lower() for e in (last_contacts if met is None else met)}
    asked_today = {e.lower() for e in load.invited_today} if load is not None else set()
    blocks = {k.lower() for k in busy.blocks}
    unavailable = {k.lower() for k in busy.unavailable}
    out: list[str] = []
    left: Counter[str] = Counter()
    for email in group.members:
        s = policy.stakeholder(email)
        if s is not None and s.paused_until is not None and s.paused_until > today:
            left["paused"] += 1
        elif s is not None and is_unmet(s, last_contacts):
            left["to_meet"] += 1
        elif s is not None and s.senior and email not in met_set:
            left["senior_first"] += 1
        elif s is not None and s.senior and email in asked_today:
            left["stakeholder_busy"] += 1
        elif email not in blocks or email in unavailable:
            left["calendar_unavailable"] += 1
        else:
            out.append(email)
    return out, dict(left)


def left_out_code(left: Mapping[str, int]) -> str:
    """The skip code when too few members are left: the first reason that left someone out."""
    for code in ("senior_first", "stakeholder_busy", "calendar_unavailable"):
        if left.get(code):
            return code
    return "too_few_members"


def left_out_text(left: Mapping[str, int]) -> str:
    """``1 paused, 2 without a readable calendar`` (no names)."""
    return ", ".join(f"{n} {_LEFT_OUT[k]}" for k, n in sorted(left.items()))


def capped_spans(load: MemberLoad | None, email: str, zone: str) -> list[Span]:
    """The member's weeks (their own ISO weeks, as epoch spans, sorted) that already hold
    ``weekly_cap`` goodwill meetings with other owners."""
    if load is None:
        return []
    return full_weeks(load.meetings.get(email, ()), load.weekly_cap, zone)


def full_weeks(starts: Sequence[datetime], cap: int, zone: str) -> list[Span]:
    """The ISO weeks in ``zone`` (as epoch spans, sorted) holding at least ``cap`` of
    ``starts``: the service-wide cap over other owners, or the owner's own
    ``etiquette.max_per_stakeholder_per_week`` over the owner's meetings."""
    tz = ZoneInfo(zone)
    weeks = Counter(start.astimezone(tz).isocalendar()[:2] for start in starts)
    out: list[Span] = []
    for (year, week), count in sorted(weeks.items()):
        if count < cap:
            continue
        monday = datetime.fromisocalendar(year, week, 1).date()
        begin = datetime.combine(monday, time(0), tzinfo=tz)
        end = datetime.combine(monday + timedelta(days=7), time(0), tzinfo=tz)
        out.append((int(begin.timestamp()), int(end.timestamp())))
    return out


def owner_meetings(
    *sources: Mapping[str, Sequence[datetime]],
) -> dict[str, list[datetime]]:
    """The owner's meetings per lower-cased e-mail (their starts), merged from ``sources``."""
    out: dict[str, list[datetime]] = {}
    for source in sources:
        for email, starts in source.items():
            out.setdefault(email.lower(), []).extend(starts)
    return out


def own_limit_text(limit: int) -> str:
    """Why someone is not invited in a week: ``etiquette.max_per_stakeholder_per_week``."""
    if limit == 1:
        return "already have a goodwill meeting with you"
    return f"already have {limit} goodwill meetings with you"


def choose_attendees(
    group: Group, order: Sequence[str], departments: Mapping[str, str | None]
) -> list[str]:
    """Up to ``size.high`` of ``order`` with no ``avoid_together`` pair: a new department first
    while fewer than ``mix_departments`` are in, then in order."""
    chosen: list[str] = []

    def fits(email: str) -> bool:
        return email not in chosen and not any(group.keeps_apart(email, c) for c in chosen)

    seen: set[str] = set()
    for email in order:
        dept = departments[email]
        if len(seen) >= group.mix_departments or len(chosen) >= group.size.high:
            break
        if dept is not None and dept not in seen and fits(email):
            chosen.append(email)
            seen.add(dept)
    for email in order:
        if len(chosen) >= group.size.high:
            break
        if fits(email):
            chosen.append(email)
    return chosen


def group_person(policy: Policy, email: str) -> Person:
    """A group member as a Person: the stakeholder's, else an address in an allowed domain
    with the stakeholder defaults' zone (else the owner's)."""
    s = policy.stakeholder(email)
    if s is not None:
        return policy.person_of(s)
    zone = policy.stakeholder_defaults.timezone or policy.owner.timezone
    return Person(email.lower(), "", zone)
