"""Interval algebra against a model: a set of whole minutes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.core.intervals import (
    Interval,
    clip,
    intersect,
    normalise,
    overlaps_any,
    subtract,
    total,
    union,
)

T0 = datetime(2026, 3, 2, tzinfo=UTC)


def minute(m: int) -> datetime:
    return T0 + timedelta(minutes=m)


def minutes(intervals: list[Interval]) -> set[int]:
    """The model: every whole minute covered (all bounds here are whole minutes)."""
    out: set[int] = set()
    for i in intervals:
        out.update(
            range(
                int((i.start - T0) / timedelta(minutes=1)), int((i.end - T0) / timedelta(minutes=1))
            )
        )
    return out


def is_normalised(intervals: list[Interval]) -> bool:
    return all(i.end > i.start for i in intervals) and all(
        a.end < b.start for a, b in pairwise(intervals)
    )


intervals = st.builds(
    lambda a, n: Interval(minute(a), minute(a + n)), st.integers(0, 300), st.integers(0, 60)
)
raw_lists = st.lists(intervals, max_size=12)
normalised_lists = raw_lists.map(normalise)


@settings(max_examples=150, deadline=None)
@given(raw_lists)
def test_normalise(xs: list[Interval]) -> None:
    got = normalise(xs)
    assert is_normalised(got)
    assert minutes(got) == minutes(xs)
    assert normalise(got) == got
    assert total(got) == timedelta(minutes=len(minutes(xs)))


@settings(max_examples=150, deadline=None)
@given(raw_lists, raw_lists, raw_lists)
def test_union(a: list[Interval], b: list[Interval], c: list[Interval]) -> None:
    got = union(a, b, c)
    assert is_normalised(got)
    assert minutes(got) == minutes(a) | minutes(b) | minutes(c)


@settings(max_examples=150, deadline=None)
@given(normalised_lists, normalised_lists)
def test_intersect(a: list[Interval], b: list[Interval]) -> None:
    got = intersect(a, b)
    assert is_normalised(got)
    assert minutes(got) == minutes(a) & minutes(b)
    assert intersect(b, a) == got


@settings(max_examples=150, deadline=None)
@given(normalised_lists, normalised_lists)
def test_subtract(a: list[Interval], b: list[Interval]) -> None:
    got = subtract(a, b)
    assert is_normalised(got)
    assert minutes(got) == minutes(a) - minutes(b)


@settings(max_examples=150, deadline=None)
@given(normalised_lists, intervals)
def test_clip(a: list[Interval], window: Interval) -> None:
    got = clip(a, window)
    assert is_normalised(got)
    assert minutes(got) == minutes(a) & minutes([window])


@settings(max_examples=150, deadline=None)
@given(normalised_lists, intervals.filter(lambda i: i.end > i.start))
def test_overlaps_any(a: list[Interval], candidate: Interval) -> None:
    expected = bool(minutes(a) & minutes([candidate]))
    assert overlaps_any(candidate, a) is expected
    assert any(candidate.overlaps(i) for i in a) is expected


def test_touching_is_not_overlapping_but_merges() -> None:
    a, b = Interval(minute(0), minute(10)), Interval(minute(10), minute(20))
    assert not a.overlaps(b)
    assert not overlaps_any(b, [a])
    assert normalise([b, a]) == [Interval(minute(0), minute(20))]


def test_interval_validation_and_helpers() -> None:
    with pytest.raises(ValueError, match="aware"):
        Interval(datetime(2026, 3, 2), datetime(2026, 3, 3))
    with pytest.raises(ValueError, match="before start"):
        Interval(minute(10), minute(5))
    i = Interval(minute(10), minute(20))
    assert i.duration == timedelta(minutes=10)
    assert i.padded(timedelta(minutes=5)) == Interval(minute(5), minute(25))
    assert i.padded(timedelta(minutes=5), timedelta(0)) == Interval(minute(5), minute(20))
    assert i.contains(Interval(minute(10), minute(20)))
    assert not i.contains(Interval(minute(9), minute(20)))
    ny = i.to_utc().start.astimezone(ZoneInfo("America/New_York"))
    assert Interval(ny, ny + timedelta(minutes=10)).to_utc() == i
