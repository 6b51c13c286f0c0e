"""Working hours and local windows expanded to UTC, across DST changes and odd offsets."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.core.availability import (
    day_interval,
    free_time,
    local_days,
    local_ranges,
    local_spans,
    working_intervals,
    working_spans,
)
from scheduler.core.intervals import Interval
from scheduler.core.model import TimeRange, WeeklyHours


def tr(a: str, b: str) -> TimeRange:
    return TimeRange(time.fromisoformat(a), time.fromisoformat(b))


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def window(first: date, last: date) -> Interval:
    """UTC window from 00:00 UTC of ``first`` to 00:00 UTC after ``last``."""
    return Interval(
        datetime.combine(first, time(0), UTC), datetime.combine(last, time(0), UTC) + timedelta(1)
    )


NINE_TO_FIVE = WeeklyHours({d: (tr("09:00", "17:00"),) for d in range(7)})


@pytest.mark.parametrize(
    ("zone", "change_day"),
    [
        ("Europe/London", date(2026, 3, 29)),
        ("Europe/London", date(2026, 10, 25)),
        ("America/New_York", date(2026, 3, 8)),
        ("America/New_York", date(2026, 11, 1)),
        ("Australia/Sydney", date(2026, 4, 5)),
        ("Australia/Sydney", date(2026, 10, 4)),
        ("Australia/Adelaide", date(2026, 4, 5)),
    ],
)
def test_nine_to_five_stays_nine_to_five_on_the_local_clock_across_dst(
    zone: str, change_day: date
) -> None:
    tz = ZoneInfo(zone)
    days = (change_day - timedelta(1), change_day, change_day + timedelta(1))
    # A wide UTC window; only the three local days around the change are inspected.
    got = working_intervals(
        NINE_TO_FIVE, zone, window(change_day - timedelta(3), change_day + timedelta(3))
    )
    by_day = {i.start.astimezone(tz).date(): i for i in got}
    for d in days:
        iv = by_day[d]
        assert (f"{iv.start.astimezone(tz):%H:%M}", f"{iv.end.astimezone(tz):%H:%M}") == (
            "09:00",
            "17:00",
        )
        assert iv.end.astimezone(tz).date() == d
        assert iv.duration == timedelta(hours=8)
    # ... while the UTC times move by the offset change (which is what DST means).
    before, after = by_day[days[0]], by_day[days[2]]
    shift = before.start.astimezone(tz).utcoffset() - after.start.astimezone(tz).utcoffset()  # type: ignore[operator]
    assert shift != timedelta(0)
    assert after.start - before.start == timedelta(days=2) + shift


def test_london_spring_forward_in_utc() -> None:
    got = working_intervals(
        WeeklyHours({4: (tr("09:00", "17:00"),), 0: (tr("09:00", "17:00"),)}),
        "Europe/London",
        window(date(2026, 3, 27), date(2026, 3, 30)),
    )
    assert got == [
        Interval(utc(2026, 3, 27, 9), utc(2026, 3, 27, 17)),  # Friday, GMT
        Interval(utc(2026, 3, 30, 8), utc(2026, 3, 30, 16)),  # Monday, BST
    ]


def test_half_hour_zone() -> None:
    got = working_intervals(
        NINE_TO_FIVE, "Asia/Kolkata", window(date(2026, 6, 1), date(2026, 6, 1))
    )
    # 2026-06-01 09:00 IST = 03:30 UTC; the local day of 2026-06-02 starts at 18:30 UTC on the
    # 1st, so only the 1st's hours fall in the window.
    assert got == [Interval(utc(2026, 6, 1, 3, 30), utc(2026, 6, 1, 11, 30))]


def test_gap_is_resolved_with_fold_0() -> None:
    sunday = date(2026, 3, 29)  # London: 01:00 GMT jumps to 02:00 BST
    w = window(sunday, sunday)
    # Start 01:30 does not exist: fold=0 reads it as GMT, i.e. 01:30 UTC (= 02:30 BST).
    assert local_ranges([tr("01:30", "03:00")], "Europe/London", w) == [
        Interval(utc(2026, 3, 29, 1, 30), utc(2026, 3, 29, 2))
    ]
    # Both ends in the gap: shifted together, still 30 minutes.
    assert local_ranges([tr("01:15", "01:45")], "Europe/London", w) == [
        Interval(utc(2026, 3, 29, 1, 15), utc(2026, 3, 29, 1, 45))
    ]
    # Resolution makes it end before it starts (01:30 -> 01:30 UTC, 02:15 BST = 01:15 UTC): dropped.
    assert local_ranges([tr("01:30", "02:15")], "Europe/London", w) == []


def test_fold_uses_the_first_occurrence() -> None:
    sunday = date(2026, 10, 25)  # London: 02:00 BST falls back to 01:00 GMT
    got = local_ranges([tr("01:30", "03:00")], "Europe/London", window(sunday, sunday))
    assert got == [Interval(utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 3))]  # 2.5 h long


def test_clipped_to_window_and_normalised() -> None:
    hours = WeeklyHours({0: (tr("09:00", "12:00"), tr("11:00", "14:00"), tr("14:00", "15:00"))})
    w = Interval(utc(2026, 3, 2, 10), utc(2026, 3, 2, 14, 30))
    assert working_intervals(hours, "UTC", w) == [
        Interval(utc(2026, 3, 2, 10), utc(2026, 3, 2, 14, 30))
    ]


def test_day_interval_lengths() -> None:
    assert day_interval(date(2026, 3, 29), "Europe/London").duration == timedelta(hours=23)
    assert day_interval(date(2026, 10, 25), "Europe/London").duration == timedelta(hours=25)
    d = day_interval(date(2026, 3, 2), "Asia/Kolkata")
    assert d == Interval(utc(2026, 3, 1, 18, 30), utc(2026, 3, 2, 18, 30))


def test_local_days() -> None:
    w = Interval(utc(2026, 3, 2, 20), utc(2026, 3, 3, 1))
    assert local_days("UTC", w) == [date(2026, 3, 2), date(2026, 3, 3)]
    assert local_days("Asia/Kolkata", w) == [date(2026, 3, 3)]  # 01:30-06:30 IST
    assert local_days("America/New_York", w) == [date(2026, 3, 2)]  # 15:00-20:00 EST
    # The end is exclusive: a window ending at local midnight does not touch the next day.
    assert local_days("UTC", Interval(utc(2026, 3, 2), utc(2026, 3, 3))) == [date(2026, 3, 2)]
    assert local_days("UTC", Interval(utc(2026, 3, 2), utc(2026, 3, 2))) == []


def test_local_ranges_on_given_weekdays_only() -> None:
    w = window(date(2026, 3, 2), date(2026, 3, 8))  # Mon..Sun
    got = local_ranges([tr("12:00", "13:00")], "UTC", w, weekdays={0, 2})
    assert [i.start for i in got] == [utc(2026, 3, 2, 12), utc(2026, 3, 4, 12)]
    assert len(local_ranges([tr("12:00", "13:00")], "UTC", w)) == 7


def test_free_time_is_working_minus_busy() -> None:
    w = window(date(2026, 3, 2), date(2026, 3, 2))
    busy = [
        Interval(utc(2026, 3, 2, 8), utc(2026, 3, 2, 10)),
        Interval(utc(2026, 3, 2, 12), utc(2026, 3, 2, 13)),
    ]
    assert free_time(NINE_TO_FIVE, "UTC", busy, w) == [
        Interval(utc(2026, 3, 2, 10), utc(2026, 3, 2, 12)),
        Interval(utc(2026, 3, 2, 13), utc(2026, 3, 2, 17)),
    ]


ZONES = (
    "Europe/London",
    "America/New_York",
    "Australia/Sydney",
    "Asia/Kolkata",
    "Australia/Adelaide",
    "Asia/Kathmandu",
    "America/Santiago",
)


@st.composite
def any_hours(draw: st.DrawFn) -> WeeklyHours:
    days = {}
    for weekday in draw(st.sets(st.integers(0, 6))):
        ranges = []
        for _ in range(draw(st.integers(1, 2))):
            a = draw(st.integers(0, 24 * 60 - 2))
            b = draw(st.integers(a + 1, 24 * 60 - 1))
            ranges.append(TimeRange(time(a // 60, a % 60), time(b // 60, b % 60)))
        days[weekday] = tuple(ranges)
    return WeeklyHours(days)


@settings(max_examples=200, deadline=None)
@given(
    any_hours(),
    st.sampled_from(ZONES),
    st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2026, 12, 20)),
    st.integers(0, 10 * 24 * 60),
)
def test_integer_fast_path_agrees_with_interval_path(
    hours: WeeklyHours, zone: str, start: datetime, minutes: int
) -> None:
    """working_spans (slots' hot path) equals working_intervals, DST gaps and folds included."""
    w = Interval(
        start.replace(tzinfo=UTC, second=0, microsecond=0),
        start.replace(tzinfo=UTC, second=0, microsecond=0) + timedelta(minutes=minutes),
    )
    lo, hi = int(w.start.timestamp()), int(w.end.timestamp())
    as_spans = [
        (int(i.start.timestamp()), int(i.end.timestamp()))
        for i in working_intervals(hours, zone, w)
    ]
    assert working_spans(hours, zone, lo, hi) == as_spans
    ranges = hours.on(0) or (TimeRange(time(10), time(11)),)
    as_spans = [
        (int(i.start.timestamp()), int(i.end.timestamp())) for i in local_ranges(ranges, zone, w)
    ]
    assert local_spans(ranges, zone, lo, hi) == as_spans
