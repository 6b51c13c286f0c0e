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
Candidates are scored as tuples and only the ``limit`` best are turned into :class:`Candidate`
objects. Measured numbers: ``docs/benchmarks.md``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from scheduler.core.availability import (
    Span,
    epoch_days,
    local_spans,
    normalise_spans,
    working_spans,
)
from scheduler.core.intervals import Interval
from scheduler.core.model import DateRange, TimeRange, WeeklyHours
from scheduler.core.spans import (
    DAY,
    busy_spans,
    ceil_ts,
    day_span,
    floor_ts,
    intersect_spans,
    local_ts,
    seconds,
    split_at_offset_changes,
    subtract_spans,
    utc_offset,
)

__all__ = ["Candidate", "OwnerContext", "SlotRules", "find_slots"]

_WEEKDAY_ABBR = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MIDNIGHT = time(0)
_ONE_DAY = timedelta(days=1)

# Score weights (see the module docstring).
_W_PREFERRED = 100.0
_W_DAY_LOAD = 10.0
_W_COMPACT = 5.0
_W_ADJACENT = 1.0

# An owner-side piece of allowed time. Fields: start, end, starts must be before this, UTC
# offset (s) of those starts, owner day index, free block start, free block end, block start is a
# meeting edge, block end is a meeting edge, label for the reason. Starts are limited separately
# from the end so that a slot may straddle a DST change while its start keeps one offset.
_Piece = tuple[int, int, int, int, int, int, int, bool, bool, str]
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


def _merged_windows(windows: Sequence[TimeRange]) -> list[tuple[TimeRange, str]]:
    """Overlapping/touching preferred windows merged on the clock, each with its reason text."""
    groups: list[list[TimeRange]] = []
    for w in sorted(windows):
        if groups and w.start <= max(g.end for g in groups[-1]):
            groups[-1].append(w)
        else:
            groups.append([w])
    out: list[tuple[TimeRange, str]] = []
    for g in groups:
        merged = TimeRange(g[0].start, max(x.end for x in g))
        names = ", ".join(str(x) for x in g)
        label = f"in your preferred window{'s' if len(g) > 1 else ''} {names}"
        out.append((merged, label))
    return out


@dataclass(frozen=True, eq=False)
class OwnerContext:
    """Owner-side precomputation for :func:`find_slots`, reusable across stakeholders.

    Build it once per plan with :meth:`build` over the whole planning window and pass it as
    ``context=``. It holds everything that depends only on the owner: working hours, buffered
    busy time and free blocks, preferred and lunch windows, no-meeting days and blackouts.

    A context serves any call whose owner inputs are the same (``owner_hours``, ``owner_busy``
    and the owner-side rule fields ``owner_zone``, ``windows``, ``lunch_window``,
    ``no_meeting_days``, ``blackout``, ``buffer``) and whose ``[earliest, latest]`` lies inside
    the one it was built with; ``duration``, ``grid`` and the bounds may differ per stakeholder.
    ``find_slots`` checks this and raises ``ValueError`` otherwise. When the owner's busy time
    changes (a slot was just taken), build a new one.
    """

    rules: SlotRules
    owner_hours: WeeklyHours
    owner_busy: tuple[Interval, ...]
    lo: int
    hi: int
    days: tuple[date, ...]
    pieces: tuple[_Piece, ...]
    preferred_pieces: tuple[_Piece, ...]
    fallback_label: str
    _source_busy: Sequence[Interval] = field(repr=False)

    @classmethod
    def build(
        cls, rules: SlotRules, *, owner_hours: WeeklyHours, owner_busy: Sequence[Interval]
    ) -> OwnerContext:
        """Precompute the owner's allowed time within ``[rules.earliest, rules.latest]``.

        Args:
            rules: Slot rules (the owner's zone, windows, exclusions, buffer).
            owner_hours: The owner's working hours in ``rules.owner_zone``.
            owner_busy: The owner's busy time, UTC intervals (normalised or not).
        """
        tz = ZoneInfo(rules.owner_zone)
        lo = ceil_ts(rules.earliest)
        hi = floor_ts(rules.latest)
        days = epoch_days(rules.owner_zone, lo, hi)
        busy = busy_spans(owner_busy, seconds(rules.buffer))
        busy_starts = {s for s, _ in busy}
        busy_ends = {e for _, e in busy}
        windows = _merged_windows(rules.windows)
        if rules.windows:
            listed = ", ".join(str(w) for w in rules.windows)
            fallback = f"within working hours (no preferred window {listed} fitted)"
        else:
            fallback = "within working hours"
        pieces: list[_Piece] = []
        preferred: list[_Piece] = []
        for di, day in enumerate(days):
            if day.weekday() in rules.no_meeting_days or any(day in b for b in rules.blackout):
                continue
            working = normalise_spans([day_span(day, r, tz) for r in owner_hours.on(day.weekday())])
            # Free blocks are not clipped to [lo, hi): they describe the calendar's shape.
            blocks = subtract_spans(working, busy)
            allowed_mask: list[Span] = [(lo, hi)]
            if rules.lunch_window is not None:
                allowed_mask = intersect_spans(
                    allowed_mask, [day_span(day, rules.lunch_window, tz)]
                )
            day_windows = [(day_span(day, w, tz), label) for w, label in windows]
            # One UTC offset for the whole day unless it has a DST change: saves two zoneinfo
            # look-ups per piece on all other days.
            day_start = math.floor(local_ts(day, _MIDNIGHT, tz))
            day_end = math.floor(local_ts(day + _ONE_DAY, _MIDNIGHT, tz))
            day_off = utc_offset(day_start, tz)
            if utc_offset(day_end - 1, tz) != day_off:
                day_start = day_end  # forces the per-piece split below
            for a, b in blocks:
                a_meet, b_meet = a in busy_ends, b in busy_starts
                for s, e in intersect_spans([(a, b)], allowed_mask):
                    if day_start <= s and e <= day_end:
                        splits = [(s, e, day_off)]
                    else:
                        splits = split_at_offset_changes(s, e, tz)
                    for ps, before, off in splits:
                        pieces.append((ps, e, before, off, di, a, b, a_meet, b_meet, fallback))
                        for (ws, we), label in day_windows:
                            qs, qe = max(ps, ws), min(e, we)
                            if qs < min(before, qe):
                                preferred.append(
                                    (qs, qe, before, off, di, a, b, a_meet, b_meet, label)
                                )
        preferred.sort()
        return cls(
            rules=rules,
            owner_hours=owner_hours,
            owner_busy=tuple(owner_busy),
            lo=lo,
            hi=hi,
            days=tuple(days),
            pieces=tuple(pieces),
            preferred_pieces=tuple(preferred),
            fallback_label=fallback,
            _source_busy=owner_busy,
        )

    def matches(
        self, rules: SlotRules, owner_hours: WeeklyHours, owner_busy: Sequence[Interval]
    ) -> bool:
        """Whether this context can serve a call with these inputs (see the class docstring)."""
        r = self.rules
        return (
            (
                r is rules
                or (
                    r.owner_zone == rules.owner_zone
                    and r.windows == rules.windows
                    and r.lunch_window == rules.lunch_window
                    and r.no_meeting_days == rules.no_meeting_days
                    and r.blackout == rules.blackout
                    and r.buffer == rules.buffer
                    and self.lo <= ceil_ts(rules.earliest)
                    and floor_ts(rules.latest) <= self.hi
                )
            )
            and (self.owner_hours is owner_hours or self.owner_hours == owner_hours)
            and (self._source_busy is owner_busy or self.owner_busy == tuple(owner_busy))
        )


def _enumerate(
    pieces: Sequence[_Piece],
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
