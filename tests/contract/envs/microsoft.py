"""Contract env for Microsoft 365: GraphCalendar with app-only tokens, on the Graph emulator."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from connectors.microsoft import AppOnlyTokens, GraphCalendar
from connectors.tokens import MemoryTokenStore
from scheduler.core.model import AttendeeStatus, Person, ShowAs
from tests.emulators.graph_emulator import GraphEmulator

#: AttendeeStatus -> Graph responseType, as the attendee's client would send it.
_RESPONSES = {
    AttendeeStatus.ACCEPTED: "accepted",
    AttendeeStatus.DECLINED: "declined",
    AttendeeStatus.TENTATIVE: "tentativelyAccepted",
    AttendeeStatus.NEEDS_ACTION: "notResponded",
}


class MicrosoftEnv:
    """Two mailboxes in one tenant: the organizer in London, the attendee in New York."""

    name = "microsoft"

    def __init__(self, tmp_path: Path) -> None:
        self.organizer = Person("org@corp.example", "Olive Organizer", "Europe/London")
        self.attendee = Person("att@corp.example", "Arthur Attendee", "America/New_York")
        self.emulator = GraphEmulator(tmp_path)
        self.emulator.add_mailbox(self.organizer.email, zone="GMT Standard Time")
        self.emulator.add_mailbox(self.attendee.email, zone="Eastern Standard Time")
        self.extra_attendees = (
            Person("bea@corp.example", "Bea Second", "Asia/Kolkata"),
            Person("cy@corp.example", "Cy Third", "Europe/London"),
        )
        self.emulator.add_mailbox("bea@corp.example", zone="India Standard Time")
        self.emulator.add_mailbox("cy@corp.example", zone="GMT Standard Time")
        settings = self.emulator.settings()
        calendar = GraphCalendar(settings, AppOnlyTokens(settings, MemoryTokenStore()))
        self.source = calendar
        self.writer = calendar
        self.responses = calendar

    def seed_event(
        self, person: Person, start: datetime, end: datetime, *, show_as: ShowAs = ShowAs.BUSY
    ) -> None:
        self.emulator.seed_event(person.email, start, end, show_as=show_as.value)

    def respond(self, attendee_email: str, provider_event_id: str, status: AttendeeStatus) -> None:
        self.emulator.respond(attendee_email, provider_event_id, _RESPONSES[status])

    def count_events(self, organizer_email: str) -> int:
        return len(self.emulator.events_of(organizer_email))

    #: The owner's busy time comes from calendarView, which expands our extended property.
    owner_keys_hidden: str | None = None

    def count_creates(self, organizer_email: str) -> int:
        path = f"/users/{organizer_email.lower()}/events"
        return sum(1 for c in self.emulator.calls if c.method == "POST" and c.path.lower() == path)

    def updates_sent(self, attendee_email: str, provider_event_id: str) -> int:
        """Updates Graph sent the attendee after a PATCH of the event's times."""
        return self.emulator.updates_sent.count((provider_event_id, attendee_email.lower()))

    def deliver_mail(self) -> None:
        """Exchange puts invites and updates on the attendee's calendar itself."""

    def invitations(self, provider_event_id: str) -> list[str]:
        """Attendees Graph sent the invitation when the event was created."""
        return [a for e, a in self.emulator.invitations_sent if e == provider_event_id]

    def cancellations(self, provider_event_id: str) -> list[str]:
        """Attendees Graph sent the cancellation (``POST …/cancel``)."""
        return [a for e, a in self.emulator.cancellations_sent if e == provider_event_id]

    def close(self) -> None:
        violations = list(self.emulator.schema_violations)
        self.emulator.close()
        # Every contract scenario must also keep the request bodies valid Graph v1.0.
        assert violations == [], violations


def make_env(tmp_path: Path) -> MicrosoftEnv:
    return MicrosoftEnv(tmp_path)
