"""Hypothesis properties of the slot finder, checked on the local clock.

The oracle below knows nothing of the implementation: it walks every UTC quarter hour of the
horizon (every owner-local grid point is one, since IANA offsets are multiples of 15 minutes and
the grids drawn here are too) and checks each rule by converting to local time with zoneinfo.
Working hours are drawn after 04:00 so that no range contains a DST transition (those happen
between 00:00 and 03:00 local in every zone used); the days themselves do include transitions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.core.intervals import Interval, normalise
from scheduler.core.model import DateRange, TimeRange, WeeklyHours
from scheduler.core.slots import Candidate, OwnerContext, SlotRules, find_slots

ZONES = (
    "Europe/London",
    "America/New_York",
    "Australia/Sydney",
    "Asia/Kolkata",  # +05:30
    "Australia/Adelaide",  # +09:30 / +10:30
    "Asia/Kathmandu",  # +05:45
    "UTC",
)
# DST changes fall on Sundays (US 03-08 and 11-01, EU 03-29 and 10-25, AU 04-05 and 10-04):
# horizons start on the Thursday or Saturday before one (2 days' drift + up to 4 days long), or
# in a quiet week.
_DST_SUNDAYS = tuple(
    date(2026, m, d) for m, d in ((3, 8), (3, 29), (4, 5), (10, 4), (10, 25), (11, 1))
)
BASES = (
    *(datetime.combine(d - timedelta(days=k), time(0), UTC) for d in _DST_SUNDAYS for k in (1, 3)),
    datetime(2026, 6, 15, tzinfo=UTC),
)
QUARTER = timedelta(minutes=15)


@st.composite
def clock_range(draw: st.DrawFn) -> TimeRange:
    """A local range on 5-minute marks, starting 04:00-14:55, 5 min to 12 h long."""
    # Hypothesis favours small integers and the first sampled element; listing typical values
    # first keeps most generated people at work long enough for slots to exist.
    hour = draw(st.sampled_from((9, 8, 10, 7, 11, 12, 13, 14, 4, 5, 6)))
    start = hour * 60 + draw(st.sampled_from((0, 30, 15, 5)))
    length = draw(st.sampled_from((480, 540, 600, 720, 240, 120, 60, 30, 5)))
    end = min(start + length, 23 * 60 + 55)
    return TimeRange(time(start // 60, start % 60), time(end // 60, end % 60))


@st.composite
def weekly_hours(draw: st.DrawFn) -> WeeklyHours:
    days = {}
    for weekday in range(7):
        count = draw(st.sampled_from((1, 2, 0) if weekday < 5 else (1, 0)))
        if count:
            days[weekday] = tuple(draw(clock_range()) for _ in range(count))
    return WeeklyHours(days)


@st.composite
def busy_lists(draw: st.DrawFn, origin: datetime) -> list[Interval]:
    """Meetings over the 5 days from ``origin`` (UTC midnight), at any hour, on 5-minute marks.

    Minutes off the quarter hour put buffer edges between grid points, where a wrong buffer
    or grid would show.
    """
    out = []
    for _ in range(draw(st.integers(0, 25))):
        start = origin + timedelta(
            days=draw(st.sampled_from(range(5))),
            hours=draw(st.sampled_from(range(24))),
            minutes=draw(st.sampled_from((0, 50, 5, 10, 55, 15, 20, 30, 45))),
        )
        length = draw(st.sampled_from((30, 60, 45, 15, 90, 5, 120, 240)))
        out.append(Interval(start, start + timedelta(minutes=length)))
    return out


@dataclass(frozen=True)
class Case:
    rules: SlotRules
    owner_hours: WeeklyHours
    other_hours: WeeklyHours
    other_zone: str
    owner_busy: list[Interval]
    other_busy: list[Interval]
    day_load: dict[date, int]

    def run(self, *, context: OwnerContext | None = None) -> list[Candidate]:
        return find_slots(
            self.rules,
            owner_hours=self.owner_hours,
            other_hours=self.other_hours,
            other_zone=self.other_zone,
            owner_busy=normalise(self.owner_busy),
            other_busy=normalise(self.other_busy),
            day_load=self.day_load,
            context=context,
        )


@st.composite
def cases(draw: st.DrawFn) -> Case:
    base = draw(st.sampled_from(BASES))
    earliest = base + timedelta(minutes=draw(st.integers(0, 48 * 60)))
    latest = earliest + timedelta(
        days=draw(st.sampled_from((2, 3, 1, 0))), minutes=draw(st.integers(0, 24 * 60))
    )
    origin = datetime.combine(earliest.date(), time(0), UTC) - timedelta(days=1)
    first = (base - timedelta(days=1)).date()
    blackout: tuple[DateRange, ...] = ()
    if draw(st.sampled_from((False, False, True))):
        d0 = first + timedelta(days=draw(st.integers(0, 6)))
        blackout = (DateRange(d0, d0 + timedelta(days=draw(st.integers(0, 2)))),)
    lunch = draw(st.sampled_from((None, None, None, TimeRange(time(11), time(14)))))
    rules = SlotRules(
        duration=timedelta(minutes=draw(st.sampled_from((30, 15, 45, 60, 90)))),
        earliest=earliest,
        latest=latest,
        owner_zone=draw(st.sampled_from(ZONES)),
        windows=tuple(draw(st.lists(clock_range(), max_size=2))),
        lunch_window=lunch,
        no_meeting_days=frozenset(draw(st.sets(st.integers(0, 6), max_size=2))),
        blackout=blackout,
        buffer=timedelta(minutes=draw(st.sampled_from((10, 0, 5, 15)))),
        grid=timedelta(minutes=draw(st.sampled_from((15, 30, 45, 60)))),
    )
    day_load = {
        first + timedelta(days=n): draw(st.integers(0, 3))
        for n in draw(st.sets(st.integers(0, 7), max_size=4))
    }
    return Case(
        rules=rules,
        owner_hours=draw(weekly_hours()),
        other_hours=draw(weekly_hours()),
        other_zone=draw(
            st.sampled_from((rules.owner_zone, rules.owner_zone, rules.owner_zone, *ZONES))
        ),
        owner_busy=draw(busy_lists(origin)),
        other_busy=draw(busy_lists(origin)),
        day_load=day_load,
    )


@st.composite
def busy_calendars(draw: st.DrawFn) -> Case:
    """Both people at work all day in one zone, the owner with a crowded calendar: isolates the
    buffer, grid and busy-overlap rules, where mistakes show only a few minutes off."""
    zone = draw(st.sampled_from(ZONES))
    earliest = datetime.combine(draw(st.sampled_from(BASES)).date(), time(0), ZoneInfo(zone))
    everyday = WeeklyHours({d: (TimeRange(time(8), time(18)),) for d in range(7)})
    busy = []
    for _ in range(draw(st.integers(3, 30))):
        start = earliest + timedelta(
            days=draw(st.sampled_from((0, 1))),
            hours=draw(st.sampled_from(range(8, 18))),
            minutes=draw(st.sampled_from(range(0, 60, 5))),
        )
        busy.append(
            Interval(start, start + timedelta(minutes=draw(st.sampled_from(range(5, 95, 5)))))
        )
    rules = SlotRules(
        duration=timedelta(minutes=draw(st.sampled_from((30, 15, 45, 60)))),
        earliest=earliest.astimezone(UTC),
        latest=(earliest + timedelta(days=2)).astimezone(UTC),
        owner_zone=zone,
        buffer=timedelta(minutes=draw(st.sampled_from((10, 5, 15, 20, 0)))),
        grid=timedelta(minutes=draw(st.sampled_from((15, 30, 45, 60)))),
    )
    return Case(rules, everyday, everyday, zone, busy, busy[: draw(st.integers(0, 3))], {})


# --- the oracle: local-clock checks, one quarter hour at a time ----------------------------


def merged(ranges: tuple[TimeRange, ...]) -> list[tuple[time, time]]:
    out: list[tuple[time, time]] = []
    for r in sorted(ranges):
        if out and r.start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], r.end))
        else:
            out.append((r.start, r.end))
    return out


def inside(ranges: list[tuple[time, time]], start: datetime, end: datetime, zone: str) -> bool:
    """``[start, end)`` lies in one of the local ``ranges`` of one local day, on the clock."""
    tz = ZoneInfo(zone)
    ls, le = start.astimezone(tz), end.astimezone(tz)
    if le.date() != ls.date():
        return False  # ends at or after local midnight: no range reaches 24:00
    return any(a <= ls.time() and le.time() <= b for a, b in ranges)


def hours_ok(hours: WeeklyHours, start: datetime, end: datetime, zone: str) -> bool:
    weekday = start.astimezone(ZoneInfo(zone)).weekday()
    return inside(merged(hours.on(weekday)), start, end, zone)


def clashes(start: datetime, end: datetime, busy: list[Interval], pad: timedelta) -> bool:
    return any(start < b.end + pad and b.start - pad < end for b in busy)


def on_grid(start: datetime, zone: str, grid: timedelta) -> bool:
    local = start.astimezone(ZoneInfo(zone))
    seconds = local.hour * 3600 + local.minute * 60 + local.second
    return local.microsecond == 0 and seconds % grid.total_seconds() == 0


def oracle(case: Case) -> tuple[set[datetime], bool]:
    r = case.rules
    owner_tz = ZoneInfo(r.owner_zone)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    quarters = math.ceil((r.earliest - epoch) / QUARTER)
    t = epoch + quarters * QUARTER
    found: set[datetime] = set()
    while t + r.duration <= r.latest:
        end = t + r.duration
        local_day = t.astimezone(owner_tz).date()
        if (
            on_grid(t, r.owner_zone, r.grid)
            and local_day.weekday() not in r.no_meeting_days
            and not any(local_day in b for b in r.blackout)
            and hours_ok(case.owner_hours, t, end, r.owner_zone)
            and hours_ok(case.other_hours, t, end, case.other_zone)
            and (
                r.lunch_window is None
                or (
                    inside(merged((r.lunch_window,)), t, end, r.owner_zone)
                    and inside(merged((r.lunch_window,)), t, end, case.other_zone)
                )
            )
            and not clashes(t, end, case.owner_busy, r.buffer)
            and not clashes(t, end, case.other_busy, timedelta(0))
        ):
            found.add(t)
        t += QUARTER
    if r.windows:
        windows = merged(r.windows)
        preferred = {s for s in found if inside(windows, s, s + r.duration, r.owner_zone)}
        if preferred:
            return preferred, True
        return found, False
    return found, True


# --- properties ----------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(cases())
def test_candidates_are_exactly_the_local_clock_oracle(case: Case) -> None:
    got = case.run()
    expected, preferred = oracle(case)
    assert {c.start for c in got} == expected
    assert len(got) == len(expected)  # no duplicates
    assert all(c.preferred is preferred for c in got)


@settings(max_examples=100, deadline=None)
@given(busy_calendars())
def test_crowded_calendars_match_the_oracle(case: Case) -> None:
    expected, _ = oracle(case)
    assert {c.start for c in case.run()} == expected


@settings(max_examples=150, deadline=None)
@given(cases())
def test_every_candidate_obeys_every_rule(case: Case) -> None:
    r = case.rules
    for c in case.run():
        assert c.end - c.start == r.duration
        assert c.start.utcoffset() == timedelta(0)
        assert r.earliest <= c.start
        assert c.end <= r.latest
        assert not clashes(c.start, c.end, case.owner_busy, r.buffer)
        assert not clashes(c.start, c.end, case.other_busy, timedelta(0))
        assert hours_ok(case.owner_hours, c.start, c.end, r.owner_zone)
        assert hours_ok(case.other_hours, c.start, c.end, case.other_zone)
        assert on_grid(c.start, r.owner_zone, r.grid)
        owner_day = c.local_day(r.owner_zone)
        assert owner_day.weekday() not in r.no_meeting_days
        assert not any(owner_day in b for b in r.blackout)
        assert r.owner_zone in c.reason


@settings(max_examples=100, deadline=None)
@given(cases())
def test_same_inputs_same_output_with_or_without_context(case: Case) -> None:
    first = case.run()
    assert case.run() == first
    ctx = OwnerContext.build(
        case.rules, owner_hours=case.owner_hours, owner_busy=normalise(case.owner_busy)
    )
    assert case.run(context=ctx) == first
    # A context built over a wider window serves the narrower call identically.
    wider = replace(
        case.rules,
        earliest=case.rules.earliest - timedelta(days=1),
        latest=case.rules.latest + timedelta(days=1),
        duration=timedelta(minutes=5),
        grid=timedelta(minutes=5),
    )
    busy = normalise(case.owner_busy)
    ctx = OwnerContext.build(wider, owner_hours=case.owner_hours, owner_busy=busy)
    assert case.run(context=ctx) == first
    assert [(-c.score, c.start) for c in first] == sorted((-c.score, c.start) for c in first)


# --- a context built from the previous one (after a take) ------------------------------------


def shape(ctx: OwnerContext) -> tuple[object, ...]:
    """Everything a context hands the slot finder and the planner."""
    return (ctx.days, ctx.pieces, ctx.preferred_pieces, ctx.fallback_label, ctx.start_dates())


@settings(max_examples=100, deadline=None)
@given(cases(), st.data())
def test_a_context_built_from_the_previous_one_equals_a_fresh_build(
    case: Case, data: st.DataObject
) -> None:
    origin = datetime.combine(case.rules.earliest.date(), time(0), UTC) - timedelta(days=1)
    busy = normalise(case.owner_busy)
    ctx = OwnerContext.build(case.rules, owner_hours=case.owner_hours, owner_busy=busy)
    for _ in range(3):  # meetings taken (as a plan takes slots), and now and then one gone
        added = data.draw(busy_lists(origin))[:2]
        kept = busy[: len(busy) - data.draw(st.sampled_from((0, 0, 1)))]
        busy = normalise([*kept, *added])
        fresh = OwnerContext.build(case.rules, owner_hours=case.owner_hours, owner_busy=busy)
        reused = OwnerContext.build(
            case.rules, owner_hours=case.owner_hours, owner_busy=busy, previous=ctx
        )
        assert shape(reused) == shape(fresh)
        run = replace(case, owner_busy=busy)
        assert run.run(context=reused) == run.run(context=fresh)
        ctx = reused


def test_a_meeting_that_only_touches_the_working_day_is_not_missed_by_the_reuse() -> None:
    # 09:00 is the start of a free block either way; with a meeting ending at 09:00 it is also a
    # meeting's edge (scored as touching it): the day must be computed again, not taken over.
    monday = datetime(2026, 6, 15, tzinfo=UTC)
    rules = SlotRules(
        duration=timedelta(minutes=30),
        earliest=monday,
        latest=monday + timedelta(days=2),
        owner_zone="UTC",
    )
    hours = WeeklyHours({d: (TimeRange(time(9), time(17)),) for d in range(5)})
    before = OwnerContext.build(rules, owner_hours=hours, owner_busy=[])
    touching = [Interval(monday + timedelta(hours=8), monday + timedelta(hours=9))]
    fresh = OwnerContext.build(rules, owner_hours=hours, owner_busy=touching)
    reused = OwnerContext.build(rules, owner_hours=hours, owner_busy=touching, previous=before)
    assert any(p[7] for p in fresh.pieces)  # the block's start is the meeting's end
    assert shape(reused) == shape(fresh)


def test_a_previous_context_of_other_rules_or_hours_is_not_taken_over() -> None:
    monday = datetime(2026, 6, 15, tzinfo=UTC)
    rules = SlotRules(
        duration=timedelta(minutes=30),
        earliest=monday,
        latest=monday + timedelta(days=3),
        owner_zone="Europe/London",
        buffer=timedelta(minutes=10),
    )
    hours = WeeklyHours({d: (TimeRange(time(9), time(17)),) for d in range(5)})
    busy = [Interval(monday + timedelta(hours=10), monday + timedelta(hours=11))]
    fresh = OwnerContext.build(rules, owner_hours=hours, owner_busy=busy)
    others = [
        OwnerContext.build(replace(rules, buffer=timedelta(0)), owner_hours=hours, owner_busy=busy),
        OwnerContext.build(
            replace(rules, earliest=monday + timedelta(days=1)), owner_hours=hours, owner_busy=busy
        ),
        OwnerContext.build(
            replace(rules, owner_zone="Asia/Tokyo"), owner_hours=hours, owner_busy=busy
        ),
        OwnerContext.build(
            rules, owner_hours=WeeklyHours({0: (TimeRange(time(7), time(9)),)}), owner_busy=busy
        ),
    ]
    for other in others:
        assert shape(other) != shape(fresh)
        reused = OwnerContext.build(rules, owner_hours=hours, owner_busy=busy, previous=other)
        assert shape(reused) == shape(fresh)
