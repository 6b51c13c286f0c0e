"""Finding mutually free slots for a one-to-one between the owner and one other person.

A *candidate* is a start time ``s`` (slot ``[s, s + duration)``) such that:

* it lies inside the owner's working hours in the owner's zone **and** inside the other person's
  working hours in theirs (each expanded per local day, see :mod:`scheduler.core.availability`);
* ``rules.earliest <= s`` and ``s + duration <= rules.latest`` (notice and horizon);
* its owner-local date (of ``s``) is not a no-meeting weekday and not in a blackout range, and
  the slot does not cross owner-local midnight;
* with ``rules.lunch_window`` set, it lies inside that window on the owner's clock **and** on the
  other person's clock;
* the owner's busy time padded by ``rules.buffer`` on both sides does not overlap it, nor does
  the other person's (unpadded) busy time;
* ``s`` is on the grid: the owner's *local* wall-clock time is a whole multiple of ``rules.grid``
  after local midnight (09:00, 09:15, … for the default 15 minutes). Grid steps follow the owner's
  clock, not UTC: for an owner in a :30/:45 zone (Asia/Kolkata, Australia/Adelaide) and a 30 or
  60 minute grid, slots start at local 10:00, i.e. 04:30 UTC. Every IANA offset in use is a
  multiple of 15 minutes, so with the default grid local and UTC quarter hours coincide. On a
  DST change day the grid follows the clock in force at each start; a slot may straddle the
  change if working hours cover it (00:45-01:15 UTC on London's spring-forward night is 30 real
  minutes, 00:45 GMT to 02:15 BST on the wall clock).

Preferred windows. If ``rules.windows`` is non-empty and any candidate lies inside one of them
(on the owner's clock), only those are returned, with ``preferred=True``; otherwise all
candidates come back with ``preferred=False`` and a reason saying no preferred window fitted.
Without windows every candidate is preferred ("within working hours").

Scoring (deterministic; higher is better; results sorted by ``(-score, start)``)::

    score = 100 · preferred
          −  10 · day_load[owner-local date]      # spread coffees over days
          +   5 · compactness                     # don't cut a long free block in two
          +   1 · touches_meeting                 # sits right after/before a meeting's buffer

where, for the owner's free block ``[a, b)`` (working hours minus buffered busy time, that day)
holding the slot, ``left = s - a`` and ``right = b - (s + duration)``::

    compactness = max(left, right) / (left + right)     (1.0 when left + right == 0)

i.e. the share of the block's remaining free time that stays in one piece: 1.0 at either edge,
0.5 dead in the middle. ``touches_meeting`` is 1 when ``a`` is the buffered end of an owner
event and the slot is the first grid point after it (``left < grid``), or ``b`` is the buffered
start of one and the slot is the last grid point before it (``right < grid``): with a 10 minute
buffer and a 15 minute grid a slot can never start exactly at the buffer edge, so "touching"
means "as close as the grid allows". Earlier start breaks ties. One more coffee on a day (−10)
outweighs any shape difference (at most 6), so a less loaded day wins whenever it has a slot.

Performance. Everything is done on sorted lists of integer epoch-second spans with linear
sweeps; no per-minute loops. Owner-side work (working hours, buffered busy time, free blocks,
windows, exclusions) depends only on the owner, so :class:`OwnerContext` lets a planner do it
once and reuse it for every stakeholder; :func:`find_slots` builds one itself when none is given.
After a slot is taken only its day changes: a context built from the previous one
(:mod:`scheduler.core.slot_context`) computes that day again and takes the others over.
Candidates are scored as tuples and only the ``limit`` best are turned into :class:`Candidate`
objects. Measured numbers: ``docs/benchmarks.md``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from scheduler.core.availability import (
    Span,
    local_spans,
    working_spans,
)
from scheduler.core.intervals import Interval
from scheduler.core.model import DateRange, TimeRange, WeeklyHours
from scheduler.core.slot_context import OwnerContext, Piece
from scheduler.core.spans import (
    DAY,
    busy_spans,
    ceil_ts,
    floor_ts,
    intersect_spans,
    seconds,
    subtract_spans,
)

__all__ = ["Candidate", "OwnerContext", "SlotRules", "find_slots"]

_WEEKDAY_ABBR = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")

# Score weights (see the module docstring).
_W_PREFERRED = 100.0
_W_DAY_LOAD = 10.0
_W_COMPACT = 5.0
_W_ADJACENT = 1.0

# A scored candidate before materialisation: (-score, start, offset, label).
_Scored = tuple[float, int, int, str]


@dataclass(frozen=True)
class SlotRules:
    """What a slot must satisfy. Local notions are read in ``owner_zone``.

    Attributes:
        duration: Meeting length.
        earliest: Aware datetime; no slot starts before it (now + minimum notice).
        latest: Aware datetime; no slot ends after it (now + horizon).
        owner_zone: IANA zone of the owner.
        windows: Preferred local time ranges of the owner (every day).
        lunch_window: If set, the slot must lie inside it in the owner's zone and in the other
            person's zone.
        no_meeting_days: Owner-local weekdays (0 = Monday) without slots.
        blackout: Owner-local date ranges without slots.
        buffer: Free time kept before and after the owner's existing events.
        grid: Slot starts are multiples of this after owner-local midnight.
    """

    duration: timedelta
    earliest: datetime
    latest: datetime
    owner_zone: str
    windows: tuple[TimeRange, ...] = ()
    lunch_window: TimeRange | None = None
    no_meeting_days: frozenset[int] = frozenset()
    blackout: tuple[DateRange, ...] = ()
    buffer: timedelta = timedelta(0)
    grid: timedelta = timedelta(minutes=15)

    def __post_init__(self) -> None:
        if self.duration <= timedelta(0):
            raise ValueError(f"slot duration must be positive, got {self.duration}")
        if self.grid <= timedelta(0):
            raise ValueError(f"slot grid must be positive, got {self.grid}")
        if self.buffer < timedelta(0):
            raise ValueError(f"buffer must not be negative, got {self.buffer}")
        if self.earliest.tzinfo is None or self.latest.tzinfo is None:
            raise ValueError("earliest and latest must be aware datetimes")


@dataclass(frozen=True)
class Candidate:
    """A proposed slot ``[start, end)`` in UTC, with why it was chosen."""

    start: datetime
    end: datetime
    preferred: bool
    score: float
    reason: str

    @property
    def interval(self) -> Interval:
        return Interval(self.start, self.end)

    def local_day(self, zone: str) -> date:
        """The date of ``start`` on the local clock of ``zone``."""
        return self.start.astimezone(ZoneInfo(zone)).date()


def _enumerate(
    pieces: Sequence[Piece],
    other: Sequence[Span],
    duration: int,
    grid: int,
    loads: Sequence[int] | None,
    base: float,
) -> list[_Scored]:
    """Grid starts inside ``pieces`` ∩ ``other``, scored. Both lists sorted by start."""
    out: list[_Scored] = []
    j = 0
    n = len(other)
    for ps, pe, before, off, di, a, b, a_meet, b_meet, label in pieces:
        while j < n and other[j][1] <= ps:
            j += 1
        day_score = base - (_W_DAY_LOAD * loads[di] if loads is not None else 0.0)
        k = j
        while k < n and other[k][0] < pe:
            os_, oe = other[k]
            k += 1
            lo = ps if ps > os_ else os_
            hi = pe if pe < oe else oe
            last = hi - duration
            if last >= before:
                last = before - 1
            if last < lo:
                continue
            # Align on the owner's local clock: the offset is constant for a piece's starts.
            local = lo + off
            midnight = local - local % DAY
            first = midnight - (-(local - midnight) // grid) * grid - off
            for s in range(first, last + 1, grid):
                left = s - a
                right = b - s - duration
                rest = left + right
                compact = (left if left > right else right) / rest if rest else 1.0
                score = day_score + _W_COMPACT * compact
                if (left < grid and a_meet) or (right < grid and b_meet):
                    score += _W_ADJACENT
                out.append((-score, s, off, label))
    return out


def _describe(start: int, off: int, zone: str, label: str) -> str:
    local = start + off
    weekday = _WEEKDAY_ABBR[(local // DAY + 3) % 7]  # 1970-01-01 was a Thursday
    minutes = local % DAY // 60
    return f"{weekday} {minutes // 60:02d}:{minutes % 60:02d} {zone}, {label}"


def find_slots(
    rules: SlotRules,
    *,
    owner_hours: WeeklyHours,
    other_hours: WeeklyHours,
    other_zone: str,
    owner_busy: Sequence[Interval],
    other_busy: Sequence[Interval],
    day_load: Mapping[date, int] | None = None,
    limit: int | None = None,
    context: OwnerContext | None = None,
) -> list[Candidate]:
    """Candidate slots for a one-to-one, best first (see the module docstring for the rules).

    Args:
        rules: Duration, notice/horizon bounds, windows, exclusions, buffer, grid.
        owner_hours: The owner's working hours in ``rules.owner_zone``.
        other_hours: The other person's working hours in ``other_zone``.
        other_zone: IANA zone of the other person.
        owner_busy: The owner's busy time (UTC intervals, e.g. from ``apply_busy_rules``).
        other_busy: The other person's busy time.
        day_load: goodwill meetings already planned per owner-local date (spreads bookings).
        limit: Return at most this many candidates (all when ``None``).
        context: Owner-side precomputation from :meth:`OwnerContext.build` for these inputs.

    Returns:
        Candidates sorted by ``(-score, start)``; same inputs give the same output.

    Raises:
        ValueError: ``context`` was built from different owner inputs.
    """
    if context is None:
        context = OwnerContext.build(rules, owner_hours=owner_hours, owner_busy=owner_busy)
    elif not context.matches(rules, owner_hours, owner_busy):
        raise ValueError("OwnerContext was built for different rules, owner hours or busy time")
    if limit is not None and limit <= 0:
        return []
    # The context may cover a wider window; the other person's spans are clipped to this call's
    # bounds, and every candidate lies inside them, so the owner's pieces need no clipping.
    lo, hi = max(context.lo, ceil_ts(rules.earliest)), min(context.hi, floor_ts(rules.latest))
    duration = seconds(rules.duration)
    grid = seconds(rules.grid)
    if hi - lo < duration or not context.pieces:
        return []
    free = working_spans(other_hours, other_zone, lo, hi)
    if rules.lunch_window is not None:
        free = intersect_spans(free, local_spans((rules.lunch_window,), other_zone, lo, hi))
    free = subtract_spans(free, busy_spans(other_busy))
    loads = [day_load.get(d, 0) for d in context.days] if day_load else None

    preferred = True
    scored: list[_Scored] = []
    if rules.windows:
        scored = _enumerate(context.preferred_pieces, free, duration, grid, loads, _W_PREFERRED)
    if not scored:
        preferred = not rules.windows
        base = _W_PREFERRED if preferred else 0.0
        scored = _enumerate(context.pieces, free, duration, grid, loads, base)
    scored.sort()
    if limit is not None:
        del scored[limit:]
    zone = rules.owner_zone
    span = timedelta(seconds=duration)
    out: list[Candidate] = []
    for neg, s, off, label in scored:
        start = datetime.fromtimestamp(s, UTC)
        out.append(Candidate(start, start + span, preferred, -neg, _describe(s, off, zone, label)))
    return out
