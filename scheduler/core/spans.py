"""Integer epoch-second spans: the slot finder's hot-path arithmetic (sorted, half-open).

:mod:`scheduler.core.slots` works on ``(start, end)`` pairs of whole seconds instead of
datetimes; these helpers convert and combine them. Busy time grows to whole seconds (never
under-reported); working time shrinks to whole seconds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from scheduler.core.availability import Span, normalise_spans
from scheduler.core.intervals import Interval
from scheduler.core.model import TimeRange

__all__ = [
    "DAY",
    "EPOCH_ORDINAL",
    "busy_spans",
    "ceil_ts",
    "day_span",
    "floor_ts",
    "intersect_spans",
    "local_ts",
    "seconds",
    "split_at_offset_changes",
    "subtract_spans",
    "utc_offset",
]

DAY = 86_400
EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


def seconds(delta: timedelta) -> int:
    return math.ceil(delta.total_seconds())


def floor_ts(moment: datetime) -> int:
    return math.floor(moment.timestamp())


def ceil_ts(moment: datetime) -> int:
    return math.ceil(moment.timestamp())


def subtract_spans(a: Sequence[Span], b: Sequence[Span]) -> list[Span]:
    """``a`` minus ``b`` for sorted, non-overlapping integer spans."""
    out: list[Span] = []
    j = 0
    nb = len(b)
    for s, e in a:
        while j < nb and b[j][1] <= s:
            j += 1
        k = j
        while k < nb and b[k][0] < e:
            bs, be = b[k]
            if bs > s:
                out.append((s, bs))
            if be > s:
                s = be
            if s >= e:
                break
            k += 1
        if s < e:
            out.append((s, e))
    return out


def intersect_spans(a: Sequence[Span], b: Sequence[Span]) -> list[Span]:
    """Intersection of sorted, non-overlapping integer spans (two-pointer sweep)."""
    out: list[Span] = []
    i = j = 0
    na, nb = len(a), len(b)
    while i < na and j < nb:
        a_s, a_e = a[i]
        b_s, b_e = b[j]
        lo = a_s if a_s > b_s else b_s
        hi = a_e if a_e < b_e else b_e
        if lo < hi:
            out.append((lo, hi))
        if a_e < b_e:
            i += 1
        else:
            j += 1
    return out


def busy_spans(busy: Sequence[Interval], pad: int = 0) -> list[Span]:
    """Integer spans of ``busy`` grown by ``pad`` s each side, merged.

    Busy time grows to whole seconds (floor start, ceil end): it is never under-reported. Sorted
    input (the normal case: ``apply_busy_rules`` output) is merged in the same pass.
    """
    out: list[Span] = []
    floor, ceil = math.floor, math.ceil
    last_s = last_e = -(2**62)
    for iv in busy:
        s = floor(iv.start.timestamp()) - pad
        e = ceil(iv.end.timestamp()) + pad
        if s < last_s:  # unsorted input: fall back to a full sort
            return normalise_spans(
                [(floor(i.start.timestamp()) - pad, ceil(i.end.timestamp()) + pad) for i in busy]
            )
        last_s = s
        if s <= last_e:
            if e > last_e:
                last_e = e
                out[-1] = (out[-1][0], e)
        elif s < e:
            out.append((s, e))
            last_e = e
    return out


def split_at_offset_changes(s: int, e: int, tz: ZoneInfo) -> list[tuple[int, int, int]]:
    """Split ``[s, e)`` where the UTC offset of ``tz`` changes; yields ``(start, end, offset)``."""
    out: list[tuple[int, int, int]] = []
    while s < e:
        off = utc_offset(s, tz)
        if utc_offset(e - 1, tz) == off:
            out.append((s, e, off))
            break
        lo, hi = s, e - 1  # offset(lo) == off, offset(hi) != off
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if utc_offset(mid, tz) == off:
                lo = mid
            else:
                hi = mid
        out.append((s, hi, off))
        s = hi
    return out


def utc_offset(ts: int, tz: ZoneInfo) -> int:
    delta = datetime.fromtimestamp(ts, tz).utcoffset()
    return int(delta.total_seconds()) if delta is not None else 0


EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


def local_ts(day: date, clock: time, tz: ZoneInfo) -> float:
    """Epoch seconds of ``clock`` on local ``day`` in ``tz``, resolved with ``fold=0``.

    Same result as ``datetime.combine(day, clock, tzinfo=tz).timestamp()``, about 4x cheaper.
    """
    off = tz.utcoffset(datetime.combine(day, clock))
    seconds = clock.hour * 3600 + clock.minute * 60 + clock.second + clock.microsecond / 1e6
    shift = off.total_seconds() if off is not None else 0.0
    return (day.toordinal() - EPOCH_ORDINAL) * DAY + seconds - shift


def day_span(day: date, r: TimeRange, tz: ZoneInfo) -> Span:
    return (math.ceil(local_ts(day, r.start, tz)), math.floor(local_ts(day, r.end, tz)))
