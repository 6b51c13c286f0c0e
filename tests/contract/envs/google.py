"""Contract env for the Google connector: the real client library against the loopback emulator.

Per-user OAuth: each person's refresh token is kept in an :class:`EncryptedFileTokenStore` under
``tmp_path``, the way the composition root wires it, and exchanged at the emulator's token URL.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from google.auth.credentials import Credentials

from connectors.google import GoogleCalendar, user_credentials
from connectors.tokens import EncryptedFileTokenStore
from scheduler.core.errors import AuthorizationRevoked
from scheduler.core.model import AttendeeStatus, Person, ShowAs
from scheduler.settings import GoogleSettings
from tests.emulators.google_emulator import GoogleEmulator

__all__ = ["GoogleEnv", "make_env"]

_CLIENT_ID = "contract-client.apps.googleusercontent.com"
_CLIENT_SECRET = "contract-secret"


class GoogleEnv:
    """Organizer and attendee in one Workspace domain, both with a calendar at the emulator."""

    name = "google"

    def __init__(self, tmp_path: Path) -> None:
        self.organizer = Person("org@corp.example", "Olive Organizer", "Europe/London")
        self.attendee = Person("att@corp.example", "Arthur Attendee", "America/New_York")
        self.extra_attendees = (
            Person("bea@corp.example", "Bea Second", "Asia/Kolkata"),
            Person("cy@corp.example", "Cy Third", "Europe/London"),
        )
        self.emulator = GoogleEmulator(page_size=3).start()
        self.tokens = EncryptedFileTokenStore(tmp_path / "tokens", "contract-secret-key")
        for person in (self.organizer, self.attendee, *self.extra_attendees):
            self.emulator.add_calendar(person.email, person.timezone)
            refresh_token = f"1//rt-{person.email}"
            self.emulator.add_refresh_token(refresh_token, person.email)
            blob = json.dumps({"refresh_token": refresh_token}).encode()
            self.tokens.save(f"google:{person.email}", blob)
        settings = GoogleSettings(
            token_uri=self.emulator.token_uri, api_endpoint=self.emulator.api_endpoint, timeout_s=5
        )
        self.calendar = GoogleCalendar(settings, self._credentials_for, sleep=lambda _s: None)
        self.source = self.calendar
        self.writer = self.calendar
        self.responses = self.calendar

    def _credentials_for(self, email: str) -> Credentials:
        blob = self.tokens.load(f"google:{email}")
        if blob is None:
            raise AuthorizationRevoked("no Google grant stored", provider="google")
        return user_credentials(
            json.loads(blob)["refresh_token"], _CLIENT_ID, _CLIENT_SECRET, self.emulator.token_uri
        )

    def seed_event(
        self, person: Person, start: datetime, end: datetime, *, show_as: ShowAs = ShowAs.BUSY
    ) -> None:
        body: dict[str, Any] = {
            "summary": "Seeded",
            "start": {"dateTime": _z(start)},
            "end": {"dateTime": _z(end)},
        }
        if show_as is ShowAs.FREE:
            body["transparency"] = "transparent"
        elif show_as is ShowAs.OOF:
            body["eventType"] = "outOfOffice"
        elif show_as is ShowAs.WORKING_ELSEWHERE:
            body.update(eventType="workingLocation", transparency="transparent")
        elif show_as is ShowAs.TENTATIVE:
            # Google has no "show as tentative": it is the person's tentative answer to an invite.
            body["organizer"] = {"email": "someone@corp.example"}
            body["attendees"] = [{"email": person.email, "responseStatus": "tentative"}]
        self.emulator.seed(person.email, body)

    def respond(self, attendee_email: str, provider_event_id: str, status: AttendeeStatus) -> None:
        self.emulator.respond(self.organizer.email, provider_event_id, attendee_email, status.value)

    def count_events(self, organizer_email: str) -> int:
        return len(self.emulator.events(organizer_email))

    #: events.list on the owner's calendar returns our private extended property.
    owner_keys_hidden: str | None = None

    def count_creates(self, organizer_email: str) -> int:
        return sum(
            1
            for r in self.emulator.requests_to("POST", "/events")
            if r.user == organizer_email.lower()
        )

    def updates_sent(self, attendee_email: str, provider_event_id: str) -> int:
        """Patches of the event's times with ``sendUpdates=all`` (Google mails each guest)."""
        return sum(
            1
            for r in self.emulator.requests_to("PATCH", f"/events/{provider_event_id}")
            if r.query.get("sendUpdates") == ["all"]
            and isinstance(r.body, dict)
            and ("start" in r.body or "end" in r.body)
        )

    def deliver_mail(self) -> None:
        """Google puts invites and updates on the guest's calendar itself."""

    def invitations(self, provider_event_id: str) -> list[str]:
        """Guests Google mailed the invite (``events.insert`` with ``sendUpdates=all``)."""
        return self._notified("invite", provider_event_id)

    def cancellations(self, provider_event_id: str) -> list[str]:
        """Guests Google mailed the cancellation (``events.delete`` with ``sendUpdates=all``)."""
        return self._notified("cancel", provider_event_id)

    def _notified(self, kind: str, provider_event_id: str) -> list[str]:
        return [e for k, i, e in self.emulator.notified if (k, i) == (kind, provider_event_id)]

    def close(self) -> None:
        self.emulator.stop()
        assert self.emulator.schema_violations == [], self.emulator.schema_violations


def _z(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def make_env(tmp_path: Path) -> GoogleEnv:
    return GoogleEnv(tmp_path)
