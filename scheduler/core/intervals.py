"""Interval algebra on aware UTC datetimes.

An :class:`Interval` is half-open ``[start, end)``. Functions here take and return *normalised*
lists: sorted by start, non-overlapping, non-adjacent (touching intervals are merged). They are
linear sweeps over sorted lists, hand-written because the general-purpose ``portion`` library is
an order of magnitude slower for this workload (see ``bench/``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

__all__ = [
    "Interval",
    "clip",
    "intersect",
    "normalise",
    "overlaps_any",
    "subtract",
    "total",
    "union",
]


@dataclass(frozen=True, slots=True, order=True)
class Interval:
    """Half-open time range ``[start, end)`` with aware datetimes (UTC by convention)."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("Interval needs aware datetimes")
        if self.end < self.start:
            raise ValueError(f"Interval end {self.end} before start {self.start}")

    @property
    def duration(self) -> timedelta:
        return self.end - self.start

    def overlaps(self, other: Interval) -> bool:
        return self.start < other.end and other.start < self.end

    def contains(self, other: Interval) -> bool:
        return self.start <= other.start and other.end <= self.end

    def padded(self, before: timedelta, after: timedelta | None = None) -> Interval:
        return Interval(self.start - before, self.end + (before if after is None else after))

    def to_utc(self) -> Interval:
        return Interval(self.start.astimezone(UTC), self.end.astimezone(UTC))


def normalise(intervals: Iterable[Interval]) -> list[Interval]:
    """Sort, drop empty intervals and merge overlapping or touching ones."""
    items = sorted(i for i in intervals if i.end > i.start)
    out: list[Interval] = []
    for iv in items:
        if out and iv.start <= out[-1].end:
            if iv.end > out[-1].end:
                out[-1] = Interval(out[-1].start, iv.end)
        else:
            out.append(iv)
    return out


def union(*lists: Iterable[Interval]) -> list[Interval]:
    """Union of any number of interval collections, normalised."""
    merged: list[Interval] = []
    for items in lists:
        merged.extend(items)
    return normalise(merged)


def intersect(a: Sequence[Interval], b: Sequence[Interval]) -> list[Interval]:
    """Intersection of two *normalised* lists (two-pointer sweep)."""
    out: list[Interval] = []
    i = j = 0
    while i < len(a) and j < len(b):
        lo = max(a[i].start, b[j].start)
        hi = min(a[i].end, b[j].end)
        if lo < hi:
            out.append(Interval(lo, hi))
        if a[i].end < b[j].end:
            i += 1
        else:
            j += 1
    return out


def subtract(a: Sequence[Interval], b: Sequence[Interval]) -> list[Interval]:
    """``a`` minus ``b``; both *normalised*. Result normalised."""
    out: list[Interval] = []
    j = 0
    for iv in a:
        start = iv.start
        while j < len(b) and b[j].end <= start:
            j += 1
        k = j
        while k < len(b) and b[k].start < iv.end:
            if b[k].start > start:
                out.append(Interval(start, b[k].start))
            start = max(start, b[k].end)
            if start >= iv.end:
                break
            k += 1
        if start < iv.end:
            out.append(Interval(start, iv.end))
    return out


def clip(intervals: Sequence[Interval], window: Interval) -> list[Interval]:
    """The parts of *normalised* ``intervals`` inside ``window``."""
    return intersect(intervals, [window])


def overlaps_any(candidate: Interval, intervals: Sequence[Interval]) -> bool:
    """Whether ``candidate`` overlaps any interval of a *normalised* list (binary search)."""
    lo, hi = 0, len(intervals)
    while lo < hi:
        mid = (lo + hi) // 2
        if intervals[mid].end <= candidate.start:
            lo = mid + 1
        else:
            hi = mid
    return lo < len(intervals) and intervals[lo].start < candidate.end


def total(intervals: Iterable[Interval]) -> timedelta:
    """Summed duration."""
    return sum((i.duration for i in intervals), timedelta())
