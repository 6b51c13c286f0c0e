"""Real-world ICS corpora through the reader, and the sample organisation's calendars.

The corpora are the ``.ics`` files shipped inside the installed icalendar and
recurring-ical-events wheels (DST, EXDATE, RECURRENCE-ID, all-day, Google exports, fuzzing
cases). Every one must come out as valid busy blocks or as a CalendarDataError — never
another exception.
"""

from __future__ import annotations

import importlib.util
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType

import icalendar
import pytest
import recurring_ical_events

from connectors.ics import IcsDirectory, parse_busy_blocks
from scheduler.core.errors import CalendarDataError
from scheduler.core.intervals import Interval, normalise
from scheduler.core.model import AttendeeStatus, BusyBlock, BusyQuery, EventStatus, Person, ShowAs

ICALENDAR_CORPUS = sorted((Path(icalendar.__file__).parent / "tests").rglob("*.ics"))
RIE_CORPUS = sorted(
    (Path(recurring_ical_events.__file__).parent / "test" / "calendars").glob("*.ics")
)
WINDOW = Interval(datetime(2000, 1, 1, tzinfo=UTC), datetime(2030, 1, 1, tzinfo=UTC))
#: The default limit: every daily series over the 30-year window fits; denser files are refused.
MAX_INSTANCES = 50_000
#: A shorter window for the cross-check, which expands each file twice.
ORACLE_WINDOW = Interval(datetime(2015, 1, 1, tzinfo=UTC), datetime(2025, 1, 1, tzinfo=UTC))

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _name(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


def test_the_corpora_are_where_we_look() -> None:
    # If a wheel moves its test data, fail loudly instead of testing nothing.
    assert len(ICALENDAR_CORPUS) > 100
    assert len(RIE_CORPUS) > 50


@pytest.mark.filterwarnings("ignore::icalendar.error.GloballyUniqueTZIDGuessed")
@pytest.mark.parametrize("path", ICALENDAR_CORPUS + RIE_CORPUS, ids=_name)
def test_every_corpus_file_gives_valid_blocks_or_a_data_error(path: Path) -> None:
    error: CalendarDataError | None = None
    try:
        blocks = parse_busy_blocks(
            path.read_bytes(),
            source=path.name,
            owner_email="someone@example.com",
            zone="Europe/London",
            window=WINDOW,
            max_instances=MAX_INSTANCES,
        )
    except CalendarDataError as exc:
        error, blocks = exc, []
    if error is not None:
        assert error.source == path.name
        assert path.name in str(error)
    for block in blocks:
        assert block.start.tzinfo is UTC
        assert block.end.tzinfo is UTC
        assert block.start < block.end
        assert WINDOW.start <= block.start
        assert block.end <= WINDOW.end
    assert blocks == sorted(blocks, key=lambda b: (b.start, b.end))


def _library_instances(path: Path) -> int:
    """The instance count recurring-ical-events itself gives (an independent oracle)."""
    calendar = icalendar.Calendar.from_ical(path.read_bytes())
    found = recurring_ical_events.of(calendar).between(ORACLE_WINDOW.start, ORACLE_WINDOW.end)
    return sum(
        1 for e in found if e.get("DTEND") is None or e.decoded("DTEND") != e.decoded("DTSTART")
    )


@pytest.mark.parametrize(
    "name",
    [
        "each_week_but_one_deleted.ics",
        "recurring_events_moved.ics",
        "issue_75_range_parameter.ics",
        "rdate.ics",
        "duration.ics",
        "daylight_saving_time.ics",
        "x_wr_timezone_simple_events_issue_59.ics",
    ],
)
def test_known_good_files_match_the_librarys_own_count(name: str) -> None:
    path = next(p for p in RIE_CORPUS if p.name == name)
    blocks = parse_busy_blocks(
        path.read_bytes(),
        source=name,
        owner_email="someone@example.com",
        zone="UTC",
        window=ORACLE_WINDOW,
        max_instances=MAX_INSTANCES,
    )
    assert blocks
    assert len(blocks) == _library_instances(path)


def test_a_google_export_with_x_wr_timezone_lands_in_its_zone() -> None:
    # Floating 2021-09-16 21:00 under X-WR-TIMEZONE:Europe/Brussels is 19:00Z, even for a
    # reader in Auckland (whose own zone would put it at 09:00Z).
    path = next(
        p for p in RIE_CORPUS if p.name == "issue_86_x_wr_timezone_without_time_zone_in_dt.ics"
    )
    blocks = parse_busy_blocks(
        path.read_bytes(),
        source=path.name,
        owner_email="someone@example.com",
        zone="Pacific/Auckland",
        window=Interval(datetime(2021, 9, 16, tzinfo=UTC), datetime(2021, 9, 17, tzinfo=UTC)),
        max_instances=MAX_INSTANCES,
    )
    assert [(b.start, b.end) for b in blocks] == [
        (datetime(2021, 9, 16, 19, 0, tzinfo=UTC), datetime(2021, 9, 16, 20, 45, tzinfo=UTC))
    ]


# ---------------------------------------------------------------- the sample organisation


def _generator() -> ModuleType:
    name = "goodwill_examples_make_calendars"
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / "make_calendars.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


GENERATOR = _generator()
PEOPLE = {
    slug: Person(f"{slug}@corp.example", name, zone)
    for slug, (name, zone) in GENERATOR.PEOPLE.items()
}
DANA = Person("dana@corp.example", "Dana Fox", "Europe/London")
SAMPLE = IcsDirectory(EXAMPLES / "calendars")


def test_committed_calendars_are_exactly_what_the_generator_writes() -> None:
    built = GENERATOR.build_calendars()
    committed = {p.name: p.read_bytes() for p in (EXAMPLES / "calendars").glob("*.ics")}
    assert set(built) == set(committed), "run: python examples/make_calendars.py"
    for name, data in built.items():
        assert committed[name] == data, f"{name} is stale: run python examples/make_calendars.py"
    assert GENERATOR.build_calendars() == built  # and the generator is deterministic


def test_every_person_has_a_file_with_their_zone_except_dana() -> None:
    for person in PEOPLE.values():
        calendar = icalendar.Calendar.from_ical(
            (EXAMPLES / "calendars" / f"{person.email}.ics").read_bytes()
        )
        assert person.timezone in {tz.tz_name for tz in calendar.timezones}
    assert not (EXAMPLES / "calendars" / "dana@corp.example.ics").exists()
    result = SAMPLE.busy(BusyQuery(_week(datetime(2026, 11, 30, tzinfo=UTC)), (DANA,)))
    assert result.unavailable == {DANA.email: "calendar unavailable: no file dana@corp.example.ics"}


def _week(monday: datetime) -> Interval:
    # Monday 00:00 in Kolkata/Tokyo to Friday night in Chicago: every zone's working week.
    return Interval(monday - timedelta(hours=10), monday + timedelta(days=5, hours=8))


@pytest.mark.parametrize(
    "monday",
    [datetime(2026, 11, 30, tzinfo=UTC), datetime(2027, 6, 7, tzinfo=UTC)],
    ids=["dec-2026", "jun-2027"],
)
def test_each_person_is_busy_15_to_25_hours_a_week(monday: datetime) -> None:
    result = SAMPLE.busy(BusyQuery(_week(monday), tuple(PEOPLE.values())))
    assert result.unavailable == {}
    for email, blocks in result.blocks.items():
        busy = normalise(
            b.interval
            for b in blocks
            if b.show_as is not ShowAs.FREE
            and b.status is not EventStatus.CANCELLED
            and b.response is not AttendeeStatus.DECLINED
            and not b.all_day
        )
        hours = sum((iv.duration for iv in busy), timedelta()).total_seconds() / 3600
        assert 15 <= hours <= 25, (email, hours)


def _blocks(slug: str, start: datetime, hours: float = 24) -> list[tuple[str, BusyBlock]]:
    window = Interval(start, start + timedelta(hours=hours))
    result = SAMPLE.busy(BusyQuery(window, (PEOPLE[slug],)))
    return [(b.start.strftime("%H:%M"), b) for b in result.blocks[PEOPLE[slug].email]]


def test_tom_is_a_google_export_with_floating_times() -> None:
    raw = (EXAMPLES / "calendars" / "tom@corp.example.ics").read_bytes()
    assert b"X-WR-TIMEZONE:America/Chicago" in raw
    assert b"DTSTART;TZID" not in raw
    # Sam's 09:00 New York standup is 08:00 floating in Tom's file: 14:00Z in December.
    starts = [t for t, _ in _blocks("tom", datetime(2026, 12, 1, tzinfo=UTC))]
    assert "14:00" in starts


def test_the_sample_has_each_tricky_case() -> None:
    alex_dec2 = {t for t, _ in _blocks("alex", datetime(2026, 12, 2, tzinfo=UTC))}
    assert "10:30" in alex_dec2  # standup moved by RECURRENCE-ID
    assert "09:30" not in alex_dec2
    alex_xmas = {t for t, _ in _blocks("alex", datetime(2026, 12, 25, tzinfo=UTC))}
    assert "09:30" not in alex_xmas  # EXDATE

    def kinds(slug: str, start: datetime, hours: float = 24) -> list[BusyBlock]:
        return [b for _, b in _blocks(slug, start, hours)]

    maria = kinds("maria", datetime(2026, 12, 7, 23, tzinfo=UTC), 1)
    assert any(b.all_day and b.show_as is ShowAs.FREE for b in maria)
    lena = kinds("lena", datetime(2026, 12, 16, 12, tzinfo=UTC), 1)
    assert any(b.all_day and b.show_as is ShowAs.OOF for b in lena)
    jon = kinds("jon", datetime(2026, 12, 1, tzinfo=UTC))
    assert any(b.response is AttendeeStatus.DECLINED for b in jon)
    omar = kinds("omar", datetime(2026, 12, 3, tzinfo=UTC))
    assert any(b.status is EventStatus.CANCELLED for b in omar)
    raj = kinds("raj", datetime(2026, 12, 1, tzinfo=UTC))
    assert any(b.response is AttendeeStatus.TENTATIVE for b in raj)
    tom = kinds("tom", datetime(2026, 12, 3, tzinfo=UTC))
    assert any(b.response is AttendeeStatus.NEEDS_ACTION for b in tom)
    priya = kinds("priya", datetime(2026, 12, 1, tzinfo=UTC), 24 * 7)
    assert any(b.show_as is ShowAs.FREE and not b.all_day for b in priya)


def test_alex_has_organic_contact_with_some_stakeholders() -> None:
    stakeholders = [p.email for slug, p in PEOPLE.items() if slug != "alex"] + [DANA.email]
    found = SAMPLE.last_contacts(
        PEOPLE["alex"],
        stakeholders,
        datetime(2026, 9, 1, tzinfo=UTC),
        datetime(2026, 11, 26, tzinfo=UTC),
    )
    assert found["kim@corp.example"] == datetime(2026, 9, 15, 8, 0, tzinfo=UTC)
    assert found["sam@corp.example"] == datetime(2026, 10, 20, 14, 45, tzinfo=UTC)
    assert found["maria@corp.example"] == datetime(2026, 11, 3, 12, 0, tzinfo=UTC)
    # Weekly team meetings keep Priya's and Omar's clocks fresh.
    assert found["priya@corp.example"] >= datetime(2026, 11, 19, tzinfo=UTC)
    assert found["omar@corp.example"] >= datetime(2026, 11, 19, tzinfo=UTC)
    # Jon declined his meeting and Chloe's was cancelled; the rest never met Alex.
    assert set(found) == {
        "kim@corp.example",
        "sam@corp.example",
        "maria@corp.example",
        "priya@corp.example",
        "omar@corp.example",
    }
