"""Contract env for the ICS directory connector: a temp directory of ``<email>.ics`` files."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import icalendar

from connectors.ics import IcsDirectory
from scheduler.core.model import AttendeeStatus, Person, ShowAs


class IcsEnv:
    """Both people have a file from the start, as two colleagues in one organisation would."""

    name = "ics"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.organizer = Person("org@corp.example", "Olive Organizer", "Europe/London")
        self.attendee = Person("att@corp.example", "Arthur Attendee", "America/New_York")
        self.extra_attendees = (
            Person("bea@corp.example", "Bea Second", "Asia/Kolkata"),
            Person("cy@corp.example", "Cy Third", "Europe/London"),
        )
        self.directory = IcsDirectory(root)
        for person in (self.organizer, self.attendee, *self.extra_attendees):
            empty = icalendar.Calendar()
            empty.add("PRODID", "-//goodwill tests//contract env//EN")
            empty.add("VERSION", "2.0")
            (root / f"{person.email}.ics").write_bytes(empty.to_ical())
        self.source = self.directory
        self.writer = self.directory
        self.responses = self.directory

    def seed_event(
        self, person: Person, start: datetime, end: datetime, *, show_as: ShowAs = ShowAs.BUSY
    ) -> None:
        self.directory.add_event(person, start, end, summary="Seeded", show_as=show_as)

    def respond(self, attendee_email: str, provider_event_id: str, status: AttendeeStatus) -> None:
        self.directory.respond(attendee_email, provider_event_id, status)

    def count_events(self, organizer_email: str) -> int:
        # Read the file with icalendar directly, independent of the connector's own parsing.
        calendar = icalendar.Calendar.from_ical((self.root / f"{organizer_email}.ics").read_bytes())
        return sum(
            1
            for event in calendar.walk("VEVENT")
            if "RECURRENCE-ID" not in event and str(event.get("STATUS", "")).upper() != "CANCELLED"
        )

    #: Our events carry X-GOODWILL-KEY, and the connector reads the files with full detail.
    owner_keys_hidden: str | None = None

    def count_creates(self, organizer_email: str) -> int:
        """Every event in the organizer's file, cancelled ones included."""
        calendar = icalendar.Calendar.from_ical((self.root / f"{organizer_email}.ics").read_bytes())
        return sum(1 for event in calendar.walk("VEVENT") if "RECURRENCE-ID" not in event)

    def updates_sent(self, attendee_email: str, provider_event_id: str) -> int:
        """iTIP REQUESTs for the event with SEQUENCE > 0 in the outbox, addressed to them."""
        outbox = self.root / "outbox"
        count = 0
        for path in sorted(outbox.glob("*.ics")) if outbox.is_dir() else []:
            message = icalendar.Calendar.from_ical(path.read_bytes())
            if str(message.get("METHOD", "")).upper() != "REQUEST":
                continue
            for event in message.walk("VEVENT"):
                attendees = event.get("ATTENDEE")
                listed = attendees if isinstance(attendees, list) else [attendees]
                if (
                    str(event.get("UID")) == provider_event_id
                    and int(event.get("SEQUENCE", 0)) > 0
                    and f"mailto:{attendee_email}".lower() in {str(a).lower() for a in listed}
                ):
                    count += 1
        return count

    def deliver_mail(self) -> None:
        """The connector writes the attendee's copy itself (their file exists)."""

    def invitations(self, provider_event_id: str) -> list[str]:
        """Attendees of the outbox REQUEST whose own file holds a copy of the event."""
        return self._reached(provider_event_id, "", cancelled=False)

    def cancellations(self, provider_event_id: str) -> list[str]:
        """Attendees of the outbox CANCEL whose own copy of the event is marked cancelled."""
        return self._reached(provider_event_id, ".cancel", cancelled=True)

    def _reached(self, uid: str, suffix: str, *, cancelled: bool) -> list[str]:
        message = self.root / "outbox" / f"{uid}{suffix}.ics"
        if not message.exists():
            return []
        reached = []
        for event in icalendar.Calendar.from_ical(message.read_bytes()).walk("VEVENT"):
            attendees = event.get("ATTENDEE")
            for attendee in attendees if isinstance(attendees, list) else [attendees]:
                email = str(attendee).lower().removeprefix("mailto:")
                own = self.root / f"{email}.ics"
                if not own.exists():
                    continue
                for copy in icalendar.Calendar.from_ical(own.read_bytes()).walk("VEVENT"):
                    status = str(copy.get("STATUS", "")).upper()
                    if str(copy.get("UID")) == uid and (status == "CANCELLED") == cancelled:
                        reached.append(email)
        return reached

    def close(self) -> None:
        """Nothing to stop: the directory lives in pytest's tmp_path."""


def make_env(tmp_path: Path) -> IcsEnv:
    root = tmp_path / "calendars"
    root.mkdir()
    return IcsEnv(root)
