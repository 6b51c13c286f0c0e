"""Contract env for the CalDAV connector on Xandikos: RFC 6638 scheduling by the server.

One ``xandikos multi-user`` subprocess and one SMTP sink serve every env of the test process
(started on first use, stopped at interpreter exit); each env gets fresh user names.

Xandikos schedules itself: the organizer's PUT (create, move) makes the server send the iTIP
REQUEST, and since the attendee has no principal on the server it goes out by iMIP to the
sink (``--imip-send smtp``); goodwill mails nothing. Xandikos multi-user lets an account read
only its own collections (``quirks.cross_user_reads``), so the attendee's calendar is a
collection in the organizer's account (as a shared or subscribed calendar would be), read with
the free-busy REPORT like any stakeholder's. ``deliver_mail`` files the invites there as the
attendee's client would, without ORGANIZER/ATTENDEE: a copy with them, PUT by the organizer's
account, would make Xandikos schedule it again.

Not in ``PROVIDERS`` (tests/contract/conftest.py): only the conflict-watch contract runs it.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import threading
from datetime import UTC
from pathlib import Path

import httpx
import icalendar

from connectors.caldav import CalDAVCalendar
from scheduler.core.model import AttendeeStatus, Person
from tests.contract.envs.caldav import CalDAVContractEnv
from tests.integration.caldav_servers import (
    SmtpSink,
    XandikosServer,
    free_port,
    start_xandikos,
    unique_user,
)

_lock = threading.Lock()
_shared: tuple[XandikosServer, SmtpSink] | None = None


def _stop_shared(root: Path) -> None:
    global _shared
    with _lock:
        if _shared is not None:
            server, sink = _shared
            server.stop()
            sink.stop()
            _shared = None
    shutil.rmtree(root, ignore_errors=True)


def shared_xandikos() -> tuple[XandikosServer, SmtpSink]:
    """The process-wide Xandikos (mailing iMIP to the shared sink)."""
    global _shared
    with _lock:
        if _shared is None or _shared[0].proc.poll() is not None:
            root = Path(tempfile.mkdtemp(prefix="goodwill-contract-xandikos-"))
            sink = SmtpSink(port=free_port()).start()
            _shared = (start_xandikos(root, smtp_port=sink.port), sink)
            atexit.register(_stop_shared, root)
        return _shared


class XandikosContractEnv(CalDAVContractEnv):
    name = "caldav"

    def __init__(self, tmp_path: Path) -> None:
        server, self._sink = shared_xandikos()
        org_user, att_user = unique_user("org"), unique_user("att")
        self.organizer = Person(f"{org_user}@corp.example", "Olga Org", "Europe/London")
        self.attendee = Person(f"{att_user}@corp.example", "Al Att", "America/New_York")
        self._auth = None
        self._headers = server.headers(org_user)
        org_cal = server.add_user(org_user, self.organizer.email)
        att_cal = f"{server.url}{org_user}/calendars/{att_user}/"
        made = httpx.request("MKCALENDAR", att_cal, headers=self._headers, timeout=10.0)
        made.raise_for_status()
        self._calendar = CalDAVCalendar(
            server.url,
            server="xandikos",
            calendars={self.organizer.email: org_cal, self.attendee.email: att_cal},
            headers=self._headers,
            timeout_s=10,
        )
        self.source = self._calendar
        self.writer = self._calendar
        self.responses = self._calendar

    def respond(self, attendee_email: str, provider_event_id: str, status: AttendeeStatus) -> None:
        """The attendee's answer on the organizer's copy (what the server does with a REPLY)."""
        self._calendar.set_attendee_status(
            self.organizer, provider_event_id, attendee_email, status
        )

    def _attendee_copy(self, event: icalendar.Component) -> icalendar.Component:
        for name in ("ORGANIZER", "ATTENDEE"):
            event.pop(name, None)
        for name in ("DTSTART", "DTEND"):  # in UTC: the copy carries no VTIMEZONE
            if name in event:
                moment = event.decoded(name)
                event.pop(name)
                event.add(name.lower(), moment.astimezone(UTC))
        return event

    def close(self) -> None:
        self._calendar.close()  # the server and the sink are shared


def make_env(tmp_path: Path) -> XandikosContractEnv:
    return XandikosContractEnv(tmp_path)
