"""The small text notations of policy files: durations, times, weekdays, dates, weekly hours."""

from __future__ import annotations

import time as time_module
from datetime import date, time, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scheduler.core.durations import (
    LONGEST,
    DurationTooLong,
    SpecError,
    format_duration,
    format_weekly_hours,
    parse_date_range,
    parse_duration,
    parse_time,
    parse_time_range,
    parse_time_ranges,
    parse_weekdays,
    parse_weekly_hours,
)
from scheduler.core.model import DateRange, TimeRange, WeeklyHours

# -- durations -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", timedelta(minutes=30)),
        ("10m", timedelta(minutes=10)),
        ("90m", timedelta(minutes=90)),
        ("2d", timedelta(days=2)),
        ("4w", timedelta(weeks=4)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1w2d", timedelta(days=9)),
        (" 1h 15m ", timedelta(hours=1, minutes=15)),
    ],
)
def test_parse_duration_accepts_unit_strings(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["4 weeks", "30", "", "m", "1m1h", "-2w", "1.5h", "30M", "2 days"])
def test_parse_duration_rejects_other_text_and_says_what_is_expected(text: str) -> None:
    with pytest.raises(SpecError, match=r"expected a duration like 30m, 2d or 4w") as info:
        parse_duration(text)
    assert repr(text) in str(info.value)


def test_parse_duration_explains_that_months_are_not_supported() -> None:
    with pytest.raises(SpecError, match=r"months vary in length; write 4w or 13w"):
        parse_duration("3mo")


def test_parse_duration_rejects_non_text() -> None:
    with pytest.raises(SpecError, match=r"got 30"):
        parse_duration(30)  # type: ignore[arg-type]


def test_zero_duration_needs_allow_zero() -> None:
    with pytest.raises(SpecError, match=r"greater than zero"):
        parse_duration("0m")
    assert parse_duration("0m", allow_zero=True) == timedelta(0)
    assert parse_duration("0", allow_zero=True) == timedelta(0)
    with pytest.raises(SpecError):
        parse_duration("0")


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(minutes=90), "1h30m"),
        (timedelta(weeks=4), "4w"),
        (timedelta(days=9, minutes=5), "1w2d5m"),
        (timedelta(0), "0m"),
    ],
)
def test_format_duration_is_canonical(value: timedelta, text: str) -> None:
    assert format_duration(value) == text


@pytest.mark.parametrize("value", [timedelta(seconds=30), timedelta(minutes=-5)])
def test_format_duration_refuses_what_cannot_be_written(value: timedelta) -> None:
    with pytest.raises(ValueError, match="whole, non-negative minutes"):
        format_duration(value)


@given(st.integers(min_value=1, max_value=60 * 24 * 7 * 520))
def test_duration_round_trips_through_text(minutes: int) -> None:
    value = timedelta(minutes=minutes)
    assert parse_duration(format_duration(value)) == value


# -- times and time ranges -------------------------------------------------------------------


def test_parse_time_accepts_one_or_two_digit_hours() -> None:
    assert parse_time("9:05") == time(9, 5)
    assert parse_time("23:59") == time(23, 59)


@pytest.mark.parametrize("text", ["24:00", "09:60", "9", "nine", "09:5"])
def test_parse_time_rejects_impossible_times(text: str) -> None:
    with pytest.raises(SpecError, match=r"expected a 24-hour time"):
        parse_time(text)


def test_parse_time_range() -> None:
    assert parse_time_range("09:00-17:30") == TimeRange(time(9), time(17, 30))
    assert parse_time_range("09:00 – 12:00") == TimeRange(time(9), time(12))  # en dash


@pytest.mark.parametrize("text", ["9-5", "09:00", "09:00-", "09:00-12:00-13:00", "noon-13:00"])
def test_parse_time_range_rejects_malformed(text: str) -> None:
    with pytest.raises(SpecError, match=r"expected a time range like 09:00-17:30, got"):
        parse_time_range(text)


@pytest.mark.parametrize("text", ["17:00-09:00", "09:00-09:00", "22:00-02:00"])
def test_parse_time_range_rejects_inverted_and_empty(text: str) -> None:
    with pytest.raises(SpecError, match=r"ends before it starts.*cannot cross midnight"):
        parse_time_range(text)


_minutes_of_day = st.integers(min_value=0, max_value=24 * 60 - 1)


@given(_minutes_of_day, _minutes_of_day)
def test_time_range_round_trips_through_text(a: int, b: int) -> None:
    if a == b:
        return
    start, end = sorted((a, b))
    value = TimeRange(time(start // 60, start % 60), time(end // 60, end % 60))
    assert parse_time_range(str(value)) == value


def test_parse_time_ranges_sorts_and_accepts_lists_or_commas() -> None:
    morning, afternoon = TimeRange(time(9), time(12)), TimeRange(time(13), time(17))
    assert parse_time_ranges("13:00-17:00, 09:00-12:00") == (morning, afternoon)
    assert parse_time_ranges(["09:00-12:00", "13:00-17:00"]) == (morning, afternoon)
    # touching ranges do not overlap: ranges are half-open
    assert len(parse_time_ranges("09:00-12:00, 12:00-13:00")) == 2


def test_parse_time_ranges_names_the_overlap() -> None:
    with pytest.raises(SpecError, match=r"^mon: 09:00-12:00 overlaps 11:00-13:00"):
        parse_time_ranges(["11:00-13:00", "09:00-12:00"], label="mon")


def test_parse_time_ranges_rejects_empty_and_non_text() -> None:
    with pytest.raises(SpecError, match="at least one time range"):
        parse_time_ranges([])
    with pytest.raises(SpecError, match="expected a time range"):
        parse_time_ranges([930])  # type: ignore[list-item]


# -- weekdays --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mon-thu", (0, 1, 2, 3)),
        ("fri", (4,)),
        ("mon,wed,fri", (0, 2, 4)),
        ("mon-fri", (0, 1, 2, 3, 4)),
        ("Sat - Sun", (5, 6)),
        ("friday", (4,)),
        ("fri, mon-tue", (0, 1, 4)),
    ],
)
def test_parse_weekdays(text: str, expected: tuple[int, ...]) -> None:
    assert parse_weekdays(text) == expected


def test_parse_weekdays_suggests_the_nearest_day() -> None:
    with pytest.raises(SpecError, match=r"'thr' is not a day.*did you mean 'thu'\?"):
        parse_weekdays("mon,thr")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("fri-mon", "runs backwards"),
        ("mon,mon", "names mon twice"),
        ("mon-wed,tue", "names tue twice"),
        ("", "expected weekdays"),
        ("mon,,fri", "expected weekdays"),
        ("mon-tue-wed", "expected weekdays"),
    ],
)
def test_parse_weekdays_rejects(text: str, fragment: str) -> None:
    with pytest.raises(SpecError, match=fragment):
        parse_weekdays(text)


# -- dates -----------------------------------------------------------------------------------


def test_parse_date_range() -> None:
    assert parse_date_range("2026-12-24..2027-01-03") == DateRange(
        date(2026, 12, 24), date(2027, 1, 3)
    )
    assert parse_date_range("2026-12-25") == DateRange(date(2026, 12, 25), date(2026, 12, 25))
    assert parse_date_range(date(2027, 4, 2)) == DateRange(date(2027, 4, 2), date(2027, 4, 2))


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("2027-01-03..2026-12-24", "ends before it starts"),
        ("24/12/2026", "expected an ISO date like 2026-12-25"),
        ("2026-12-24..", "expected an ISO date"),
        ("2026-02-30", "expected an ISO date"),
    ],
)
def test_parse_date_range_rejects(text: str, fragment: str) -> None:
    with pytest.raises(SpecError, match=fragment):
        parse_date_range(text)


# -- weekly hours ----------------------------------------------------------------------------


def test_parse_weekly_hours_expands_day_ranges() -> None:
    hours = parse_weekly_hours({"mon-thu": "09:00-17:30", "fri": "09:00-15:00"})
    assert hours.on(0) == hours.on(3) == (TimeRange(time(9), time(17, 30)),)
    assert hours.on(4) == (TimeRange(time(9), time(15)),)
    assert hours.on(5) == ()
    assert sorted(hours.days) == [0, 1, 2, 3, 4]


def test_parse_weekly_hours_accepts_several_ranges_per_day() -> None:
    as_text = parse_weekly_hours({"mon": "09:00-12:00, 13:00-17:00"})
    as_list = parse_weekly_hours({"mon": ["13:00-17:00", "09:00-12:00"]})
    assert as_text == as_list
    assert as_text.on(0) == (TimeRange(time(9), time(12)), TimeRange(time(13), time(17)))


def test_parse_weekly_hours_reports_every_bad_key_with_its_sub_path() -> None:
    with pytest.raises(SpecError) as info:
        parse_weekly_hours(
            {
                "mon": "09:00-12:00, 11:00-13:00",
                "tue-wed": "17:00-09:00",
                "funday": "09:00-10:00",
                "mon-fri": "09:00-10:00",
            }
        )
    problems = dict(info.value.problems)
    assert problems[("mon",)] == (
        "mon: 09:00-12:00 overlaps 11:00-13:00; merge them or make them not overlap"
    )
    assert "ends before it starts" in problems[("tue-wed",)]
    assert "did you mean 'sunday'?" in problems[("funday",)]
    assert "listed under both" in problems[("mon-fri",)]
    assert len(info.value.problems) == 5  # mon and tue/wed clash with mon-fri separately


def test_parse_weekly_hours_rejects_a_day_listed_twice() -> None:
    with pytest.raises(SpecError, match=r"fri listed under both 'mon-fri' and 'fri'"):
        parse_weekly_hours({"mon-fri": "09:00-17:00", "fri": "09:00-15:00"})


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [({}, "expected at least one day"), ("09:00-17:00", "expected working hours as a mapping")],
)
def test_parse_weekly_hours_rejects_shapes(spec: object, fragment: str) -> None:
    with pytest.raises(SpecError, match=fragment):
        parse_weekly_hours(spec)  # type: ignore[arg-type]


def test_format_weekly_hours_groups_consecutive_equal_days() -> None:
    hours = parse_weekly_hours(
        {"mon-wed": "09:00-17:00", "thu": "10:00-16:00", "fri": "09:00-17:00"}
    )
    assert format_weekly_hours(hours) == {
        "mon-wed": "09:00-17:00",
        "thu": "10:00-16:00",
        "fri": "09:00-17:00",
    }


def _at(minute: int) -> time:
    return time(minute // 60, minute % 60)


@st.composite
def _ranges_of_a_day(draw: st.DrawFn) -> tuple[TimeRange, ...]:
    """One to three non-overlapping ranges, minute resolution."""
    cuts = sorted(draw(st.sets(_minutes_of_day, min_size=2, max_size=6)))
    pairs = list(zip(cuts[::2], cuts[1::2], strict=False))
    return tuple(TimeRange(_at(a), _at(b)) for a, b in pairs)


@given(st.dictionaries(st.integers(0, 6), _ranges_of_a_day(), min_size=1))
def test_weekly_hours_round_trip_through_text(days: dict[int, tuple[TimeRange, ...]]) -> None:
    hours = WeeklyHours(dict(sorted(days.items())))
    assert parse_weekly_hours(format_weekly_hours(hours)) == hours


# -- untrusted durations (issue 11) -----------------------------------------------------------


@pytest.mark.parametrize(
    "text", ["99999999999999999999w", "9" * 5000 + "m", "5200w1m", "1w" + "9" * 30 + "d"]
)
def test_a_duration_too_long_is_refused_before_any_arithmetic(text: str) -> None:
    with pytest.raises(DurationTooLong, match=r"expected a duration of at most 5200w"):
        parse_duration(text)
    assert parse_duration("5200w") == LONGEST


def test_at_most_bounds_a_duration_and_is_a_spec_error() -> None:
    assert parse_duration("2d", at_most=timedelta(days=2)) == timedelta(days=2)
    with pytest.raises(SpecError, match=r"at most 2d, got '2d1m'"):
        parse_duration("2d1m", at_most=timedelta(days=2))


@pytest.mark.parametrize("text", ["2d1w", "1w1w", "1h30m1h", "1 0m"])
def test_units_are_written_largest_first_and_once(text: str) -> None:
    with pytest.raises(SpecError, match="expected a duration like 30m"):
        parse_duration(text)


@pytest.mark.parametrize(
    "text", ["1w" + " " * 20_000 + "x", "1" * 20_000 + "x", "1w" * 20_000 + "x", " 1 " * 9_000]
)
def test_malformed_long_durations_are_refused_in_linear_time(text: str) -> None:
    started = time_module.monotonic()
    with pytest.raises(SpecError):
        parse_duration(text)
    assert time_module.monotonic() - started < 10  # the old pattern backtracked cubically: hours
