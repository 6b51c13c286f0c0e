"""Local wall-clock availability (working hours, preferred windows) expanded to UTC intervals.

Working hours and windows are local times plus an IANA zone. Each *local day* is expanded on its
own with :mod:`zoneinfo`, so a local 09:00-17:00 stays 09:00-17:00 on the local clock on both
sides of a DST change (it is 8 h of UTC time either way; only the UTC offset moves).

Gaps and folds. A range end that does not exist on the local clock (it falls in a spring-forward
gap) or exists twice (autumn fold) is resolved with ``fold=0``, Python's default: a time in a gap
is read with the offset in force *before* the gap, which lands it *after* the gap by the gap's
length (London 2026-03-29 01:30 becomes 02:30 BST); a time in a fold is its *first* occurrence.
If resolution makes a range end at or before its start, that day's range is dropped. The output
is then normalised (sorted, merged). Local midnight is resolved the same way, so
:func:`day_interval` tiles the time line without gaps or overlaps.

Alongside the public :class:`~scheduler.core.intervals.Interval` functions,
:func:`working_spans` and :func:`local_spans` return integer epoch seconds;
:mod:`scheduler.core.slots` uses them on its hot path (see ``docs/benchmarks.md``).

>>> from datetime import UTC, datetime, time
>>> from scheduler.core.model import TimeRange, WeeklyHours
>>> hours = WeeklyHours({6: (TimeRange(time(9), time(17)),)})   # Sundays only
>>> window = Interval(datetime(2026, 3, 28, tzinfo=UTC), datetime(2026, 3, 30, tzinfo=UTC))
>>> [f"{i.start:%H:%M}-{i.end:%H:%M}" for i in working_intervals(hours, "Europe/London", window)]
['08:00-16:00']
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Sequence
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from scheduler.core.intervals import Interval, normalise, subtract
from scheduler.core.model import TimeRange, WeeklyHours

__all__ = [
    "Span",
    "day_interval",
    "epoch_days",
    "free_time",
    "local_days",
    "local_ranges",
    "local_spans",
    "normalise_spans",
    "working_intervals",
    "working_spans",
]

#: Integer epoch-second half-open span ``(start, end)``.
Span = tuple[int, int]

_MIDNIGHT = time(0)
_ONE_DAY = timedelta(days=1)
_TICK = timedelta(microseconds=1)


def day_interval(day: date, zone: str) -> Interval:
    """Local midnight to the next local midnight of ``day`` in ``zone``, as a UTC interval.

    Usually 24 h; 23 h or 25 h on DST change days.
    """
    tz = ZoneInfo(zone)
    start = datetime.combine(day, _MIDNIGHT, tzinfo=tz).astimezone(UTC)
    end = datetime.combine(day + _ONE_DAY, _MIDNIGHT, tzinfo=tz).astimezone(UTC)
    return Interval(start, end)


def local_days(zone: str, window: Interval) -> list[date]:
    """The local dates in ``zone`` whose day overlaps ``window`` (in order; empty window: none)."""
    if window.end <= window.start:
        return []
    tz = ZoneInfo(zone)
    first = window.start.astimezone(tz).date()
    last = (window.end - _TICK).astimezone(tz).date()
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def _expand(
    ranges_on: Callable[[date], Sequence[TimeRange]], zone: str, window: Interval
) -> list[Interval]:
    tz = ZoneInfo(zone)
    out: list[Interval] = []
    for day in local_days(zone, window):
        for r in ranges_on(day):
            start = datetime.combine(day, r.start, tzinfo=tz).astimezone(UTC)
            end = datetime.combine(day, r.end, tzinfo=tz).astimezone(UTC)
            start = max(start, window.start)
            end = min(end, window.end)
            if start < end:  # also drops ranges emptied by gap resolution
                out.append(Interval(start, end))
    return normalise(out)


def working_intervals(hours: WeeklyHours, zone: str, window: Interval) -> list[Interval]:
    """Working hours in ``zone`` expanded to normalised UTC intervals clipped to ``window``.

    Args:
        hours: Local working hours per weekday (0 = Monday).
        zone: IANA zone name the hours are read in.
        window: UTC window; every local day overlapping it is expanded.
    """
    return _expand(lambda day: hours.on(day.weekday()), zone, window)


def local_ranges(
    ranges: Sequence[TimeRange],
    zone: str,
    window: Interval,
    *,
    weekdays: Collection[int] | None = None,
) -> list[Interval]:
    """Local ``ranges`` repeated on every day (or only ``weekdays``), as normalised UTC intervals.

    Used for preferred windows and the lunch window; DST handling as for working hours.
    """
    if weekdays is None:
        return _expand(lambda day: ranges, zone, window)
    allowed = frozenset(weekdays)
    return _expand(lambda day: ranges if day.weekday() in allowed else (), zone, window)


def free_time(
    hours: WeeklyHours, zone: str, busy: Sequence[Interval], window: Interval
) -> list[Interval]:
    """Working hours minus busy time within ``window`` (``busy`` normalised, UTC)."""
    return subtract(working_intervals(hours, zone, window), busy)


# --- integer fast path ---------------------------------------------------------------------


def epoch_days(zone: str, lo: int, hi: int) -> list[date]:
    """Local dates in ``zone`` overlapping the epoch-second span ``[lo, hi)``."""
    if hi <= lo:
        return []
    tz = ZoneInfo(zone)
    first = datetime.fromtimestamp(lo, tz).date()
    last = datetime.fromtimestamp(hi - 1, tz).date()
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
# Per weekday: (start second of day rounded up, end second rounded down, start, end).
_DayTable = tuple[tuple[tuple[int, int, time, time], ...], ...]


def _clock_seconds(t: time) -> float:
    seconds = t.hour * 3600 + t.minute * 60 + t.second
    return seconds + t.microsecond / 1e6 if t.microsecond else seconds


def _table(ranges_on: Callable[[int], Sequence[TimeRange]]) -> _DayTable:
    return tuple(
        tuple(
            (math.ceil(_clock_seconds(r.start)), math.floor(_clock_seconds(r.end)), r.start, r.end)
            for r in ranges_on(weekday)
        )
        for weekday in range(7)
    )


def _expand_spans(table: _DayTable, zone: str, lo: int, hi: int) -> list[Span]:
    # UTC second = local wall second - utcoffset(local wall time, fold=0): the same resolution
    # as ``datetime.combine(..., tzinfo=zone)`` in _expand, at a fifth of the cost.
    tz = ZoneInfo(zone)
    utcoffset = tz.utcoffset
    combine = datetime.combine
    out: list[Span] = []
    if hi <= lo:
        return out
    first = datetime.fromtimestamp(lo, tz).toordinal()
    last = datetime.fromtimestamp(hi - 1, tz).toordinal()
    fromordinal = date.fromordinal
    for ordinal in range(first, last + 1):
        day = fromordinal(ordinal)
        base = (ordinal - _EPOCH_ORDINAL) * 86_400
        # date.weekday() is (ordinal - 1) % 7 (0001-01-01 was a Monday): saves a call per day.
        for start_s, end_s, start_t, end_t in table[(ordinal - 1) % 7]:
            off = utcoffset(combine(day, start_t))
            s = base + start_s - (off.days * 86_400 + off.seconds if off is not None else 0)
            off = utcoffset(combine(day, end_t))
            e = base + end_s - (off.days * 86_400 + off.seconds if off is not None else 0)
            s = max(s, lo)
            e = min(e, hi)
            if s < e:
                out.append((s, e))
    return normalise_spans(out)


def normalise_spans(spans: list[Span]) -> list[Span]:
    """Sort and merge overlapping or touching integer spans (drops empty ones)."""
    spans.sort()
    out: list[Span] = []
    for s, e in spans:
        if e <= s:
            continue
        if out and s <= out[-1][1]:
            if e > out[-1][1]:
                out[-1] = (out[-1][0], e)
        else:
            out.append((s, e))
    return out


def working_spans(hours: WeeklyHours, zone: str, lo: int, hi: int) -> list[Span]:
    """:func:`working_intervals` in integer epoch seconds, clipped to ``[lo, hi)``."""
    return _expand_spans(_table(hours.on), zone, lo, hi)


def local_spans(ranges: Sequence[TimeRange], zone: str, lo: int, hi: int) -> list[Span]:
    """:func:`local_ranges` (every day) in integer epoch seconds, clipped to ``[lo, hi)``."""
    return _expand_spans(_table(lambda weekday: ranges), zone, lo, hi)
