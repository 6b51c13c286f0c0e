"""Contract env for the CalDAV connector: a real Radicale plus an SMTP sink.

One Radicale subprocess serves every env of the test process (started on first use, stopped
at interpreter exit: starting one costs ~0.5 s); each env gets fresh user names, so calendars
never overlap. The SMTP sink (a thread) is per env.

Radicale does no RFC 6638 scheduling, so this is the iMIP path: ``create_event`` stores the
organizer's copy and mails the REQUEST to the sink; ``respond`` is what the attendee's client
does — an iMIP REPLY e-mail — which we parse and apply to the organizer's copy.
"""

from __future__ import annotations

import atexit
import hashlib
import shutil
import tempfile
import threading
from datetime import UTC, datetime
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import SMTP, default
from pathlib import Path
from uuid import uuid4

import httpx
import icalendar

from connectors.caldav import CalDAVCalendar
from connectors.imip import ImipSender, apply_reply, parse_reply
from scheduler.core.model import AttendeeStatus, Person, ShowAs
from scheduler.settings import SmtpSettings
from tests.integration.caldav_servers import (
    RadicaleServer,
    SmtpSink,
    free_port,
    start_radicale,
    unique_user,
)

_PARTSTAT = {
    AttendeeStatus.ACCEPTED: "ACCEPTED",
    AttendeeStatus.DECLINED: "DECLINED",
    AttendeeStatus.TENTATIVE: "TENTATIVE",
    AttendeeStatus.NEEDS_ACTION: "NEEDS-ACTION",
}
_SEED_EXTRA = {
    ShowAs.BUSY: [],
    ShowAs.FREE: ["TRANSP:TRANSPARENT"],
    ShowAs.TENTATIVE: ["STATUS:TENTATIVE"],
    ShowAs.OOF: ["X-MICROSOFT-CDO-BUSYSTATUS:OOF"],
    ShowAs.WORKING_ELSEWHERE: ["TRANSP:TRANSPARENT"],
    ShowAs.UNKNOWN: [],
}


_lock = threading.Lock()
_shared: RadicaleServer | None = None


def _stop_shared(root: Path) -> None:
    global _shared
    with _lock:
        if _shared is not None:
            _shared.stop()
            _shared = None
    shutil.rmtree(root, ignore_errors=True)


def shared_radicale() -> RadicaleServer:
    """The process-wide Radicale for contract envs (cheap after the first call)."""
    global _shared
    with _lock:
        if _shared is None or _shared.proc.poll() is not None:
            root = Path(tempfile.mkdtemp(prefix="goodwill-contract-radicale-"))
            _shared = start_radicale(root)
            atexit.register(_stop_shared, root)
        return _shared


class CalDAVContractEnv:
    name = "caldav"
    #: Set per env by :meth:`__init__` (a subclass without them invites one attendee only).
    extra_attendees: tuple[Person, ...] = ()

    def __init__(self, tmp_path: Path) -> None:
        self.organizer = Person(f"{unique_user('org')}@corp.example", "Olga Org", "Europe/London")
        self.attendee = Person(f"{unique_user('att')}@corp.example", "Al Att", "America/New_York")
        self.extra_attendees = (
            Person(f"{unique_user('bea')}@corp.example", "Bea Second", "Asia/Kolkata"),
            Person(f"{unique_user('cy')}@corp.example", "Cy Third", "Europe/London"),
        )
        self._server = shared_radicale()
        self._sink = SmtpSink(port=free_port()).start()
        self._auth: tuple[str, str] | None = ("service", "secret")
        self._headers: dict[str, str] = {}
        for person in (self.organizer, self.attendee, *self.extra_attendees):
            self._server.make_calendar(f"{person.email.split('@')[0]}/calendar/")
        self._calendar = CalDAVCalendar(
            self._server.url,
            "service",
            "secret",
            server="radicale",
            calendar_path="/{user}/calendar/",
            imip_sender=ImipSender(SmtpSettings(host="127.0.0.1", port=self._sink.port)),
            timeout_s=10,
        )
        self.source = self._calendar
        self.writer = self._calendar
        self.responses = self._calendar

    def seed_event(
        self, person: Person, start: datetime, end: datetime, *, show_as: ShowAs = ShowAs.BUSY
    ) -> None:
        uid = f"seed-{uuid4().hex}"
        lines = [
            "BEGIN:VCALENDAR",
            "VERSION:2.0",
            "PRODID:-//goodwill contract//EN",
            "BEGIN:VEVENT",
            f"UID:{uid}",
            "DTSTAMP:20270101T000000Z",
            f"DTSTART:{start.astimezone(UTC):%Y%m%dT%H%M%SZ}",
            f"DTEND:{end.astimezone(UTC):%Y%m%dT%H%M%SZ}",
            "SUMMARY:seeded",
            *_SEED_EXTRA[show_as],
            "END:VEVENT",
            "END:VCALENDAR",
            "",
        ]
        url = self._calendar.calendar_url(person.email) + f"{uid}.ics"
        response = httpx.put(
            url,
            content="\r\n".join(lines).encode(),
            headers={**self._headers, "Content-Type": "text/calendar; charset=utf-8"},
            auth=self._auth,
            timeout=10.0,
        )
        response.raise_for_status()

    def respond(self, attendee_email: str, provider_event_id: str, status: AttendeeStatus) -> None:
        """The attendee's client answers with an iMIP REPLY; we apply it like the service."""
        cal = icalendar.Calendar()
        cal.add("prodid", "-//attendee client//EN")
        cal.add("version", "2.0")
        cal.add("method", "REPLY")
        event = icalendar.Event()
        event.add("uid", provider_event_id)
        event.add("dtstamp", datetime(2027, 1, 1, tzinfo=UTC))
        event.add("sequence", 0)
        event.add("organizer", f"mailto:{self.organizer.email}")
        who = icalendar.vCalAddress(f"mailto:{attendee_email}")
        who.params["PARTSTAT"] = _PARTSTAT[status]
        event.add("attendee", who)
        cal.add_component(event)
        mail = EmailMessage()
        mail["From"], mail["To"], mail["Subject"] = attendee_email, self.organizer.email, "Re"
        mail.set_content("answer")
        mail.add_attachment(
            cal.to_ical(), maintype="text", subtype="calendar", params={"method": "REPLY"}
        )
        apply_reply(self._calendar, self.organizer, parse_reply(mail.as_bytes(policy=SMTP)))

    def count_events(self, organizer_email: str) -> int:
        """Non-cancelled events stored in the organizer's calendar (read at the server)."""
        return sum(
            1
            for event in self._stored_events(organizer_email)
            if str(event.get("STATUS", "")).upper() != "CANCELLED"
        )

    def _stored_events(self, email: str) -> list[icalendar.Component]:
        url = self._calendar.calendar_url(email)
        listing = httpx.request(
            "PROPFIND",
            url,
            content='<D:propfind xmlns:D="DAV:"><D:prop><D:getetag/></D:prop></D:propfind>',
            auth=self._auth,
            headers={**self._headers, "Depth": "1", "Content-Type": "application/xml"},
            timeout=10.0,
        )
        listing.raise_for_status()
        events: list[icalendar.Component] = []
        for chunk in listing.text.split("href>")[1:]:
            href = chunk.split("<", 1)[0]
            if not href.endswith(".ics"):
                continue
            body = httpx.get(
                str(httpx.URL(url).join(href)), auth=self._auth, headers=self._headers, timeout=10.0
            )
            body.raise_for_status()
            events.extend(icalendar.Calendar.from_ical(body.content).walk("VEVENT"))
        return events

    #: The owner's own calendar is read by calendar-query (event detail, our key on our
    #: event); only stakeholders go through the opaque free-busy REPORT.
    owner_keys_hidden: str | None = None

    def count_creates(self, organizer_email: str) -> int:
        """Events stored in the organizer's calendar, cancelled ones included."""
        return len(self._stored_events(organizer_email))

    def _itip_mails(self, attendee_email: str) -> list[tuple[str, icalendar.Component]]:
        """``(METHOD, VEVENT)`` of every iMIP message the sink received for the attendee."""
        found = []
        for received in self._sink.to(attendee_email):
            mail = message_from_bytes(received.data, policy=default)
            for part in mail.walk():
                if part.get_content_type() != "text/calendar":
                    continue
                content = part.get_content()
                cal = icalendar.Calendar.from_ical(
                    content.encode() if isinstance(content, str) else content
                )
                method = str(cal.get("METHOD", "")).upper()
                found.extend((method, event) for event in cal.walk("VEVENT"))
        return found

    def updates_sent(self, attendee_email: str, provider_event_id: str) -> int:
        """iMIP REQUESTs for the event with SEQUENCE > 0 mailed to the attendee."""
        return sum(
            1
            for method, event in self._itip_mails(attendee_email)
            if method == "REQUEST"
            and str(event.get("UID")) == provider_event_id
            and int(event.get("SEQUENCE", 0)) > 0
        )

    def invitations(self, provider_event_id: str) -> list[str]:
        """Recipients of the iMIP REQUESTs with SEQUENCE 0 for the event (at the SMTP sink)."""
        return self._recipients("REQUEST", provider_event_id, first_only=True)

    def cancellations(self, provider_event_id: str) -> list[str]:
        """Recipients of the iMIP CANCELs for the event (at the SMTP sink)."""
        return self._recipients("CANCEL", provider_event_id, first_only=False)

    def _recipients(self, method: str, uid: str, *, first_only: bool) -> list[str]:
        found: list[str] = []
        for received in list(self._sink.messages):
            mail = message_from_bytes(received.data, policy=default)
            for part in mail.walk():
                if part.get_content_type() != "text/calendar":
                    continue
                content = part.get_content()
                cal = icalendar.Calendar.from_ical(
                    content.encode() if isinstance(content, str) else content
                )
                if str(cal.get("METHOD", "")).upper() != method:
                    continue
                if any(
                    str(e.get("UID")) == uid and not (first_only and int(e.get("SEQUENCE", 0)))
                    for e in cal.walk("VEVENT")
                ):
                    found.extend(r.lower() for r in received.rcpt_tos)
        return found

    def deliver_mail(self) -> None:
        """Each attendee's client files each invite in their calendar: per UID, the message
        with the highest SEQUENCE wins (a REQUEST as the event, a CANCEL as cancelled)."""
        for person in (self.attendee, *self.extra_attendees):
            self._deliver_to(person)

    def _deliver_to(self, person: Person) -> None:
        latest: dict[str, tuple[int, str, icalendar.Component]] = {}
        for method, event in self._itip_mails(person.email):
            uid, sequence = str(event.get("UID")), int(event.get("SEQUENCE", 0))
            if method in ("REQUEST", "CANCEL") and (
                uid not in latest or sequence >= latest[uid][0]
            ):
                latest[uid] = (sequence, method, event)
        for uid, (_, method, event) in latest.items():
            copy = icalendar.Calendar()
            copy.add("prodid", "-//attendee client//EN")
            copy.add("version", "2.0")
            if method == "CANCEL":
                event.pop("STATUS", None)
                event.add("status", "CANCELLED")
            copy.add_component(self._attendee_copy(event))
            name = hashlib.sha256(uid.encode()).hexdigest()[:32]
            url = self._calendar.calendar_url(person.email) + f"{name}.ics"
            response = httpx.put(
                url,
                content=copy.to_ical(),
                auth=self._auth,
                headers={**self._headers, "Content-Type": "text/calendar; charset=utf-8"},
                timeout=10.0,
            )
            response.raise_for_status()

    def _attendee_copy(self, event: icalendar.Component) -> icalendar.Component:
        """The event as the attendee's client files it (Radicale: as mailed)."""
        return event

    @property
    def invites_sent(self) -> int:
        """iMIP messages the sink received (for debugging the env)."""
        return len(self._sink.messages)

    def close(self) -> None:
        try:
            self._calendar.close()
        finally:
            self._sink.stop()


def make_env(tmp_path: Path) -> CalDAVContractEnv:
    return CalDAVContractEnv(tmp_path)
