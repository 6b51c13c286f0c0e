"""Every iCalendar connector reads an answer (PARTSTAT) the same way, from one table."""

from __future__ import annotations

from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from pathlib import Path

import icalendar
import pytest

from connectors.ical_common import (
    PARTSTAT_BY_STATUS,
    STATUS_BY_PARTSTAT,
    event_uid,
    parse_partstat,
)
from connectors.ics import IcsDirectory, last_contact_times, parse_busy_blocks
from connectors.imip import parse_reply
from scheduler.core.intervals import Interval
from scheduler.core.model import AttendeeStatus, Person

ORGANIZER = Person("olga@corp.example", "Olga Org", "Europe/London")
OWNER = "al@corp.example"
UID = "k1@goodwill"
DAY = Interval(datetime(2027, 3, 2, tzinfo=UTC), datetime(2027, 3, 3, tzinfo=UTC))

#: Every PARTSTAT RFC 5545 allows, in the letter cases calendars send, plus values it does not
#: define for VEVENT (VTODO-only, experimental, garbage), which count as NEEDS-ACTION.
EXPECTED: list[tuple[str, AttendeeStatus]] = [
    ("ACCEPTED", AttendeeStatus.ACCEPTED),
    ("TENTATIVE", AttendeeStatus.TENTATIVE),
    ("DECLINED", AttendeeStatus.DECLINED),
    ("DELEGATED", AttendeeStatus.DECLINED),  # handed the meeting on: they are not coming
    ("NEEDS-ACTION", AttendeeStatus.NEEDS_ACTION),
    ("accepted", AttendeeStatus.ACCEPTED),
    ("Delegated", AttendeeStatus.DECLINED),
    ("needs-action", AttendeeStatus.NEEDS_ACTION),
    ("COMPLETED", AttendeeStatus.NEEDS_ACTION),
    ("IN-PROCESS", AttendeeStatus.NEEDS_ACTION),
    ("X-MAYBE", AttendeeStatus.NEEDS_ACTION),
]


@pytest.mark.parametrize(("partstat", "expected"), EXPECTED)
def test_parse_partstat(partstat: str, expected: AttendeeStatus) -> None:
    assert parse_partstat(partstat) is expected


@pytest.mark.parametrize("absent", [None, ""])
def test_an_absent_partstat_is_needs_action(absent: str | None) -> None:
    assert parse_partstat(absent) is AttendeeStatus.NEEDS_ACTION  # RFC 5545 default


def test_the_table_holds_every_vevent_partstat() -> None:
    assert set(STATUS_BY_PARTSTAT) == {
        "ACCEPTED",
        "TENTATIVE",
        "DECLINED",
        "DELEGATED",
        "NEEDS-ACTION",
    }


def test_every_answer_is_written_and_reads_back_as_itself() -> None:
    answers = set(AttendeeStatus) - {AttendeeStatus.ORGANIZER}  # organizing is not an answer
    assert set(PARTSTAT_BY_STATUS) == answers
    for status, partstat in PARTSTAT_BY_STATUS.items():
        assert parse_partstat(partstat) is status
        assert partstat == partstat.upper()


def test_the_tables_cannot_be_changed_by_a_caller() -> None:
    with pytest.raises(TypeError):
        STATUS_BY_PARTSTAT["X-MAYBE"] = AttendeeStatus.ACCEPTED  # type: ignore[index]


def test_event_uid_is_the_key_at_goodwill() -> None:
    # Pinned: stored provider_event_ids and CalDAV resource names derive from it.
    assert event_uid("meeting-1") == "meeting-1@goodwill"
    assert event_uid("k/odd key") == "k/odd key@goodwill"


def _vcalendar(partstat: str, *, method: str | None = None) -> icalendar.Calendar:
    cal = icalendar.Calendar()
    cal.add("prodid", "-//Some Client//EN")
    cal.add("version", "2.0")
    if method:
        cal.add("method", method)
    event = icalendar.Event()
    event.add("uid", UID)
    event.add("dtstamp", datetime(2027, 3, 1, tzinfo=UTC))
    event.add("sequence", 0)
    event.add("dtstart", datetime(2027, 3, 2, 14, tzinfo=UTC))
    event.add("dtend", datetime(2027, 3, 2, 14, 30, tzinfo=UTC))
    event.add("organizer", f"mailto:{ORGANIZER.email}")
    who = icalendar.vCalAddress(f"mailto:{OWNER}")
    who.params["PARTSTAT"] = partstat
    event.add("attendee", who)
    cal.add_component(event)
    return cal


def _reply_mail(partstat: str) -> bytes:
    """An iMIP REPLY as an attendee's client sends it (RFC 6047, RFC 5546 §3.2.3)."""
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = OWNER, ORGANIZER.email, "Answer"
    mail.set_content("Answer.")
    mail.add_attachment(
        _vcalendar(partstat, method="REPLY").to_ical(),
        maintype="text",
        subtype="calendar",
        params={"method": "REPLY"},
    )
    return mail.as_bytes(policy=policy.SMTP)


def _ics_reader_status(partstat: str) -> AttendeeStatus:
    (block,) = parse_busy_blocks(
        _vcalendar(partstat).to_ical(),
        source="t.ics",
        owner_email=OWNER,
        zone="UTC",
        window=DAY,
        max_instances=10,
    )
    return block.response


def _ics_directory_status(tmp_path: Path, partstat: str) -> AttendeeStatus:
    (tmp_path / f"{ORGANIZER.email}.ics").write_bytes(_vcalendar(partstat).to_ical())
    return IcsDirectory(tmp_path).event_state(ORGANIZER, UID, OWNER).response


@pytest.mark.parametrize(("partstat", "expected"), EXPECTED)
def test_every_connector_reads_a_partstat_alike(
    tmp_path: Path, partstat: str, expected: AttendeeStatus
) -> None:
    assert _ics_reader_status(partstat) is expected
    assert _ics_directory_status(tmp_path, partstat) is expected
    assert parse_reply(_reply_mail(partstat)).partstat is expected


def test_imip_reply_delegated_is_what_the_ics_reader_says() -> None:
    # iMIP's own table once lacked DELEGATED and read it as NEEDS-ACTION.
    reply = parse_reply(_reply_mail("DELEGATED"))
    assert reply.partstat is _ics_reader_status("DELEGATED") is AttendeeStatus.DECLINED


@pytest.mark.parametrize(("partstat", "expected"), EXPECTED)
def test_organic_contact_reads_a_partstat_alike(partstat: str, expected: AttendeeStatus) -> None:
    # The contact reader once compared raw text with "DECLINED", so a delegated meeting counted.
    found = last_contact_times(
        _vcalendar(partstat).to_ical(),
        source="t.ics",
        owner_email=ORGANIZER.email,
        zone="UTC",
        emails=[OWNER],
        since=datetime(2027, 1, 1, tzinfo=UTC),
        until=datetime(2027, 4, 1, tzinfo=UTC),
        max_instances=10,
    )
    met = expected is not AttendeeStatus.DECLINED
    assert found == ({OWNER: datetime(2027, 3, 2, 14, 30, tzinfo=UTC)} if met else {})
