"""The attendees' side of a group slot, for :mod:`scheduler.core.groups`. Pure.

The owner's side of a slot is :func:`scheduler.core.slots.find_slots`, the one slot finder;
this module gives what it cannot: each attendee's own hours and free time (their zone, each
local day expanded on its own by :mod:`scheduler.core.availability`, so DST-correct), and the
spans where at least ``k`` of them are free at once (the "other person" handed to
``find_slots`` as the complement of those spans). Times are integer epoch seconds.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from scheduler.core.availability import Span, local_spans, working_spans
from scheduler.core.busy import apply_busy_rules
from scheduler.core.group_members import MemberLoad, capped_spans, full_weeks
from scheduler.core.intervals import Interval, normalise
from scheduler.core.model import BusyResult
from scheduler.core.policy import Policy
from scheduler.core.slots import Candidate
from scheduler.core.spans import busy_spans, intersect_spans, subtract_spans

__all__ = [
    "Attendee",
    "OwnerState",
    "as_intervals",
    "attendee_time",
    "ceil_to_grid",
    "covered",
    "covers",
    "department",
    "share",
    "weeks_text",
]


@dataclass(frozen=True, slots=True)
class Attendee:
    email: str
    department: str | None
    work: list[Span]  # own working hours (∩ own lunch window for a lunch), capped weeks out
    free: list[Span]  # work minus busy time (after the owner's busy rules)
    #: Weeks in which they already have the most goodwill meetings other owners may give.
    capped: list[Span] = field(default_factory=list)
    #: Weeks in which they already have ``etiquette.max_per_stakeholder_per_week`` of this
    #: owner's meetings (their own ISO weeks).
    own_capped: list[Span] = field(default_factory=list)


@dataclass
class OwnerState:
    """The owner's time and caps while groups are placed, updated as slots are taken."""

    busy: list[Interval]
    day_load: Counter[date]
    week_load: Counter[tuple[int, int]]
    zone: ZoneInfo
    #: lower-cased e-mail -> starts of the owner's meetings with them (open, held, proposed
    #: this round), for ``etiquette.max_per_stakeholder_per_week``.
    met: dict[str, list[datetime]] = field(default_factory=dict)

    def fits(self, c: Candidate, max_per_day: int, max_per_week: int) -> bool:
        """Whether one more meeting on ``c``'s owner-local day and week stays within the caps."""
        day = c.start.astimezone(self.zone).date()
        return (
            self.day_load[day] < max_per_day
            and self.week_load[day.isocalendar()[:2]] < max_per_week
        )

    def take(self, c: Candidate, attendees: Sequence[str] = ()) -> None:
        """A group meeting counts once towards the caps and blocks the owner's time; it counts
        for each attendee's own week."""
        for email in attendees:
            self.met.setdefault(email, []).append(c.start)
        day = c.start.astimezone(self.zone).date()
        self.day_load[day] += 1
        self.week_load[day.isocalendar()[:2]] += 1
        self.busy = normalise([*self.busy, c.interval])


def department(policy: Policy, email: str) -> str | None:
    """A member's department (case-insensitive), None when not a stakeholder or not given."""
    s = policy.stakeholder(email)
    return s.department.strip().lower() if s is not None and s.department else None


def attendee_time(
    policy: Policy,
    email: str,
    busy: BusyResult,
    lunch: bool,
    lo: int,
    hi: int,
    load: MemberLoad | None = None,
    met: Sequence[datetime] = (),
    own_cap: int = 1,
) -> Attendee:
    """A member's own hours and free time within ``[lo, hi)``, without the weeks in which they
    are at the service-wide weekly cap (``load``; :func:`~scheduler.core.group_members.
    capped_spans`), nor those in which they already have ``own_cap`` of the owner's meetings
    (``met``: their starts).

    Zone and hours: the stakeholder's, else ``stakeholder_defaults``, else the owner's; the
    provider's working hours (``busy.working_hours``) when the policy gives none. A lunch must
    also lie in the lunch window on the member's own clock, as for a one-to-one.
    """
    av = policy.availability
    s = policy.stakeholder(email)
    defaults = policy.stakeholder_defaults
    if s is not None:
        zone, hours = policy.person_of(s).timezone, policy.hours_of(s)
        explicit = policy.hours_explicit(s)
    else:
        zone = defaults.timezone or policy.owner.timezone
        hours = defaults.working_hours or av.working_hours
        explicit = defaults.working_hours is not None
    provided = {k.lower(): v for k, v in busy.working_hours.items()}
    if not explicit and email in provided:
        zone, hours = provided[email]
    work = working_spans(hours, zone, lo, hi)
    if lunch:
        work = intersect_spans(work, local_spans((av.lunch_window,), zone, lo, hi))
    capped = capped_spans(load, email, zone)
    own_capped = full_weeks(met, own_cap, zone)
    work = subtract_spans(subtract_spans(work, capped), own_capped)
    blocks = {k.lower(): v for k, v in busy.blocks.items()}.get(email, [])
    free = subtract_spans(work, busy_spans(apply_busy_rules(blocks, av.busy)))
    return Attendee(email, department(policy, email), work, free, capped, own_capped)


def share(quorum: float, n: int) -> int:
    """``ceil(quorum × n)``, immune to float noise (0.6 × 5 is 3, not 4)."""
    return math.ceil(round(quorum * n, 9))


def covered(spans: Sequence[Sequence[Span]], k: int) -> list[Span]:
    """Where at least ``k`` of the (sorted, merged) span lists overlap, sorted and merged."""
    edges = sorted(
        [(s, 1) for one in spans for s, _ in one] + [(e, -1) for one in spans for _, e in one]
    )
    out: list[Span] = []
    count, start = 0, 0
    for at, step in edges:
        before = count
        count += step
        if before < k <= count:
            start = at
        elif count < k <= before and at > start:
            if out and out[-1][1] == start:
                out[-1] = (out[-1][0], at)
            else:
                out.append((start, at))
    return out


def covers(spans: Sequence[Span], s: int, e: int) -> bool:
    """Whether one span of the sorted, merged ``spans`` holds ``[s, e)``."""
    i = bisect_right(spans, s, key=lambda span: span[0]) - 1
    return i >= 0 and spans[i][0] <= s and e <= spans[i][1]


def as_intervals(spans: Sequence[Span]) -> list[Interval]:
    return [
        Interval(datetime.fromtimestamp(s, UTC), datetime.fromtimestamp(e, UTC)) for s, e in spans
    ]


#: The grid group slots start on.
GRID = timedelta(minutes=15)


def ceil_to_grid(moment: datetime) -> datetime:
    epoch = datetime(1970, 1, 1, tzinfo=moment.tzinfo)
    return epoch - ((epoch - moment) // GRID) * GRID


def weeks_text(every: timedelta) -> str:
    """``4w`` (or ``10d`` when not whole weeks)."""
    return f"{every.days // 7}w" if every.days % 7 == 0 and every.days else f"{every.days}d"
