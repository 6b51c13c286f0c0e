"""One contract suite, every connector: the same scenarios against ICS, Google, Microsoft, CalDAV.

Each provider contributes ``tests/contract/envs/<name>.py`` with ``make_env(tmp_path)``
returning an object shaped like :class:`ContractEnv`.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Protocol

import pytest

from scheduler.core.model import AttendeeStatus, Person, ShowAs
from scheduler.core.ports import CalendarSource, CalendarWriter, ResponseReader

PROVIDERS = ["ics", "google", "microsoft", "caldav"]


class ContractEnv(Protocol):
    name: str
    organizer: Person
    attendee: Person
    source: CalendarSource
    writer: CalendarWriter
    responses: ResponseReader

    def seed_event(
        self, person: Person, start: datetime, end: datetime, *, show_as: ShowAs = ShowAs.BUSY
    ) -> None: ...

    def respond(
        self, attendee_email: str, provider_event_id: str, status: AttendeeStatus
    ) -> None: ...

    def count_events(self, organizer_email: str) -> int: ...

    #: Why a busy read of the owner's own calendar cannot show goodwill's key on our events
    #: (``BusyBlock.key``); None when it can.
    owner_keys_hidden: str | None

    def count_creates(self, organizer_email: str) -> int:
        """Creates seen at the provider: create requests where the env can count them (the
        emulators), else the event resources stored for the organizer, cancelled ones too."""
        ...

    def updates_sent(self, attendee_email: str, provider_event_id: str) -> int:
        """Updates (reschedules) the attendee was sent for the event, the first invite not
        counted: Google patches with ``sendUpdates=all``, Graph's own updates, iTIP REQUESTs with
        SEQUENCE > 0 (mailed, or written to the ICS outbox)."""
        ...

    def deliver_mail(self) -> None:
        """What the attendee's mail client does with the iTIP messages it received (file them
        in their calendar), where invites travel by mail; a no-op where the provider puts them
        on the attendee's calendar itself."""
        ...

    #: Two more people with calendars at the provider, for a group meeting's draft (the
    #: attendee first, then these): three attendees on one event.
    extra_attendees: tuple[Person, ...]

    def invitations(self, provider_event_id: str) -> list[str]:
        """Lower-case e-mails of everyone the provider invited to the event, once per first
        invitation sent: Google's and Graph's own mails (the emulators count them), iMIP
        REQUESTs with SEQUENCE 0 at the SMTP sink, copies written into the attendees' files
        for the ICS directory."""
        ...

    def cancellations(self, provider_event_id: str) -> list[str]:
        """Lower-case e-mails of everyone told the event was cancelled, once per notice."""
        ...

    def close(self) -> None: ...


def _available() -> list[str]:
    names = []
    for name in PROVIDERS:
        if (Path(__file__).parent / "envs" / f"{name}.py").exists():
            names.append(name)
    return names


@pytest.fixture(params=_available())
def env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ContractEnv]:
    module = importlib.import_module(f"tests.contract.envs.{request.param}")
    made: ContractEnv = module.make_env(tmp_path)
    try:
        yield made
    finally:
        made.close()
