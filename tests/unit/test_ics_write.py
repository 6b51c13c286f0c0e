"""Write side of the ICS connector: booking, idempotency, cancelling, answers, concurrency."""

from __future__ import annotations

import stat
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import icalendar
import pytest

from connectors.ical_common import event_uid
from connectors.ics import IcsDirectory
from scheduler.core.clock import FixedClock
from scheduler.core.errors import CalendarUnavailable, ResourceGone
from scheduler.core.intervals import Interval
from scheduler.core.model import AttendeeStatus, BusyQuery, EventDraft, Person, ShowAs

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
ALEX = Person("alex@corp.example", "Alex Doe", "Europe/London")
SAM = Person("sam@corp.example", "Sam Lee", "America/New_York")
START = datetime(2027, 3, 2, 14, 0, tzinfo=UTC)
EXISTING = b"""BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//someone else//EN\r
BEGIN:VEVENT\r
UID:existing-1@corp.example\r
DTSTAMP:20260901T000000Z\r
DTSTART:20270302T090000Z\r
DTEND:20270302T100000Z\r
SUMMARY:Already there\r
RRULE:FREQ=WEEKLY\r
END:VEVENT\r
END:VCALENDAR\r
"""


def draft(key: str = "meeting-1", start: datetime = START, attendee: Person = SAM) -> EventDraft:
    return EventDraft(
        idempotency_key=key,
        organizer=ALEX,
        attendee=attendee,
        start=start,
        end=start + timedelta(minutes=30),
        title="Coffee: Alex / Sam",
        description="A 30-minute catch-up.",
        location="Level 2 café",
    )


@pytest.fixture
def root(tmp_path: Path) -> Path:
    for person in (ALEX, SAM):
        (tmp_path / f"{person.email}.ics").write_bytes(EXISTING)
    return tmp_path


@pytest.fixture
def directory(root: Path) -> IcsDirectory:
    return IcsDirectory(root, clock=FixedClock(NOW))


def events(path: Path, uid: str | None = None) -> list[icalendar.Component]:
    calendar = icalendar.Calendar.from_ical(path.read_bytes())
    return [e for e in calendar.walk("VEVENT") if uid is None or str(e["UID"]) == uid]


def only(path: Path, uid: str) -> icalendar.Component:
    found = events(path, uid)
    assert len(found) == 1, found
    return found[0]


def test_create_writes_both_copies_and_an_itip_request(root: Path, directory: IcsDirectory) -> None:
    created = directory.create_event(draft())
    uid = "meeting-1@goodwill"
    assert (created.provider_event_id, created.created) == (uid, True)
    assert event_uid("meeting-1") == uid

    organizer_file = root / "alex@corp.example.ics"
    event = only(organizer_file, uid)
    assert str(event["ORGANIZER"]) == "mailto:alex@corp.example"
    attendee = event["ATTENDEE"]
    assert str(attendee) == "mailto:sam@corp.example"
    assert attendee.params["PARTSTAT"] == "NEEDS-ACTION"
    assert attendee.params["RSVP"] == "TRUE"
    assert str(event["SUMMARY"]) == "Coffee: Alex / Sam"
    assert str(event["DESCRIPTION"]) == "A 30-minute catch-up."
    assert str(event["LOCATION"]) == "Level 2 café"
    assert event["DTSTART"].params["TZID"] == "Europe/London"
    assert event.decoded("DTSTART") == START
    assert event.decoded("DTEND") == START + timedelta(minutes=30)
    assert event.decoded("SEQUENCE") == 0
    assert event.decoded("DTSTAMP") == NOW
    assert str(event["X-GOODWILL-KEY"]) == "meeting-1"
    calendar = icalendar.Calendar.from_ical(organizer_file.read_bytes())
    assert [tz.tz_name for tz in calendar.timezones] == ["Europe/London"]
    # The events already there are kept intact.
    kept = only(organizer_file, "existing-1@corp.example")
    assert kept["RRULE"].to_ical() == b"FREQ=WEEKLY"
    assert str(kept["SUMMARY"]) == "Already there"

    attendee_copy = only(root / "sam@corp.example.ics", uid)
    assert attendee_copy.to_ical() == event.to_ical()
    assert len(events(root / "sam@corp.example.ics")) == 2

    message = (root / "outbox" / f"{uid}.ics").read_bytes()
    assert message.count(b"\n") == message.count(b"\r\n")  # CRLF only
    itip = icalendar.Calendar.from_ical(message)
    assert str(itip["METHOD"]) == "REQUEST"
    assert [str(e["UID"]) for e in itip.walk("VEVENT")] == [uid]
    assert [tz.tz_name for tz in itip.timezones] == ["Europe/London"]


def test_create_twice_writes_nothing_the_second_time(root: Path, directory: IcsDirectory) -> None:
    first = directory.create_event(draft())
    snapshot = {p: p.read_bytes() for p in root.rglob("*.ics")}
    second = directory.create_event(draft())
    assert second.provider_event_id == first.provider_event_id
    assert second.created is False
    assert {p: p.read_bytes() for p in root.rglob("*.ics")} == snapshot
    assert len(events(root / "alex@corp.example.ics", first.provider_event_id)) == 1
    assert len(events(root / "sam@corp.example.ics", first.provider_event_id)) == 1
    assert len(list((root / "outbox").iterdir())) == 1


def test_retry_after_a_crash_replaces_the_half_written_attendee_copy(
    root: Path, directory: IcsDirectory
) -> None:
    # A crash after the attendee's copy was written but before the organizer's: the retry
    # finds no organizer copy, books again, and the attendee still has one copy.
    directory.create_event(draft())
    organizer_file = root / "alex@corp.example.ics"
    organizer_file.write_bytes(EXISTING)
    again = directory.create_event(draft())
    assert again.created is True
    assert len(events(root / "sam@corp.example.ics", again.provider_event_id)) == 1
    assert len(events(organizer_file, again.provider_event_id)) == 1


def test_attendee_without_a_file_gets_no_file(root: Path, directory: IcsDirectory) -> None:
    dana = Person("dana@corp.example", "Dana Fox", "Europe/London")
    created = directory.create_event(draft(attendee=dana))
    assert not (root / "dana@corp.example.ics").exists()
    assert len(events(root / "alex@corp.example.ics", created.provider_event_id)) == 1
    assert (root / "outbox" / f"{created.provider_event_id}.ics").exists()
    # The organizer's copy stands in for the answer.
    state = directory.event_state(ALEX, created.provider_event_id, dana.email)
    assert state.response is AttendeeStatus.NEEDS_ACTION


def test_rewriting_a_calendar_keeps_its_file_mode(root: Path, directory: IcsDirectory) -> None:
    # A site that syncs calendars to disk may let another account read them (0640 here); the
    # atomic rewrite once left every file it touched at the temporary file's 0600.
    for person in (ALEX, SAM):
        (root / f"{person.email}.ics").chmod(0o640)
    directory.create_event(draft())
    for person in (ALEX, SAM):
        assert stat.S_IMODE((root / f"{person.email}.ics").stat().st_mode) == 0o640
    assert not [p for p in root.iterdir() if p.name.endswith(".tmp")]


def test_organizer_without_a_file_gets_one(tmp_path: Path) -> None:
    directory = IcsDirectory(tmp_path, clock=FixedClock(NOW))
    created = directory.create_event(draft())
    assert len(events(tmp_path / "alex@corp.example.ics")) == 1
    assert created.created is True


def test_a_broken_organizer_file_is_never_overwritten(root: Path, directory: IcsDirectory) -> None:
    broken = b"BEGIN:VCALENDAR\r\nthis is not ical\r\n"
    (root / "alex@corp.example.ics").write_bytes(broken)
    with pytest.raises(CalendarUnavailable, match=r"alex@corp\.example\.ics"):
        directory.create_event(draft())
    assert (root / "alex@corp.example.ics").read_bytes() == broken
    assert not (root / "outbox").exists()


def test_booked_event_shows_on_both_busy_reads(directory: IcsDirectory) -> None:
    directory.create_event(draft())
    window = Interval(START - timedelta(hours=1), START + timedelta(hours=1))
    result = directory.busy(BusyQuery(window, (ALEX, SAM)))
    [mine] = result.blocks[ALEX.email]
    [theirs] = result.blocks[SAM.email]
    assert (mine.start, mine.end) == (START, START + timedelta(minutes=30))
    assert mine.response is AttendeeStatus.ORGANIZER
    assert theirs.response is AttendeeStatus.NEEDS_ACTION


def test_cancel_marks_both_copies_and_queues_a_cancel(root: Path, directory: IcsDirectory) -> None:
    uid = directory.create_event(draft()).provider_event_id
    directory.cancel_event(ALEX, uid)
    for name in ("alex@corp.example.ics", "sam@corp.example.ics"):
        event = only(root / name, uid)
        assert str(event["STATUS"]) == "CANCELLED"
        assert event.decoded("SEQUENCE") == 1
    cancel = icalendar.Calendar.from_ical((root / "outbox" / f"{uid}.cancel.ics").read_bytes())
    assert str(cancel["METHOD"]) == "CANCEL"
    [message_event] = cancel.walk("VEVENT")
    assert message_event.decoded("SEQUENCE") == 1
    assert str(message_event["STATUS"]) == "CANCELLED"
    # The request is still in the outbox: a mail sender sends both, in order.
    assert (root / "outbox" / f"{uid}.ics").exists()

    snapshot = (root / "alex@corp.example.ics").read_bytes()
    directory.cancel_event(ALEX, uid)  # again: done already, nothing changes
    assert (root / "alex@corp.example.ics").read_bytes() == snapshot
    state = directory.event_state(ALEX, uid, SAM.email)
    assert state.cancelled is True


def test_cancel_of_an_unknown_event_counts_as_done(root: Path, directory: IcsDirectory) -> None:
    directory.cancel_event(ALEX, "never-booked@goodwill")
    directory.cancel_event(Person("nofile@corp.example", "No File", "UTC"), "x@goodwill")
    assert not (root / "outbox").exists()


@pytest.mark.parametrize(
    "answer", [AttendeeStatus.ACCEPTED, AttendeeStatus.DECLINED, AttendeeStatus.TENTATIVE]
)
def test_event_state_after_the_attendee_answers(
    root: Path, directory: IcsDirectory, answer: AttendeeStatus
) -> None:
    uid = directory.create_event(draft()).provider_event_id
    before = directory.event_state(ALEX, uid, SAM.email)
    assert before.response is AttendeeStatus.NEEDS_ACTION
    assert before.cancelled is False
    assert (before.start, before.end) == (START, START + timedelta(minutes=30))
    assert before.start.tzinfo is UTC

    directory.respond(SAM.email, uid, answer)
    assert directory.event_state(ALEX, uid, SAM.email).response is answer
    partstat = {
        AttendeeStatus.ACCEPTED: "ACCEPTED",
        AttendeeStatus.DECLINED: "DECLINED",
        AttendeeStatus.TENTATIVE: "TENTATIVE",
    }[answer]
    for name in ("alex@corp.example.ics", "sam@corp.example.ics"):
        assert only(root / name, uid)["ATTENDEE"].params["PARTSTAT"] == partstat


def test_the_attendees_own_copy_decides_their_answer(root: Path, directory: IcsDirectory) -> None:
    uid = directory.create_event(draft()).provider_event_id
    # The attendee answered in their client; the REPLY has not reached the organizer yet.
    path = root / "sam@corp.example.ics"
    calendar = icalendar.Calendar.from_ical(path.read_bytes())
    for event in calendar.walk("VEVENT"):
        if str(event["UID"]) == uid:
            event["ATTENDEE"].params["PARTSTAT"] = "DECLINED"
    path.write_bytes(calendar.to_ical())
    assert directory.event_state(ALEX, uid, SAM.email).response is AttendeeStatus.DECLINED


def test_a_moved_event_shows_its_new_times(root: Path, directory: IcsDirectory) -> None:
    uid = directory.create_event(draft()).provider_event_id
    path = root / "alex@corp.example.ics"
    calendar = icalendar.Calendar.from_ical(path.read_bytes())
    later = START + timedelta(days=1, hours=2)
    for event in calendar.walk("VEVENT"):
        if str(event["UID"]) == uid:
            event.pop("DTSTART")
            event.pop("DTEND")
            event.add("DTSTART", later)
            event.add("DTEND", later + timedelta(minutes=45))
    path.write_bytes(calendar.to_ical())
    state = directory.event_state(ALEX, uid, SAM.email)
    assert (state.start, state.end) == (later, later + timedelta(minutes=45))


def test_event_state_of_an_unknown_or_deleted_event_is_gone(
    root: Path, directory: IcsDirectory
) -> None:
    with pytest.raises(ResourceGone):
        directory.event_state(ALEX, "never-booked@goodwill", SAM.email)
    uid = directory.create_event(draft()).provider_event_id
    # The organizer deleted the event in their client: gone, whatever the attendee's copy says.
    (root / "alex@corp.example.ics").write_bytes(EXISTING)
    with pytest.raises(ResourceGone):
        directory.event_state(ALEX, uid, SAM.email)


def test_event_state_with_a_broken_organizer_file_is_unavailable_not_gone(
    root: Path, directory: IcsDirectory
) -> None:
    uid = directory.create_event(draft()).provider_event_id
    (root / "alex@corp.example.ics").write_bytes(b"BEGIN:VCALENDAR\r\nnonsense\r\n")
    with pytest.raises(CalendarUnavailable, match=r"alex@corp\.example\.ics"):
        directory.event_state(ALEX, uid, SAM.email)


def test_respond_rejects_non_answers_and_unknown_events(directory: IcsDirectory) -> None:
    uid = directory.create_event(draft()).provider_event_id
    with pytest.raises(ValueError, match="not an attendee answer"):
        directory.respond(SAM.email, uid, AttendeeStatus.ORGANIZER)
    with pytest.raises(ResourceGone):
        directory.respond(SAM.email, "never-booked@goodwill", AttendeeStatus.ACCEPTED)
    with pytest.raises(ResourceGone):
        directory.respond("stranger@corp.example", uid, AttendeeStatus.ACCEPTED)


@pytest.mark.parametrize(
    "show_as", [ShowAs.BUSY, ShowAs.FREE, ShowAs.OOF, ShowAs.TENTATIVE, ShowAs.WORKING_ELSEWHERE]
)
def test_add_event_round_trips_show_as(tmp_path: Path, show_as: ShowAs) -> None:
    directory = IcsDirectory(tmp_path, clock=FixedClock(NOW))
    directory.add_event(SAM, START, START + timedelta(hours=1), show_as=show_as)
    window = Interval(START, START + timedelta(hours=2))
    [block] = directory.busy(BusyQuery(window, (SAM,))).blocks[SAM.email]
    assert block.show_as is show_as
    assert (block.start, block.end) == (START, START + timedelta(hours=1))


def test_concurrent_creates_neither_lose_nor_double_events(root: Path) -> None:
    # Eight workers, four meetings, each booked by two racing workers: four events, no loss.
    workers = 8
    barrier = threading.Barrier(workers)
    errors: list[BaseException] = []
    results: list[bool] = []

    def book(i: int) -> None:
        directory = IcsDirectory(root, clock=FixedClock(NOW))  # one per worker, as processes
        try:
            barrier.wait(timeout=10)
            created = directory.create_event(
                draft(f"race-{i % 4}", start=START + timedelta(hours=i % 4))
            )
            results.append(created.created)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=book, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert sorted(results) == [False] * 4 + [True] * 4
    for name in ("alex@corp.example.ics", "sam@corp.example.ics"):
        uids = sorted(str(e["UID"]) for e in events(root / name))
        assert uids == ["existing-1@corp.example"] + [f"race-{i}@goodwill" for i in range(4)]
    assert len(list((root / "outbox").iterdir())) == 4
    assert not list(root.rglob("*.tmp"))  # atomic writes leave no temporary files behind
