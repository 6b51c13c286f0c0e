"""A planning round reads the owner's calendar once when the connector offers it (OwnerCalendar):
``read_owner`` over history and horizon, before the history read, in the round and in the dry
run with history; never without one."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

import pytest

from scheduler.app.planning import ORGANIC_LOOKBACK, dry_run_plan
from scheduler.core.intervals import Interval
from scheduler.core.model import BusyQuery, BusyResult, Person
from scheduler.core.ports import OwnerCalendar
from tests.usecase.fakes import FakeCalendar
from tests.usecase.world import ALEX, NOW, World

HORIZON = timedelta(days=14)  # Alex's policy


class OwnerReadingCalendar(FakeCalendar):
    """The fake calendar with the optional port, recording the order of the reads."""

    def __init__(self) -> None:
        super().__init__()
        self.order: list[tuple[str, object]] = []

    def read_owner(self, owner: Person, window: Interval) -> None:
        self.order.append(("read_owner", (owner.email, window)))

    def last_contacts(
        self, owner: Person, emails: Sequence[str], since: datetime, until: datetime
    ) -> Mapping[str, datetime]:
        self.order.append(("last_contacts", (since, until)))
        return super().last_contacts(owner, emails, since, until)

    def busy(self, query: BusyQuery) -> BusyResult:
        self.order.append(("busy", query.window))
        return super().busy(query)


@pytest.fixture
def calendar() -> FakeCalendar:
    return OwnerReadingCalendar()


def test_a_round_reads_the_owner_once_before_history_and_busy(world: World) -> None:
    fake = world.calendar
    assert isinstance(fake, OwnerReadingCalendar)
    assert isinstance(fake, OwnerCalendar)
    run = world.plan()
    assert run.error is None
    assert fake.order == [
        ("read_owner", (ALEX, Interval(NOW - ORGANIC_LOOKBACK, NOW + HORIZON))),
        ("last_contacts", (NOW - ORGANIC_LOOKBACK, NOW)),
        ("busy", Interval(NOW, NOW + HORIZON)),
    ]


def test_the_dry_run_reads_the_owner_once_only_when_it_reads_history(world: World) -> None:
    fake = world.calendar
    assert isinstance(fake, OwnerReadingCalendar)
    policy = world.policy()
    dry_run_plan(policy, source=fake, history=fake, now=NOW)
    assert [name for name, _ in fake.order] == ["read_owner", "last_contacts", "busy"]
    fake.order.clear()
    dry_run_plan(policy, source=fake, history=None, now=NOW)
    assert [name for name, _ in fake.order] == ["busy"]
