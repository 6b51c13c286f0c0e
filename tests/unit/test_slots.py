"""find_slots: one test per rule, scoring, determinism, and DST weeks across zones."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from scheduler.core.intervals import Interval
from scheduler.core.model import DateRange, TimeRange, WeeklyHours
from scheduler.core.slots import Candidate, OwnerContext, SlotRules, find_slots

LONDON, NEW_YORK, SYDNEY = "Europe/London", "America/New_York", "Australia/Sydney"
MON = date(2026, 3, 2)  # London is on GMT = UTC: local clock == UTC clock


def tr(a: str, b: str) -> TimeRange:
    return TimeRange(time.fromisoformat(a), time.fromisoformat(b))


def at(day: date, clock: str, zone: str = "UTC") -> datetime:
    return datetime.combine(day, time.fromisoformat(clock), ZoneInfo(zone)).astimezone(UTC)


def iv(day: date, a: str, b: str, zone: str = "UTC") -> Interval:
    return Interval(at(day, a, zone), at(day, b, zone))


def hours(a: str = "09:00", b: str = "17:00", days: Sequence[int] = range(5)) -> WeeklyHours:
    return WeeklyHours({d: (tr(a, b),) for d in days})


def rules(**kw: Any) -> SlotRules:
    base: dict[str, Any] = {
        "duration": timedelta(minutes=30),
        "earliest": at(MON, "00:00"),
        "latest": at(MON + timedelta(1), "00:00"),
        "owner_zone": LONDON,
    }
    return SlotRules(**(base | kw))


def slots(r: SlotRules, **kw: Any) -> list[Candidate]:
    args: dict[str, Any] = {
        "owner_hours": hours(),
        "other_hours": hours(),
        "other_zone": LONDON,
        "owner_busy": [],
        "other_busy": [],
    }
    return find_slots(r, **(args | kw))


def starts(found: list[Candidate], zone: str = "UTC") -> list[str]:
    tz = ZoneInfo(zone)
    return sorted(f"{c.start.astimezone(tz):%a %H:%M}" for c in found)


def local(moment: datetime, zone: str) -> datetime:
    return moment.astimezone(ZoneInfo(zone))


# --- one rule at a time --------------------------------------------------------------------


def test_plain_day_gives_every_quarter_hour() -> None:
    got = slots(rules())
    assert len(got) == 31  # 09:00 … 16:30
    assert starts(got)[0] == "Mon 09:00"
    assert starts(got)[-1] == "Mon 16:30"


def test_notice_earliest_start_rounds_up_to_the_grid() -> None:
    got = slots(rules(earliest=at(MON, "10:07")))
    assert starts(got)[0] == "Mon 10:15"
    assert all(c.start >= at(MON, "10:07") for c in got)


def test_notice_exactly_on_the_grid_is_allowed() -> None:
    assert starts(slots(rules(earliest=at(MON, "10:00"))))[0] == "Mon 10:00"


def test_horizon_slot_must_end_by_latest() -> None:
    got = slots(rules(latest=at(MON, "12:10")))
    assert starts(got)[-1] == "Mon 11:30"  # ends 12:00; 11:45 would end 12:15
    assert all(c.end <= at(MON, "12:10") for c in got)
    assert starts(slots(rules(latest=at(MON, "12:00"))))[-1] == "Mon 11:30"


def test_no_meeting_days_use_the_owner_local_weekday() -> None:
    # Sydney is UTC+11 in March: Monday 22:00 UTC is already Tuesday 09:00 in Sydney.
    r = rules(
        owner_zone=SYDNEY,
        earliest=at(MON, "00:00"),
        latest=at(MON + timedelta(4), "00:00"),
        no_meeting_days=frozenset({1}),
    )
    got = slots(r, other_zone=SYDNEY)
    days = {c.local_day(SYDNEY).weekday() for c in got}
    assert 1 not in days
    assert {0, 2} <= days
    # Monday 22:00 UTC onwards is Sydney's Tuesday: nothing there.
    assert not any(c.start.weekday() == 0 and c.start.hour >= 22 for c in got)


def test_blackout_dates_are_owner_local() -> None:
    tue = MON + timedelta(1)
    r = rules(
        owner_zone=SYDNEY,
        latest=at(MON + timedelta(4), "00:00"),
        blackout=(DateRange(tue, tue),),
    )
    got = slots(r, other_zone=SYDNEY)
    local_days = {c.local_day(SYDNEY) for c in got}
    assert tue not in local_days
    assert {MON, tue + timedelta(1)} <= local_days
    without = {c.local_day(SYDNEY) for c in slots(replace(r, blackout=()), other_zone=SYDNEY)}
    assert tue in without


def test_buffer_pads_only_the_owner() -> None:
    r = rules(buffer=timedelta(minutes=10), grid=timedelta(minutes=5))
    owner = starts(slots(r, owner_busy=[iv(MON, "10:00", "11:00")]))
    assert "Mon 09:20" in owner  # ends 09:50, 10 min before the meeting
    assert "Mon 09:25" not in owner
    assert "Mon 11:05" not in owner
    assert "Mon 11:10" in owner
    other = starts(slots(r, other_busy=[iv(MON, "10:00", "11:00")]))
    assert "Mon 09:30" in other  # the other person gets no buffer: back-to-back is fine
    assert "Mon 09:35" not in other
    assert "Mon 11:00" in other


def test_grid_follows_the_owner_local_clock() -> None:
    got = slots(rules(grid=timedelta(minutes=30)))
    assert {c.start.minute for c in got} == {0, 30}
    # Kolkata is UTC+05:30: an hourly grid means whole local hours, i.e. :30 in UTC.
    kolkata = "Asia/Kolkata"
    got = slots(
        rules(owner_zone=kolkata, grid=timedelta(hours=1), earliest=at(MON, "00:00")),
        other_zone=kolkata,
    )
    assert got
    assert {c.start.minute for c in got} == {30}
    assert {local(c.start, kolkata).minute for c in got} == {0}


def test_lunch_window_holds_in_both_zones() -> None:
    # Lunch 12:00-14:00 in London and in Berlin (UTC+1): London 12:00-13:00 is both.
    r = rules(lunch_window=tr("12:00", "14:00"))
    got = slots(r, other_zone="Europe/Berlin")
    assert starts(got) == ["Mon 12:00", "Mon 12:15", "Mon 12:30"]


def test_preferred_windows_only_when_one_fits() -> None:
    r = rules(windows=(tr("10:00", "11:30"), tr("14:00", "15:00")))
    got = slots(r)
    assert all(c.preferred for c in got)
    assert starts(got) == [
        *(f"Mon {h}" for h in ("10:00", "10:15", "10:30", "10:45", "11:00")),
        *(f"Mon {h}" for h in ("14:00", "14:15", "14:30")),
    ]
    by_start = {c.start: c for c in got}
    assert by_start[at(MON, "10:00")].reason == (
        "Mon 10:00 Europe/London, in your preferred window 10:00-11:30"
    )
    assert by_start[at(MON, "14:30")].reason.endswith("in your preferred window 14:00-15:00")


def test_fallback_to_working_hours_says_no_window_fitted() -> None:
    r = rules(windows=(tr("10:00", "11:30"),))
    got = slots(r, other_busy=[iv(MON, "09:45", "11:45")])
    assert got
    assert not any(c.preferred for c in got)
    assert all("no preferred window 10:00-11:30 fitted" in c.reason for c in got)
    assert "Mon 12:00" in starts(got)
    assert all(c.score < 100 for c in got)


def test_without_windows_everything_is_preferred() -> None:
    got = slots(rules())
    assert all(c.preferred for c in got)
    assert all(c.reason.endswith(", within working hours") for c in got)


def test_overlapping_windows_merge_and_the_reason_names_both() -> None:
    r = rules(windows=(tr("10:00", "11:00"), tr("10:30", "11:30")))
    got = slots(r)
    assert "Mon 10:45" in starts(got)  # 10:45-11:15 is in neither alone, but in their union
    assert all("in your preferred windows 10:00-11:00, 10:30-11:30" in c.reason for c in got)


# --- scoring -------------------------------------------------------------------------------


def test_day_load_spreads_coffees_over_days() -> None:
    r = rules(latest=at(MON + timedelta(2), "00:00"))
    assert slots(r)[0].local_day(LONDON) == MON  # otherwise equal: earlier wins
    loaded = slots(r, day_load={MON: 1})
    assert loaded[0].local_day(LONDON) == MON + timedelta(1)
    assert loaded[0].score - 10 == max(c.score for c in loaded if c.local_day(LONDON) == MON)


def test_slots_next_to_a_meeting_beat_ones_that_split_a_free_block() -> None:
    got = slots(rules(), owner_busy=[iv(MON, "10:00", "11:00")])
    score = {f"{c.start:%H:%M}": c.score - 100 for c in got}  # 100: every slot is preferred
    # Touching the meeting on either side: whole block stays in one piece, plus adjacency.
    assert score["09:30"] == score["11:00"] == 6.0
    assert starts(got[:2]) == ["Mon 09:30", "Mon 11:00"]  # tie broken by start
    # At a working-hours edge: one piece, but no meeting touched.
    assert score["16:30"] == score["09:00"] == 5.0
    # Dead centre of 11:00-17:00: half the remaining time on each side.
    assert score["13:45"] == 2.5
    assert score["13:45"] < score["12:00"] < score["11:15"] < score["11:00"]


def test_adjacency_is_measured_at_the_buffer_edge() -> None:
    r = rules(buffer=timedelta(minutes=10), grid=timedelta(minutes=5))
    got = slots(r, owner_busy=[iv(MON, "10:00", "11:00")])
    assert f"{got[0].start:%H:%M}" in {"09:20", "11:10"}
    assert got[0].score == 106.0


def test_adjacency_means_the_nearest_grid_point_when_the_buffer_is_off_grid() -> None:
    # Buffer 10, grid 15: the block after a 10:00-11:00 meeting starts 11:10, the first slot
    # is 11:15; before it the block ends 09:50, the last slot is 09:15-09:45.
    got = slots(rules(buffer=timedelta(minutes=10)), owner_busy=[iv(MON, "10:00", "11:00")])
    score = {f"{c.start:%H:%M}": c.score - 100 for c in got}
    assert starts(got[:1]) == ["Mon 11:15"]
    assert score["11:15"] == pytest.approx(1 + 5 * 315 / 320)  # 5 min left, 5 h 15 right
    assert score["11:30"] < 5.0  # a grid step later: no adjacency bonus
    assert score["09:15"] == pytest.approx(1 + 5 * 15 / 20)  # 15 min before, 5 min after
    assert score["09:00"] == 5.0  # at the working-hours edge: compact but not next to a meeting


def test_other_persons_meetings_do_not_count_for_adjacency() -> None:
    got = slots(rules(), other_busy=[iv(MON, "10:00", "11:00")])
    score = {f"{c.start:%H:%M}": c.score - 100 for c in got}
    assert score["11:00"] < 5.0  # in the middle of the owner's free day


# --- determinism, context, limit -----------------------------------------------------------


def test_same_inputs_same_output_and_input_order_does_not_matter() -> None:
    busy = [iv(MON, f"{h:02d}:00", f"{h:02d}:40") for h in range(9, 17, 2)]
    r = rules(windows=(tr("10:00", "12:00"),), latest=at(MON + timedelta(3), "00:00"))
    first = slots(r, owner_busy=busy, day_load={MON: 1})
    shuffled = busy[:]
    random.Random(7).shuffle(shuffled)
    assert slots(r, owner_busy=shuffled, day_load={MON: 1}) == first
    assert slots(r, owner_busy=busy, day_load={MON: 1}) == first
    assert [(-c.score, c.start) for c in first] == sorted((-c.score, c.start) for c in first)


def test_owner_context_is_reusable_and_checked() -> None:
    busy = [iv(MON, "10:00", "11:00")]
    r = rules()
    ctx = OwnerContext.build(r, owner_hours=hours(), owner_busy=busy)
    for other_zone in (LONDON, "Europe/Berlin"):
        assert slots(r, owner_busy=busy, other_zone=other_zone, context=ctx) == slots(
            r, owner_busy=busy, other_zone=other_zone
        )
    with pytest.raises(ValueError, match="OwnerContext"):
        slots(r, owner_busy=[], context=ctx)
    with pytest.raises(ValueError, match="OwnerContext"):
        slots(replace(r, buffer=timedelta(minutes=5)), owner_busy=busy, context=ctx)
    with pytest.raises(ValueError, match="OwnerContext"):
        slots(r, owner_busy=busy, owner_hours=hours("08:00"), context=ctx)
    with pytest.raises(ValueError, match="OwnerContext"):
        slots(replace(r, windows=(tr("10:00", "11:00"),)), owner_busy=busy, context=ctx)
    with pytest.raises(ValueError, match="OwnerContext"):
        slots(replace(r, latest=r.latest + timedelta(1)), owner_busy=busy, context=ctx)


def test_one_context_serves_stakeholders_with_different_notice_and_duration() -> None:
    """The planner's case: one window per plan, per-stakeholder earliest start and length."""
    busy = [iv(MON, "10:00", "11:00")]
    week = rules(latest=at(MON + timedelta(5), "00:00"))
    ctx = OwnerContext.build(week, owner_hours=hours(), owner_busy=busy)
    for earliest, minutes in (("00:00", 30), ("13:07", 45), ("23:00", 60)):
        narrower = replace(
            week,
            earliest=at(MON + timedelta(1), earliest),
            latest=at(MON + timedelta(3), "12:00"),
            duration=timedelta(minutes=minutes),
        )
        shared = slots(narrower, owner_busy=busy, context=ctx)
        assert shared
        assert shared == slots(narrower, owner_busy=busy)


def test_limit_keeps_the_best() -> None:
    everything = slots(rules(), owner_busy=[iv(MON, "10:00", "11:00")])
    assert slots(rules(), owner_busy=[iv(MON, "10:00", "11:00")], limit=3) == everything[:3]
    assert slots(rules(), limit=0) == []


def test_empty_or_inverted_horizon() -> None:
    assert slots(rules(latest=at(MON, "09:20"), earliest=at(MON, "09:00"))) == []
    assert slots(rules(latest=at(MON, "08:00"), earliest=at(MON, "12:00"))) == []


@pytest.mark.parametrize(
    "bad",
    [
        {"duration": timedelta(0)},
        {"grid": timedelta(0)},
        {"buffer": timedelta(minutes=-1)},
        {"earliest": datetime(2026, 3, 2)},
    ],
)
def test_rules_are_validated(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        rules(**bad)


def test_candidate_helpers() -> None:
    c = slots(rules())[0]
    assert c.interval == Interval(c.start, c.end)
    assert c.local_day("Pacific/Kiritimati") == MON  # 09:00 UTC is 23:00 on Monday at UTC+14
    assert c.local_day("Asia/Tokyo") == MON  # 18:00 in Tokyo
    late = slots(rules(), limit=None)[-1]
    assert late.local_day("Pacific/Auckland") == MON + timedelta(1)  # 16:30 UTC is 05:30 Tue


# --- DST weeks, two zones ------------------------------------------------------------------


def assert_on_local_clock(c: Candidate, wh: WeeklyHours, zone: str) -> None:
    ls, le = local(c.start, zone), local(c.end, zone)
    assert ls.date() == le.date(), f"{c} crosses midnight in {zone}"
    assert any(r.start <= ls.time() and le.time() <= r.end for r in wh.on(ls.weekday())), (
        f"{c.start:%F %H:%M}Z is {ls:%a %H:%M}-{le:%H:%M} in {zone}, outside working hours"
    )


def first_local_start_by_day(found: list[Candidate], zone: str) -> dict[date, str]:
    out: dict[date, list[datetime]] = defaultdict(list)
    for c in found:
        out[c.local_day(zone)].append(local(c.start, zone))
    return {d: f"{min(v):%H:%M}" for d, v in out.items()}


@pytest.mark.parametrize(
    ("first", "last", "expected"),
    [
        # US springs forward on 03-08, the UK on 03-29: for three weeks New York is 4 h behind.
        (
            date(2026, 3, 5),
            date(2026, 3, 10),
            {"03-05": "14:00", "03-06": "14:00", "03-09": "13:00", "03-10": "13:00"},
        ),
        (
            date(2026, 3, 26),
            date(2026, 3, 31),
            {"03-26": "13:00", "03-27": "13:00", "03-30": "14:00", "03-31": "14:00"},
        ),
        # The UK falls back on 10-25, the US on 11-01.
        (
            date(2026, 10, 22),
            date(2026, 10, 27),
            {"10-22": "14:00", "10-23": "14:00", "10-26": "13:00", "10-27": "13:00"},
        ),
        (
            date(2026, 10, 29),
            date(2026, 11, 3),
            {"10-29": "13:00", "10-30": "13:00", "11-02": "14:00", "11-03": "14:00"},
        ),
    ],
)
def test_london_owner_new_york_stakeholder_across_dst(
    first: date, last: date, expected: dict[str, str]
) -> None:
    owner_hours, other_hours = hours("09:00", "17:30"), hours("09:00", "17:00")
    r = SlotRules(
        duration=timedelta(minutes=30),
        earliest=at(first, "00:00", LONDON),
        latest=at(last + timedelta(1), "00:00", LONDON),
        owner_zone=LONDON,
    )
    got = find_slots(
        r,
        owner_hours=owner_hours,
        other_hours=other_hours,
        other_zone=NEW_YORK,
        owner_busy=[],
        other_busy=[],
    )
    for c in got:
        assert_on_local_clock(c, owner_hours, LONDON)
        assert_on_local_clock(c, other_hours, NEW_YORK)
    by_day = {f"{d:%m-%d}": v for d, v in first_local_start_by_day(got, LONDON).items()}
    assert by_day == expected
    # The last start is always 17:00 London (ends 17:30), whatever the offset.
    assert max(local(c.start, LONDON).time() for c in got) == time(17)


def test_sydney_owner_london_stakeholder_across_both_changes() -> None:
    # London moves to BST on 03-29, Sydney leaves daylight time on 04-05. The overlap of Sydney
    # 07:00-21:00 and London 07:00-19:00 starts at Sydney 18:00, then 17:00, then 16:00.
    owner_hours = hours("07:00", "21:00", range(7))
    other_hours = hours("07:00", "19:00", range(7))
    r = SlotRules(
        duration=timedelta(minutes=30),
        earliest=at(date(2026, 3, 27), "00:00", SYDNEY),
        latest=at(date(2026, 4, 9), "00:00", SYDNEY),
        owner_zone=SYDNEY,
        buffer=timedelta(minutes=10),
    )
    busy = [iv(date(2026, 3, 31), "18:00", "19:00", SYDNEY)]
    got = find_slots(
        r,
        owner_hours=owner_hours,
        other_hours=other_hours,
        other_zone=LONDON,
        owner_busy=busy,
        other_busy=[iv(date(2026, 4, 7), "08:00", "09:00", LONDON)],
    )
    for c in got:
        assert_on_local_clock(c, owner_hours, SYDNEY)
        assert_on_local_clock(c, other_hours, LONDON)
        assert not c.interval.overlaps(busy[0].padded(timedelta(minutes=10)))
    firsts = first_local_start_by_day(got, SYDNEY)
    assert firsts[date(2026, 3, 28)] == "18:00"  # AEDT / GMT
    assert firsts[date(2026, 3, 30)] == "17:00"  # AEDT / BST
    assert firsts[date(2026, 4, 6)] == "16:00"  # AEST / BST
    assert firsts[date(2026, 4, 7)] == "16:00"
    assert firsts[date(2026, 3, 31)] == "17:00"
    later = {
        f"{local(c.start, SYDNEY):%H:%M}" for c in got if c.local_day(SYDNEY) == date(2026, 3, 31)
    }
    assert "17:30" not in later  # 17:30-18:00 would touch the meeting's 10 min buffer
    assert "17:15" in later
    assert "19:00" not in later  # the meeting ends 19:00, plus 10 min buffer
    assert "19:15" in later


@pytest.mark.parametrize("seed", [1, 2])
def test_agrees_with_the_benchmark_reference_implementations(
    seed: int, capsys: pytest.CaptureFixture[str]
) -> None:
    """bench/slots_bench.py has two independent implementations (portion, a minute grid) that
    must give the same candidates, scores and order; it exits non-zero if they do not."""
    from bench import slots_bench

    slots_bench.main(["--seed", str(seed), "--stakeholders", "4", "--check", "4", "--check-only"])
    out = capsys.readouterr().out
    assert "agree (preferred windows)" in out
    assert "agree (no windows)" in out


def _all_day_sunday_slots(zone: str, earliest: datetime, latest: datetime, grid: int) -> list[str]:
    sunday = WeeklyHours({6: (tr("00:00", "23:00"),)})
    r = SlotRules(
        duration=timedelta(minutes=30),
        earliest=earliest,
        latest=latest,
        owner_zone=zone,
        grid=timedelta(minutes=grid),
    )
    got = find_slots(
        r, owner_hours=sunday, other_hours=sunday, other_zone=zone, owner_busy=[], other_busy=[]
    )
    return sorted(f"{c.start:%H:%M}" for c in got)


def test_slots_may_straddle_a_spring_forward_inside_working_hours() -> None:
    # London 2026-03-29 01:00 UTC: 01:00 GMT becomes 02:00 BST. 00:45-01:15 UTC is a real
    # 30 minutes (00:45 GMT to 02:15 BST on the wall clock) inside 00:00-23:00.
    got = _all_day_sunday_slots(
        LONDON, datetime(2026, 3, 29, 0, tzinfo=UTC), datetime(2026, 3, 29, 3, tzinfo=UTC), 15
    )
    assert got == [f"{m // 60:02d}:{m % 60:02d}" for m in range(0, 151, 15)]


def test_slots_may_straddle_a_fall_back_inside_working_hours() -> None:
    # London 2026-10-25 01:00 UTC: 02:00 BST becomes 01:00 GMT; the day starts 23:00 UTC.
    got = _all_day_sunday_slots(
        LONDON, datetime(2026, 10, 24, 23, tzinfo=UTC), datetime(2026, 10, 25, 3, tzinfo=UTC), 15
    )
    assert "00:45" in got  # 01:45 BST to 01:15 GMT
    assert len(got) == 15  # every quarter hour from 23:00 to 02:30 UTC


def test_grid_follows_the_local_clock_through_a_half_hour_dst_change() -> None:
    # Lord Howe Island leaves daylight time on 2026-04-05 at 02:00 local (+11:00), turning the
    # clock back to 01:30 (+10:30) at 15:00 UTC. Whole local hours are :00 UTC before, :30 after.
    got = _all_day_sunday_slots(
        "Australia/Lord_Howe",
        datetime(2026, 4, 4, 13, tzinfo=UTC),
        datetime(2026, 4, 4, 18, tzinfo=UTC),
        60,
    )
    assert got == ["13:00", "14:00", "15:30", "16:30", "17:30"]
