"""Read side of the ICS connector: mapping rules, the directory, organic contact and feeds."""

from __future__ import annotations

import socket
import threading
import time as time_module
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from connectors.ics import IcsDirectory, IcsFeed, parse_busy_blocks
from connectors.ics_read import redact_url
from scheduler.core.clock import FixedClock
from scheduler.core.errors import (
    CalendarDataError,
    CalendarUnavailable,
    ProviderUnavailable,
    RateLimited,
)
from scheduler.core.intervals import Interval
from scheduler.core.model import (
    AttendeeStatus,
    BusyBlock,
    BusyQuery,
    EventStatus,
    Person,
    ShowAs,
)
from scheduler.settings import Limits

OWNER = "owner@corp.example"
OTHER = "other@corp.example"
DEC = Interval(datetime(2026, 12, 1, tzinfo=UTC), datetime(2026, 12, 31, tzinfo=UTC))


def ics(*events: str, header: tuple[str, ...] = ()) -> bytes:
    """A VCALENDAR around ``events`` (each a block of content lines), CRLF-terminated."""
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//goodwill tests//EN", *header]
    for event in events:
        lines.extend(line.strip() for line in event.strip().splitlines())
    lines.append("END:VCALENDAR")
    return ("\r\n".join(lines) + "\r\n").encode()


def vevent(
    *props: str,
    uid: str = "e1",
    start: str = "DTSTART:20261201T100000Z",
    end: str | None = "DTEND:20261201T110000Z",
) -> str:
    lines = ["BEGIN:VEVENT", f"UID:{uid}", "DTSTAMP:20260901T000000Z", start]
    if end is not None:
        lines.append(end)
    lines.extend(props)
    lines.append("END:VEVENT")
    return "\n".join(lines)


def blocks(
    data: bytes,
    *,
    zone: str = "Europe/London",
    window: Interval = DEC,
    owner: str = OWNER,
    max_instances: int = 1000,
) -> list[BusyBlock]:
    return parse_busy_blocks(
        data,
        source="test.ics",
        owner_email=owner,
        zone=zone,
        window=window,
        max_instances=max_instances,
    )


def one(data: bytes, **kwargs: object) -> BusyBlock:
    found = blocks(data, **kwargs)  # type: ignore[arg-type]
    assert len(found) == 1, found
    return found[0]


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


# ---------------------------------------------------------------- show_as, status, response


@pytest.mark.parametrize(
    ("props", "expected"),
    [
        ((), ShowAs.BUSY),
        (("TRANSP:OPAQUE",), ShowAs.BUSY),
        (("TRANSP:TRANSPARENT",), ShowAs.FREE),
        (("X-MICROSOFT-CDO-BUSYSTATUS:OOF",), ShowAs.OOF),
        (("X-MICROSOFT-CDO-BUSYSTATUS:TENTATIVE",), ShowAs.TENTATIVE),
        (("X-MICROSOFT-CDO-BUSYSTATUS:FREE",), ShowAs.FREE),
        (("X-MICROSOFT-CDO-BUSYSTATUS:BUSY",), ShowAs.BUSY),
        (("X-MICROSOFT-CDO-BUSYSTATUS:WORKINGELSEWHERE",), ShowAs.WORKING_ELSEWHERE),
        (("X-MICROSOFT-CDO-BUSYSTATUS:SOMETHING-NEW",), ShowAs.UNKNOWN),
        # Outlook writes TRANSP:TRANSPARENT next to OOF for some clients; the CDO status wins.
        (("TRANSP:TRANSPARENT", "X-MICROSOFT-CDO-BUSYSTATUS:OOF"), ShowAs.OOF),
    ],
)
def test_show_as_from_transp_and_cdo_busystatus(props: tuple[str, ...], expected: ShowAs) -> None:
    assert one(ics(vevent(*props))).show_as is expected


@pytest.mark.parametrize(
    ("props", "expected"),
    [
        ((), EventStatus.CONFIRMED),
        (("STATUS:CONFIRMED",), EventStatus.CONFIRMED),
        (("STATUS:TENTATIVE",), EventStatus.TENTATIVE),
        (("STATUS:CANCELLED",), EventStatus.CANCELLED),
    ],
)
def test_status_from_status_property(props: tuple[str, ...], expected: EventStatus) -> None:
    assert one(ics(vevent(*props))).status is expected


@pytest.mark.parametrize(
    ("attendee", "expected"),
    [
        (f"ATTENDEE;PARTSTAT=ACCEPTED:mailto:{OWNER}", AttendeeStatus.ACCEPTED),
        (f"ATTENDEE;PARTSTAT=TENTATIVE:mailto:{OWNER}", AttendeeStatus.TENTATIVE),
        (f"ATTENDEE;PARTSTAT=DECLINED:mailto:{OWNER}", AttendeeStatus.DECLINED),
        (f"ATTENDEE;PARTSTAT=DELEGATED:mailto:{OWNER}", AttendeeStatus.DECLINED),
        (f"ATTENDEE;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:{OWNER}", AttendeeStatus.NEEDS_ACTION),
        (f"ATTENDEE;RSVP=TRUE:mailto:{OWNER}", AttendeeStatus.NEEDS_ACTION),  # RFC default
        ("ATTENDEE;PARTSTAT=TENTATIVE:MAILTO:Owner@CORP.example", AttendeeStatus.TENTATIVE),
        # Someone else's answer says nothing about the owner: their own entry.
        (f"ATTENDEE;PARTSTAT=DECLINED:mailto:{OTHER}", AttendeeStatus.ORGANIZER),
    ],
)
def test_response_is_the_owners_partstat(attendee: str, expected: AttendeeStatus) -> None:
    event = vevent(f"ORGANIZER:mailto:{OTHER}", attendee)
    assert one(ics(event)).response is expected


def test_response_is_organizer_when_the_owner_organises() -> None:
    event = vevent(
        f"ORGANIZER;CN=Owner:mailto:{OWNER}",
        f"ATTENDEE;PARTSTAT=DECLINED:mailto:{OTHER}",
        f"ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:{OWNER}",  # Google lists the organizer too
    )
    assert one(ics(event)).response is AttendeeStatus.ORGANIZER


def test_response_is_organizer_for_a_personal_event_without_attendees() -> None:
    assert one(ics(vevent("SUMMARY:Dentist"))).response is AttendeeStatus.ORGANIZER


# ---------------------------------------------------------------- times and zones


def test_times_leave_as_aware_utc_from_a_tzid() -> None:
    event = vevent(
        start="DTSTART;TZID=Europe/Berlin:20261201T100000",
        end="DTEND;TZID=Europe/Berlin:20261201T103000",
    )
    block = one(ics(event))
    assert (block.start, block.end) == (utc(2026, 12, 1, 9), utc(2026, 12, 1, 9, 30))
    assert block.start.tzinfo is UTC
    assert block.end.tzinfo is UTC
    assert block.all_day is False


def test_all_day_event_is_midnight_to_midnight_in_the_persons_zone() -> None:
    event = vevent(
        "TRANSP:TRANSPARENT",
        start="DTSTART;VALUE=DATE:20261208",
        end="DTEND;VALUE=DATE:20261209",
    )
    block = one(ics(event), zone="Asia/Tokyo")
    assert (block.start, block.end) == (utc(2026, 12, 7, 15), utc(2026, 12, 8, 15))
    assert block.all_day is True
    assert block.show_as is ShowAs.FREE


def test_all_day_event_without_dtend_lasts_one_day() -> None:
    event = vevent("X-MICROSOFT-CDO-BUSYSTATUS:OOF", start="DTSTART;VALUE=DATE:20261208", end=None)
    block = one(ics(event), zone="America/New_York")
    assert (block.start, block.end) == (utc(2026, 12, 8, 5), utc(2026, 12, 9, 5))
    assert block.show_as is ShowAs.OOF


def test_floating_time_is_wall_clock_in_the_persons_zone() -> None:
    event = vevent(start="DTSTART:20261201T090000", end="DTEND:20261201T100000")
    assert one(ics(event), zone="America/New_York").start == utc(2026, 12, 1, 14)
    assert one(ics(event), zone="Asia/Kolkata").start == utc(2026, 12, 1, 3, 30)


def test_duration_instead_of_dtend() -> None:
    block = one(ics(vevent("DURATION:PT45M", end=None)))
    assert block.end - block.start == timedelta(minutes=45)


def test_x_wr_timezone_export_is_repaired_before_expansion() -> None:
    # Google exports: times in UTC, recurrence meant in X-WR-TIMEZONE. 09:00 CDT on 2026-10-26 is
    # 14:00Z; after Chicago's DST ends (2026-11-01) the weekly meeting stays at 09:00 local,
    # i.e. 15:00Z. Without the repair it would stay at 14:00Z.
    data = ics(
        vevent(
            "RRULE:FREQ=WEEKLY",
            start="DTSTART:20261026T140000Z",
            end="DTEND:20261026T150000Z",
        ),
        vevent(uid="floating", start="DTSTART:20261204T080000", end="DTEND:20261204T083000"),
        header=("X-WR-TIMEZONE:America/Chicago",),
    )
    window = Interval(utc(2026, 10, 26), utc(2026, 11, 10))
    found = blocks(data, zone="Europe/London", window=window)
    assert [b.start for b in found] == [
        utc(2026, 10, 26, 14),
        utc(2026, 11, 2, 15),
        utc(2026, 11, 9, 15),
    ]
    # A floating time in such an export is the calendar's zone, not the reader's.
    december = blocks(
        data, zone="Europe/London", window=Interval(utc(2026, 12, 4), utc(2026, 12, 5))
    )
    assert [b.start for b in december] == [utc(2026, 12, 4, 14)]


def test_bad_x_wr_timezone_is_a_data_error_naming_the_source() -> None:
    data = ics(vevent(), header=("X-WR-TIMEZONE:Mars/Olympus_Mons",))
    with pytest.raises(CalendarDataError, match=r"test\.ics"):
        blocks(data)


# ---------------------------------------------------------------- recurrence


RECURRING = ics(
    vevent(
        "SUMMARY:Standup",
        "RRULE:FREQ=WEEKLY;BYDAY=MO,WE",
        "EXDATE;TZID=Europe/London:20261207T093000",
        uid="standup",
        start="DTSTART;TZID=Europe/London:20261130T093000",
        end="DTEND;TZID=Europe/London:20261130T094500",
    ),
    vevent(
        "SUMMARY:Standup (moved)",
        "RECURRENCE-ID;TZID=Europe/London:20261209T093000",
        "X-MICROSOFT-CDO-BUSYSTATUS:TENTATIVE",
        uid="standup",
        start="DTSTART;TZID=Europe/London:20261209T160000",
        end="DTEND;TZID=Europe/London:20261209T163000",
    ),
)


def test_recurrence_with_exdate_and_recurrence_id_override() -> None:
    found = blocks(RECURRING, window=Interval(utc(2026, 11, 30), utc(2026, 12, 15)))
    assert [(b.start, b.end) for b in found] == [
        (utc(2026, 11, 30, 9, 30), utc(2026, 11, 30, 9, 45)),
        (utc(2026, 12, 2, 9, 30), utc(2026, 12, 2, 9, 45)),
        # 2026-12-07 is excluded; 2026-12-09 moved to the afternoon and turned tentative
        (utc(2026, 12, 9, 16), utc(2026, 12, 9, 16, 30)),
        (utc(2026, 12, 14, 9, 30), utc(2026, 12, 14, 9, 45)),
    ]
    assert [b.show_as for b in found] == [ShowAs.BUSY, ShowAs.BUSY, ShowAs.TENTATIVE, ShowAs.BUSY]


def test_range_thisandfuture_moves_the_rest_of_the_series() -> None:
    data = ics(
        vevent(
            "RRULE:FREQ=DAILY;COUNT=5",
            uid="daily",
            start="DTSTART:20261201T100000Z",
            end="DTEND:20261201T110000Z",
        ),
        vevent(
            "RECURRENCE-ID;RANGE=THISANDFUTURE:20261203T100000Z",
            uid="daily",
            start="DTSTART:20261203T130000Z",
            end="DTEND:20261203T140000Z",
        ),
    )
    hours = [b.start.hour for b in blocks(data)]
    assert hours == [10, 10, 13, 13, 13]


def test_cancelled_instance_of_a_series_keeps_its_status() -> None:
    data = ics(
        vevent("RRULE:FREQ=DAILY;COUNT=3", uid="s"),
        vevent(
            "RECURRENCE-ID:20261202T100000Z",
            "STATUS:CANCELLED",
            uid="s",
            start="DTSTART:20261202T100000Z",
            end="DTEND:20261202T110000Z",
        ),
    )
    assert [b.status for b in blocks(data)] == [
        EventStatus.CONFIRMED,
        EventStatus.CANCELLED,
        EventStatus.CONFIRMED,
    ]


def test_more_instances_than_the_limit_raise_naming_the_file() -> None:
    data = ics(vevent("RRULE:FREQ=DAILY"))
    assert len(blocks(data, max_instances=30)) == 30  # December 1..30: exactly at the limit
    with pytest.raises(CalendarDataError, match=r"test\.ics.*more than 29 .*max_instances"):
        blocks(data, max_instances=29)


def test_a_runaway_rule_is_refused_quickly() -> None:
    data = ics(vevent("RRULE:FREQ=SECONDLY", end="DTEND:20261201T100001Z"))
    started = time_module.monotonic()
    with pytest.raises(CalendarDataError):
        blocks(data, max_instances=1000)
    assert time_module.monotonic() - started < 5


@pytest.mark.parametrize("with_uid", [True, False])
def test_a_dense_rule_within_the_step_budget_is_refused_at_the_instance_limit(
    with_uid: bool,
) -> None:
    # 1440 matches a day: few dateutil steps, many instances; expansion stops after a day.
    rule = (
        "RRULE:FREQ=DAILY;BYHOUR="
        + ",".join(map(str, range(24)))
        + ";BYMINUTE="
        + ",".join(map(str, range(60)))
    )
    data = ics(vevent(rule, end="DTEND:20261201T100100Z"))
    if not with_uid:
        data = data.replace(b"UID:e1\r\n", b"")
    started = time_module.monotonic()
    with pytest.raises(CalendarDataError, match="max_instances"):
        blocks(data, max_instances=1000)
    assert time_module.monotonic() - started < 5


def test_chunked_expansion_returns_each_instance_once() -> None:
    # Instances crossing midnight straddle the chunk edges of the dense (chunked) path.
    data = ics(
        vevent(
            "RRULE:FREQ=DAILY;BYHOUR=23",
            start="DTSTART:20261101T230000Z",
            end="DTEND:20261102T010000Z",
        )
    )
    chunked = blocks(data, zone="UTC", max_instances=32)  # the bound (33) exceeds the limit
    plain = blocks(data, zone="UTC", max_instances=1000)
    assert chunked == plain
    assert len(plain) == 31  # Nov 30 23:00 reaches into the window; Dec 30 23:00 is the last


# ---------------------------------------------------------------- window and skipping


def test_blocks_are_clipped_to_the_window() -> None:
    event = vevent(start="DTSTART:20261201T080000Z", end="DTEND:20261201T120000Z")
    block = one(ics(event), window=Interval(utc(2026, 12, 1, 10), utc(2026, 12, 1, 11)))
    assert (block.start, block.end) == (utc(2026, 12, 1, 10), utc(2026, 12, 1, 11))


def test_events_only_touching_the_window_are_left_out() -> None:
    data = ics(
        vevent(uid="before", start="DTSTART:20261201T090000Z", end="DTEND:20261201T100000Z"),
        vevent(uid="inside", start="DTSTART:20261201T100000Z", end="DTEND:20261201T103000Z"),
        vevent(uid="after", start="DTSTART:20261201T110000Z", end="DTEND:20261201T120000Z"),
    )
    found = blocks(data, window=Interval(utc(2026, 12, 1, 10), utc(2026, 12, 1, 11)))
    assert [(b.start, b.end) for b in found] == [(utc(2026, 12, 1, 10), utc(2026, 12, 1, 10, 30))]


def test_zero_duration_events_are_skipped() -> None:
    data = ics(
        vevent(uid="no-end", end=None),
        vevent(uid="same", end="DTEND:20261201T100000Z"),
        vevent(uid="real", start="DTSTART:20261202T100000Z", end="DTEND:20261202T110000Z"),
    )
    assert [b.start for b in blocks(data)] == [utc(2026, 12, 2, 10)]


def test_end_before_start_blocks_the_time_between_them() -> None:
    # recurring-ical-events swaps DTSTART and DTEND here (its issue 132): the safe reading.
    block = one(ics(vevent(start="DTSTART:20261201T110000Z", end="DTEND:20261201T100000Z")))
    assert (block.start, block.end) == (utc(2026, 12, 1, 10), utc(2026, 12, 1, 11))


def test_todos_and_journals_are_ignored() -> None:
    todo = (
        "BEGIN:VTODO\nUID:t\nDTSTAMP:20260901T000000Z\nDTSTART:20261201T100000Z\n"
        "DUE:20261201T120000Z\nEND:VTODO"
    )
    journal = (
        "BEGIN:VJOURNAL\nUID:j\nDTSTAMP:20260901T000000Z\nDTSTART:20261201T100000Z\nEND:VJOURNAL"
    )
    assert blocks(ics(todo, journal)) == []


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"this is not a calendar",
        b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:x\r\n",
        ics(vevent(start="DTSTART:2026-12-01")),
        ics("BEGIN:VEVENT\nUID:no-start\nEND:VEVENT"),
        ics(vevent("RRULE:FREQ=SOMETIMES")),
    ],
    ids=["empty", "prose", "truncated", "bad-date", "no-dtstart", "bad-rrule"],
)
def test_broken_data_is_a_calendar_data_error_naming_the_source(data: bytes) -> None:
    with pytest.raises(CalendarDataError) as caught:
        blocks(data)
    assert caught.value.source == "test.ics"
    assert "test.ics" in str(caught.value)


# ---------------------------------------------------------------- the directory


def person(email: str, zone: str = "Europe/London") -> Person:
    return Person(email, email.split("@")[0].title(), zone)


def test_directory_reads_each_persons_file_and_reports_the_others(tmp_path: Path) -> None:
    (tmp_path / "good@corp.example.ics").write_bytes(ics(vevent()))
    (tmp_path / "broken@corp.example.ics").write_bytes(b"BEGIN:VCALENDAR\r\ngarbage\r\n")
    directory = IcsDirectory(tmp_path)
    people = (
        person("good@corp.example"),
        person("broken@corp.example"),
        person("nobody@corp.example"),
    )
    result = directory.busy(BusyQuery(window=DEC, people=people))
    assert [b.start for b in result.blocks["good@corp.example"]] == [utc(2026, 12, 1, 10)]
    assert result.unavailable["nobody@corp.example"] == (
        "calendar unavailable: no file nobody@corp.example.ics"
    )
    reason = result.unavailable["broken@corp.example"]
    assert "broken@corp.example.ics" in reason
    assert "Traceback" not in reason
    assert set(result.blocks) == {"good@corp.example"}


def test_directory_finds_files_case_insensitively(tmp_path: Path) -> None:
    (tmp_path / "mixed@corp.example.ics").write_bytes(ics(vevent()))
    result = IcsDirectory(tmp_path).busy(BusyQuery(DEC, (person("Mixed@Corp.Example"),)))
    assert len(result.blocks["Mixed@Corp.Example"]) == 1


def test_directory_refuses_files_over_the_size_limit(tmp_path: Path) -> None:
    (tmp_path / "big@corp.example.ics").write_bytes(ics(vevent("DESCRIPTION:" + "x" * 2000)))
    directory = IcsDirectory(tmp_path, limits=Limits(ics_max_bytes=1000))
    result = directory.busy(BusyQuery(DEC, (person("big@corp.example"),)))
    assert "ics_max_bytes" in result.unavailable["big@corp.example"]


def test_directory_applies_max_instances_from_limits(tmp_path: Path) -> None:
    (tmp_path / "busy@corp.example.ics").write_bytes(ics(vevent("RRULE:FREQ=HOURLY")))
    directory = IcsDirectory(tmp_path, limits=Limits(max_instances=100))
    result = directory.busy(BusyQuery(DEC, (person("busy@corp.example"),)))
    assert "max_instances" in result.unavailable["busy@corp.example"]


def test_directory_reports_a_bad_zone_instead_of_failing(tmp_path: Path) -> None:
    (tmp_path / "z@corp.example.ics").write_bytes(ics(vevent()))
    result = IcsDirectory(tmp_path).busy(
        BusyQuery(DEC, (person("z@corp.example", "Nowhere/Land"),))
    )
    assert "Nowhere/Land" in result.unavailable["z@corp.example"]


@pytest.mark.parametrize("email", ["../etc/passwd", ".hidden@corp.example"])
def test_directory_never_reads_outside_itself(tmp_path: Path, email: str) -> None:
    result = IcsDirectory(tmp_path / "cal").busy(BusyQuery(DEC, (person(email),)))
    assert "cannot name a calendar file" in result.unavailable[email]


# ---------------------------------------------------------------- organic contact


def meeting(uid: str, day: int, *props: str, hour: int = 10) -> str:
    return vevent(
        *props,
        uid=uid,
        start=f"DTSTART:202611{day:02d}T{hour:02d}0000Z",
        end=f"DTEND:202611{day:02d}T{hour:02d}3000Z",
    )


SAM, KIM, LEE = "sam@corp.example", "kim@corp.example", "lee@corp.example"

CONTACTS = ics(
    # Sam: met twice; the later one counts.
    meeting("s1", 2, f"ORGANIZER:mailto:{OWNER}", f"ATTENDEE;PARTSTAT=ACCEPTED:mailto:{SAM}"),
    meeting("s2", 9, f"ORGANIZER:mailto:{SAM}", f"ATTENDEE;PARTSTAT=ACCEPTED:mailto:{OWNER}"),
    # A later meeting with Sam that Sam declined, one the owner declined, one cancelled.
    meeting("s3", 16, f"ORGANIZER:mailto:{OWNER}", f"ATTENDEE;PARTSTAT=DECLINED:mailto:{SAM}"),
    meeting("s4", 17, f"ORGANIZER:mailto:{SAM}", f"ATTENDEE;PARTSTAT=DECLINED:mailto:{OWNER}"),
    meeting("s5", 18, "STATUS:CANCELLED", f"ORGANIZER:mailto:{OWNER}", f"ATTENDEE:mailto:{SAM}"),
    # Kim: a group meeting organised by someone else, both attending (unanswered counts).
    meeting(
        "k1",
        5,
        f"ORGANIZER:mailto:{LEE}",
        f"ATTENDEE;PARTSTAT=ACCEPTED:mailto:{OWNER}",
        f"ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:{KIM.upper()}",
    ),
    # Lee organised a meeting the owner is not part of (copied into the owner's file).
    meeting("l1", 6, f"ORGANIZER:mailto:{LEE}", f"ATTENDEE;PARTSTAT=ACCEPTED:mailto:{KIM}"),
    # Kim again, but after "until": not yet contact.
    meeting("k2", 25, f"ORGANIZER:mailto:{OWNER}", f"ATTENDEE;PARTSTAT=ACCEPTED:mailto:{KIM}"),
)


def test_last_contacts_rules(tmp_path: Path) -> None:
    (tmp_path / f"{OWNER}.ics").write_bytes(CONTACTS)
    found = IcsDirectory(tmp_path).last_contacts(
        person(OWNER), [SAM, "Kim@Corp.Example", LEE], utc(2026, 11, 1), utc(2026, 11, 20)
    )
    assert found == {
        SAM: utc(2026, 11, 9, 10, 30),
        "Kim@Corp.Example": utc(2026, 11, 5, 10, 30),
        LEE: utc(2026, 11, 5, 10, 30),  # Lee organised k1 with the owner attending
    }


def test_last_contacts_counts_meetings_that_ended_in_range(tmp_path: Path) -> None:
    (tmp_path / f"{OWNER}.ics").write_bytes(CONTACTS)
    directory = IcsDirectory(tmp_path)
    # until in the middle of s2 (10:00–10:30 on the 9th): s2 is still going on, s1 counts.
    found = directory.last_contacts(
        person(OWNER), [SAM], utc(2026, 11, 1), utc(2026, 11, 9, 10, 15)
    )
    assert found == {SAM: utc(2026, 11, 2, 10, 30)}
    assert directory.last_contacts(person(OWNER), [SAM], utc(2026, 11, 3), utc(2026, 11, 8)) == {}
    # s1 (10:00–10:30 on the 2nd) began before since and ended after it: it counts, as on
    # Google and Graph; one that ended exactly at since does not.
    late = directory.last_contacts(person(OWNER), [SAM], utc(2026, 11, 2, 10, 15), utc(2026, 11, 8))
    assert late == {SAM: utc(2026, 11, 2, 10, 30)}
    at_since = utc(2026, 11, 2, 10, 30)
    assert directory.last_contacts(person(OWNER), [SAM], at_since, utc(2026, 11, 8)) == {}


def test_last_contacts_recurring_meetings_count_per_instance(tmp_path: Path) -> None:
    weekly = vevent(
        "RRULE:FREQ=WEEKLY",
        f"ORGANIZER:mailto:{OWNER}",
        f"ATTENDEE;PARTSTAT=ACCEPTED:mailto:{SAM}",
        start="DTSTART:20261102T100000Z",
        end="DTEND:20261102T110000Z",
    )
    (tmp_path / f"{OWNER}.ics").write_bytes(ics(weekly))
    found = IcsDirectory(tmp_path).last_contacts(
        person(OWNER), [SAM], utc(2026, 9, 1), utc(2026, 11, 20)
    )
    assert found == {SAM: utc(2026, 11, 16, 11)}


def test_last_contacts_without_the_owners_file_is_loud(tmp_path: Path) -> None:
    with pytest.raises(CalendarUnavailable, match="no file"):
        IcsDirectory(tmp_path).last_contacts(person(OWNER), [SAM], utc(2026, 1, 1), utc(2026, 2, 1))


# ---------------------------------------------------------------- feeds over loopback HTTP

FEED_BODY = ics(vevent("SUMMARY:From the feed"))


class _FeedHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # quiet test output
        pass

    def _send(self, status: int, body: bytes, **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/calendar")
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        if path == "/owner.ics":
            self._send(200, FEED_BODY)
        elif path == "/moved.ics":
            self.send_response(302)
            self.send_header("Location", "/owner.ics")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif path == "/forbidden.ics":
            self._send(403, b"no")
        elif path == "/boom.ics":
            self._send(503, b"down")
        elif path == "/slow-down.ics":
            self._send(429, b"", Retry_After="7")
        elif path == "/slow-down-until.ics":
            self._send(429, b"", Retry_After="Tue, 06 May 2031 09:00:30 GMT")
        elif path == "/big.ics":
            self._send(200, FEED_BODY + b"X" * 5000)
        elif path == "/big-chunked.ics":
            # No Content-Length: the limit must hold while streaming.
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for _ in range(10):
                chunk = b"Y" * 1000
                self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        elif path == "/slow.ics":
            time_module.sleep(1.0)
            self._send(200, FEED_BODY)
        else:
            self._send(404, b"not found")


@pytest.fixture
def feed_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FeedHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def feed(urls: dict[str, str], **kwargs: object) -> IcsFeed:
    return IcsFeed(urls, **kwargs)  # type: ignore[arg-type]


def test_feed_reads_busy_blocks_over_http(feed_server: str) -> None:
    source = feed({OWNER: f"{feed_server}/owner.ics", OTHER: f"{feed_server}/moved.ics"})
    try:
        result = source.busy(BusyQuery(DEC, (person(OWNER), person(OTHER, "Asia/Tokyo"))))
    finally:
        source.close()
    assert result.unavailable == {}
    assert [b.start for b in result.blocks[OWNER]] == [utc(2026, 12, 1, 10)]
    assert [b.start for b in result.blocks[OTHER]] == [utc(2026, 12, 1, 10)]


def test_feed_permanent_failures_are_reported_per_person(feed_server: str) -> None:
    source = feed(
        {
            OWNER: f"{feed_server}/owner.ics",
            "gone@corp.example": f"{feed_server}/gone.ics",
            "secret@corp.example": f"{feed_server}/forbidden.ics?token=s3cret",
        }
    )
    people = (
        person(OWNER),
        person("gone@corp.example"),
        person("secret@corp.example"),
        person("nourl@corp.example"),
    )
    result = source.busy(BusyQuery(DEC, people))
    source.close()
    assert len(result.blocks[OWNER]) == 1
    assert "HTTP 404" in result.unavailable["gone@corp.example"]
    assert "HTTP 403" in result.unavailable["secret@corp.example"]
    assert "s3cret" not in result.unavailable["secret@corp.example"]
    assert "no ICS feed URL" in result.unavailable["nourl@corp.example"]


def test_feed_errors_map_to_the_error_tree(feed_server: str) -> None:
    source = feed({}, timeout_s=0.3)
    with pytest.raises(CalendarUnavailable) as gone:
        source.fetch(f"{feed_server}/gone.ics")
    assert gone.value.status == 404
    assert gone.value.provider == "ics"
    with pytest.raises(ProviderUnavailable) as down:
        source.fetch(f"{feed_server}/boom.ics")
    assert down.value.status == 503
    assert down.value.transient
    with pytest.raises(RateLimited) as limited:
        source.fetch(f"{feed_server}/slow-down.ics")
    assert limited.value.retry_after_s == 7.0
    with pytest.raises(ProviderUnavailable, match="timed out"):
        source.fetch(f"{feed_server}/slow.ics")
    source.close()


def test_feed_rate_limit_with_an_http_date_counts_from_the_injected_clock(
    feed_server: str,
) -> None:
    # Years from the wall clock: a parser reading datetime.now() would be far off.
    source = feed({}, clock=FixedClock(utc(2031, 5, 6, 9)))
    with pytest.raises(RateLimited) as limited:
        source.fetch(f"{feed_server}/slow-down-until.ics")
    source.close()
    assert limited.value.retry_after_s == 30.0


def test_feed_transient_failure_fails_the_read(feed_server: str) -> None:
    source = feed({OWNER: f"{feed_server}/boom.ics"})
    with pytest.raises(ProviderUnavailable):
        source.busy(BusyQuery(DEC, (person(OWNER),)))
    source.close()


def test_feed_connection_refused_is_transient() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    source = feed({})
    with pytest.raises(ProviderUnavailable):
        source.fetch(f"http://127.0.0.1:{port}/owner.ics")
    source.close()


@pytest.mark.parametrize("path", ["/big.ics", "/big-chunked.ics"])
def test_feed_larger_than_the_limit_is_refused_naming_the_url(feed_server: str, path: str) -> None:
    source = feed({OWNER: f"{feed_server}{path}"}, limits=Limits(ics_max_bytes=4000))
    with pytest.raises(CalendarDataError, match=r"ics_max_bytes") as caught:
        source.fetch(f"{feed_server}{path}")
    assert caught.value.source == f"{feed_server}{path}"
    result = source.busy(BusyQuery(DEC, (person(OWNER),)))
    assert path in result.unavailable[OWNER]
    source.close()


def test_feed_within_the_limit_is_read(feed_server: str) -> None:
    source = feed({}, limits=Limits(ics_max_bytes=len(FEED_BODY)))
    assert source.fetch(f"{feed_server}/owner.ics") == FEED_BODY
    source.close()


def test_redact_url_drops_secrets() -> None:
    assert redact_url("https://user:pw@cal.example:8443/a/b.ics?key=1#x") == (
        "https://cal.example:8443/a/b.ics"
    )
