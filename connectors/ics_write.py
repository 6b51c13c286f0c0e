"""Writing iCalendar files safely: a locked directory of per-person ``.ics`` files and iTIP.

Used by :class:`connectors.ics.IcsDirectory`, the "writable local calendar" behind the demo and
the tests. Every change follows one recipe, under one exclusive ``fcntl.flock`` per directory:
parse the person's file with icalendar, change or add components, serialise, write a temporary
file next to it and ``os.replace`` it over the original — so a reader sees either the old or the
new file, never half of one, and concurrent workers (threads or processes) never interleave.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import icalendar

from connectors.attendees import invitees
from connectors.files import atomic_write
from connectors.ics_read import email_of
from scheduler.core.errors import CalendarDataError
from scheduler.core.model import EventDraft, ShowAs

__all__ = [
    "GOODWILL_KEY",
    "PRODID",
    "CalendarFiles",
    "attendee_emails",
    "build_invite",
    "find_event",
    "itip_message",
    "new_calendar",
    "remove_event",
    "reschedule",
    "seed_event",
    "set_partstat",
]

PRODID = "-//goodwill//ICS connector//EN"
#: Carries the meeting's idempotency key on every event goodwill writes.
GOODWILL_KEY = "X-GOODWILL-KEY"

_CDO_BY_SHOW_AS: dict[ShowAs, str] = {
    ShowAs.BUSY: "BUSY",
    ShowAs.FREE: "FREE",
    ShowAs.TENTATIVE: "TENTATIVE",
    ShowAs.OOF: "OOF",
    ShowAs.WORKING_ELSEWHERE: "WORKINGELSEWHERE",
}


class CalendarFiles:
    """A directory with one ``<email>.ics`` per person, an ``outbox/`` and a lock file.

    Args:
        root: the directory; it must exist.
    """

    LOCK_NAME = ".goodwill.lock"
    OUTBOX = "outbox"

    def __init__(self, root: Path) -> None:
        self.root = root

    def path_for(self, email: str) -> Path:
        """The file of ``email`` (an existing file in any letter case wins, else lower case).

        Raises:
            ValueError: the address cannot be a file name (path separators, leading dot).
        """
        exact = email.strip()
        if not exact or "/" in exact or "\\" in exact or "\x00" in exact or exact.startswith("."):
            raise ValueError(f"{email!r} cannot name a calendar file")
        candidate = self.root / f"{exact}.ics"
        if candidate.exists():
            return candidate
        return self.root / f"{email_of(exact)}.ics"

    def person_files(self) -> list[Path]:
        """Every person's calendar file, sorted by name."""
        return sorted(p for p in self.root.glob("*.ics") if not p.name.startswith("."))

    def outbox_path(self, uid: str, suffix: str = "") -> Path:
        """Where the iTIP message for ``uid`` goes; ``quote`` keeps odd UIDs file-name safe."""
        return self.root / self.OUTBOX / f"{quote(uid, safe='@._-+')}{suffix}.ics"

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the directory's exclusive lock (blocks until other writers are done).

        ``flock`` locks belong to an open file description, so two threads of one process that
        each open the lock file exclude each other just like two processes do.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / self.LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the last descriptor releases the lock

    @staticmethod
    def load(path: Path) -> icalendar.Calendar:
        """Parse one file as a single calendar.

        Raises:
            CalendarDataError: the file is not one valid VCALENDAR (names the file).
        """
        try:
            parsed: Any = icalendar.Calendar.from_ical(path.read_bytes())
        except Exception as exc:  # untrusted file: the parser raises many kinds of errors
            raise CalendarDataError(path.name, f"cannot parse ({type(exc).__name__})") from exc
        if not isinstance(parsed, icalendar.Calendar) or parsed.name != "VCALENDAR":
            raise CalendarDataError(path.name, "not a single VCALENDAR; cannot write to it")
        return parsed

    @staticmethod
    def save(path: Path, data: bytes) -> None:
        """Write ``data`` atomically (:func:`connectors.files.atomic_write`), keeping the mode."""
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, data)

    def save_calendar(self, path: Path, calendar: icalendar.Calendar) -> None:
        """Add VTIMEZONEs for every TZID used, then save atomically."""
        calendar.add_missing_timezones()
        self.save(path, calendar.to_ical())


def new_calendar(method: str | None = None) -> icalendar.Calendar:
    """An empty calendar with our PRODID (and ``METHOD`` for iTIP messages)."""
    calendar = icalendar.Calendar()
    calendar.add("PRODID", PRODID)
    calendar.add("VERSION", "2.0")
    calendar.add("CALSCALE", "GREGORIAN")
    if method is not None:
        calendar.add("METHOD", method)
    return calendar


def find_event(calendar: icalendar.Calendar, uid: str) -> icalendar.Event | None:
    """The master VEVENT with ``uid`` (not a RECURRENCE-ID override), or None."""
    for component in calendar.walk("VEVENT"):
        if (
            isinstance(component, icalendar.Event)
            and str(component.get("UID", "")) == uid
            and "RECURRENCE-ID" not in component
        ):
            return component
    return None


def remove_event(calendar: icalendar.Calendar, uid: str) -> None:
    """Drop every VEVENT with ``uid`` (used to replace a half-written copy on retry)."""
    calendar.subcomponents = [
        c
        for c in calendar.subcomponents
        if not (c.name == "VEVENT" and str(c.get("UID", "")) == uid)
    ]


def attendee_emails(event: icalendar.Component) -> list[str]:
    """Lower-case e-mails of the event's attendees."""
    value = event.get("ATTENDEE")
    items = [] if value is None else value if isinstance(value, list) else [value]
    return [email_of(a) for a in items]


def _address(email: str, name: str, **params: str) -> icalendar.vCalAddress:
    address = icalendar.vCalAddress(f"mailto:{email}")
    if name:
        address.params["CN"] = name
    for key, value in params.items():
        address.params[key.replace("_", "-").upper()] = value
    return address


def build_invite(draft: EventDraft, *, uid: str, stamp: datetime) -> icalendar.Event:
    """The VEVENT for ``draft``, times in the organizer's zone (TZID) so DST follows them.

    Args:
        draft: the meeting to book.
        uid: the event's UID (derived from the idempotency key).
        stamp: DTSTAMP, aware (from the injected clock).
    """
    zone = ZoneInfo(draft.organizer.timezone)
    event = icalendar.Event()
    event.add("UID", uid)
    event.add("DTSTAMP", stamp.astimezone(UTC))
    event.add("SEQUENCE", 0)
    event.add("DTSTART", draft.start.astimezone(zone))
    event.add("DTEND", draft.end.astimezone(zone))
    event.add("SUMMARY", draft.title)
    if draft.description:
        event.add("DESCRIPTION", draft.description)
    if draft.location:
        event.add("LOCATION", draft.location)
    event.add("STATUS", "CONFIRMED")
    event.add("TRANSP", "OPAQUE")
    event.add("ORGANIZER", _address(draft.organizer.email, draft.organizer.name))
    # One ATTENDEE line per person (a group's too), attendee first, each asked to answer.
    for person in invitees(draft, provider="ics", limit=None):
        event.add(
            "ATTENDEE",
            _address(
                person.email,
                person.name,
                cutype="INDIVIDUAL",
                role="REQ-PARTICIPANT",
                partstat="NEEDS-ACTION",
                rsvp="TRUE",
            ),
        )
    event.add(GOODWILL_KEY, draft.idempotency_key)
    return event


def itip_message(method: str, event: icalendar.Event) -> bytes:
    """An iTIP (RFC 5546) message carrying ``event``: METHOD, VTIMEZONEs, CRLF line ends."""
    calendar = new_calendar(method)
    calendar.add_component(event.copy())
    calendar.add_missing_timezones()
    data: bytes = calendar.to_ical()  # icalendar always ends content lines with CRLF
    return data


def reschedule(
    event: icalendar.Component,
    start: datetime,
    end: datetime,
    *,
    zone: str,
    stamp: datetime,
) -> int:
    """Move ``event`` to ``[start, end)`` as a new version of the same event; returns SEQUENCE.

    DTSTART/DTEND are written in ``zone`` (TZID, as :func:`build_invite` does; a DURATION is
    dropped), SEQUENCE goes up by one and DTSTAMP is ``stamp``. Every attendee but the
    organizer is asked to answer again (``PARTSTAT=NEEDS-ACTION``, ``RSVP=TRUE``), as RFC 6638
    §3.2.8 has scheduling servers do on a reschedule: their yes was to the old time.
    """
    tz = ZoneInfo(zone)
    sequence = int(event.get("SEQUENCE", 0)) + 1
    for name in ("DTSTART", "DTEND", "DURATION", "SEQUENCE", "DTSTAMP"):
        event.pop(name, None)
    event.add("DTSTART", start.astimezone(tz))
    event.add("DTEND", end.astimezone(tz))
    event.add("SEQUENCE", sequence)
    event.add("DTSTAMP", stamp.astimezone(UTC))
    organizer = email_of(event.get("ORGANIZER", ""))
    value = event.get("ATTENDEE")
    for attendee in [] if value is None else value if isinstance(value, list) else [value]:
        if email_of(attendee) != organizer:
            attendee.params["PARTSTAT"] = "NEEDS-ACTION"
            attendee.params["RSVP"] = "TRUE"
    return sequence


def set_partstat(event: icalendar.Component, attendee_email: str, partstat: str) -> bool:
    """Set the PARTSTAT of ``attendee_email`` on ``event``; False when they are not invited."""
    value = event.get("ATTENDEE")
    items = [] if value is None else value if isinstance(value, list) else [value]
    found = False
    for attendee in items:
        if email_of(attendee) == email_of(attendee_email):
            attendee.params["PARTSTAT"] = partstat
            attendee.params.pop("RSVP", None)  # answered: no reply is expected any more
            found = True
    return found


def seed_event(
    calendar: icalendar.Calendar,
    *,
    uid: str,
    start: datetime,
    end: datetime,
    zone: str,
    summary: str,
    show_as: ShowAs,
    stamp: datetime,
) -> icalendar.Event:
    """Add a plain event (no attendees) to ``calendar`` as the owner would in their client."""
    tz = ZoneInfo(zone)
    event = icalendar.Event()
    event.add("UID", uid)
    event.add("DTSTAMP", stamp.astimezone(UTC))
    event.add("DTSTART", start.astimezone(tz))
    event.add("DTEND", end.astimezone(tz))
    event.add("SUMMARY", summary)
    event.add("TRANSP", "TRANSPARENT" if show_as is ShowAs.FREE else "OPAQUE")
    cdo = _CDO_BY_SHOW_AS.get(show_as)
    if cdo is not None and show_as is not ShowAs.BUSY:
        event.add("X-MICROSOFT-CDO-BUSYSTATUS", cdo)
    calendar.add_component(event)
    return event
