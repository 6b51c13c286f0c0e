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
