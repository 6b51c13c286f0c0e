"""The owner's side of the slot finder: :class:`OwnerContext`, built once per plan.

Everything :func:`scheduler.core.slots.find_slots` needs that depends only on the owner
(working hours, buffered busy time and free blocks, preferred and lunch windows, no-meeting days
and blackouts) as *pieces* of allowed time, day by day. When a plan takes a slot the owner's
busy time changes on that day only: :meth:`OwnerContext.build` with ``previous=`` computes the
days whose busy time changed and takes the others over, the same pieces either way. Import
:class:`OwnerContext` from :mod:`scheduler.core.slots`.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from scheduler.core.availability import Span, epoch_days, normalise_spans
from scheduler.core.intervals import Interval
from scheduler.core.model import TimeRange, WeeklyHours
from scheduler.core.spans import (
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

if TYPE_CHECKING:
    from scheduler.core.slots import SlotRules

__all__ = ["OwnerContext", "Piece"]

_MIDNIGHT = time(0)
_ONE_DAY = timedelta(days=1)

# An owner-side piece of allowed time. Fields: start, end, starts must be before this, UTC
# offset (s) of those starts, owner day index, free block start, free block end, block start is a
# meeting edge, block end is a meeting edge, label for the reason. Starts are limited separately
# from the end so that a slot may straddle a DST change while its start keeps one offset.
Piece = tuple[int, int, int, int, int, int, int, bool, bool, str]


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


class _Day:
    """One owner-local day of an :class:`OwnerContext`: its working spans, the busy spans that
    shape it (those overlapping or touching the working spans' hull), and the pieces they give.
    A later build with other busy time takes the day over when these busy spans are the same."""

    __slots__ = ("busy", "dates", "pieces", "preferred", "working")

    def __init__(
        self,
        working: list[Span],
        busy: tuple[Span, ...],
        pieces: list[Piece],
        preferred: list[Piece],
    ) -> None:
        self.working = working
        self.busy = busy
        self.pieces = pieces
        self.preferred = preferred
        #: Owner-local dates slots of these pieces may start on (computed when first asked).
        self.dates: frozenset[date] | None = None


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
    changes (a slot was just taken), build a new one (``previous=`` the old one: the days the
    change did not touch are taken over).
    """

    rules: SlotRules
    owner_hours: WeeklyHours
    owner_busy: tuple[Interval, ...]
    lo: int
    hi: int
    days: tuple[date, ...]
    pieces: tuple[Piece, ...]
    preferred_pieces: tuple[Piece, ...]
    fallback_label: str
    _source_busy: Sequence[Interval] = field(repr=False)
    #: Per entry of ``days``: its :class:`_Day` (None: a no-meeting day or in a blackout).
    _days: tuple[_Day | None, ...] = field(repr=False, default=())

    @classmethod
    def build(
        cls,
        rules: SlotRules,
        *,
        owner_hours: WeeklyHours,
        owner_busy: Sequence[Interval],
        previous: OwnerContext | None = None,
    ) -> OwnerContext:
        """Precompute the owner's allowed time within ``[rules.earliest, rules.latest]``.

        Args:
            rules: Slot rules (the owner's zone, windows, exclusions, buffer).
            owner_hours: The owner's working hours in ``rules.owner_zone``.
            owner_busy: The owner's busy time, UTC intervals (normalised or not).
            previous: A context built with the same ``rules`` and ``owner_hours`` and other
                busy time: each day whose busy time is unchanged is taken from it as it is (the
                same pieces as computing it again); the others are computed.
        """
        tz = ZoneInfo(rules.owner_zone)
        lo = ceil_ts(rules.earliest)
        hi = floor_ts(rules.latest)
        days = epoch_days(rules.owner_zone, lo, hi)
        busy = busy_spans(owner_busy, seconds(rules.buffer))
        ends = [e for _, e in busy]
        starts = [s for s, _ in busy]
        shape = _DayShape(rules, tz, lo, hi, busy, set(starts), set(ends))
        before: tuple[_Day | None, ...] = ()
        if previous is not None and (
            (previous.rules is rules or previous.rules == rules)
            and (previous.owner_hours is owner_hours or previous.owner_hours == owner_hours)
        ):
            before = previous._days
        made: list[_Day | None] = []
        for di, day in enumerate(days):
            if day.weekday() in rules.no_meeting_days or any(day in b for b in rules.blackout):
                made.append(None)
                continue
            old = before[di] if before else None
            if old is not None:
                working = old.working
            else:
                working = normalise_spans(
                    [day_span(day, r, tz) for r in owner_hours.on(day.weekday())]
                )
            near: tuple[Span, ...] = ()
            if working:  # the busy spans overlapping or touching [first start, last end]
                first = bisect.bisect_left(ends, working[0][0])
                near = tuple(busy[first : bisect.bisect_right(starts, working[-1][1], first)])
            if old is not None and old.busy == near:
                made.append(old)
            else:
                made.append(_Day(working, near, *shape.pieces(di, day, working)))
        pieces = [p for d in made if d is not None for p in d.pieces]
        preferred = sorted(p for d in made if d is not None for p in d.preferred)
        return cls(
            rules=rules,
            owner_hours=owner_hours,
            owner_busy=tuple(owner_busy),
            lo=lo,
            hi=hi,
            days=tuple(days),
            pieces=tuple(pieces),
            preferred_pieces=tuple(preferred),
            fallback_label=shape.fallback,
            _source_busy=owner_busy,
            _days=tuple(made),
        )

    def start_dates(self) -> set[date]:
        """Owner-local dates on which a slot could start: every date from that of a piece's
        first start to that of its last possible one, over all pieces."""
        tz = ZoneInfo(self.rules.owner_zone)
        out: set[date] = set()
        for d in self._days:
            if d is None:
                continue
            if d.dates is None:
                dates: set[date] = set()
                for piece in d.pieces:
                    first = datetime.fromtimestamp(piece[0], tz).date()
                    last = datetime.fromtimestamp(piece[2] - 1, tz).date()
                    while first <= last:
                        dates.add(first)
                        first += _ONE_DAY
                d.dates = frozenset(dates)
            out |= d.dates
        return out

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


class _DayShape:
    """What one build computes each day's pieces from (see :meth:`OwnerContext.build`)."""

    def __init__(
        self,
        rules: SlotRules,
        tz: ZoneInfo,
        lo: int,
        hi: int,
        busy: list[Span],
        busy_starts: set[int],
        busy_ends: set[int],
    ) -> None:
        self.rules, self.tz, self.lo, self.hi = rules, tz, lo, hi
        self.busy, self.busy_starts, self.busy_ends = busy, busy_starts, busy_ends
        self.windows = _merged_windows(rules.windows)
        if rules.windows:
            listed = ", ".join(str(w) for w in rules.windows)
            self.fallback = f"within working hours (no preferred window {listed} fitted)"
        else:
            self.fallback = "within working hours"

    def pieces(self, di: int, day: date, working: list[Span]) -> tuple[list[Piece], list[Piece]]:
        """The allowed pieces of owner day ``di`` and those inside a preferred window."""
        rules, tz, fallback = self.rules, self.tz, self.fallback
        pieces: list[Piece] = []
        preferred: list[Piece] = []
        # Free blocks are not clipped to [lo, hi): they describe the calendar's shape.
        blocks = subtract_spans(working, self.busy)
        allowed_mask: list[Span] = [(self.lo, self.hi)]
        if rules.lunch_window is not None:
            allowed_mask = intersect_spans(allowed_mask, [day_span(day, rules.lunch_window, tz)])
        day_windows = [(day_span(day, w, tz), label) for w, label in self.windows]
        # One UTC offset for the whole day unless it has a DST change: saves two zoneinfo
        # look-ups per piece on all other days.
        day_start = math.floor(local_ts(day, _MIDNIGHT, tz))
        day_end = math.floor(local_ts(day + _ONE_DAY, _MIDNIGHT, tz))
        day_off = utc_offset(day_start, tz)
        if utc_offset(day_end - 1, tz) != day_off:
            day_start = day_end  # forces the per-piece split below
        for a, b in blocks:
            a_meet, b_meet = a in self.busy_ends, b in self.busy_starts
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
                            preferred.append((qs, qe, before, off, di, a, b, a_meet, b_meet, label))
        return pieces, preferred
