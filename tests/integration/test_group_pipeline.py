"""A group meeting through the whole pipeline at the Google and Graph emulators (SQLite and
PostgreSQL): planned from the store, approved, booked as exactly ONE event with every attendee
(a retry after a lost create sends no second one), answers followed per attendee."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from scheduler.app import booking, decisions, planning, responses
from scheduler.app.booking import BookOutcome
from scheduler.app.pipeline import Pipeline
from scheduler.app.policies import PolicyBook
from scheduler.app.records import Meeting
from scheduler.core.clock import FixedClock
from scheduler.core.states import MeetingState
from scheduler.store import Store, make_engine, migrate
from tests.emulators.google_emulator import GoogleEmulator
from tests.emulators.graph_emulator import GraphEmulator
from tests.integration.test_double_booking import (
    NOW,
    OWNERS,
    GoogleProvider,
    GraphProvider,
    Provider,
)

S = MeetingState
ALEX = OWNERS["alex"]
MEMBERS = tuple(f"m{i}@corp.example" for i in range(1, 5))

POLICY = """\
owner: {{email: alex@corp.example, name: Alex Doe, timezone: UTC}}
calendar: {{provider: {provider}}}
availability: {{working_hours: {{mon-fri: "08:00-18:00"}}, min_notice: 1d, horizon: 14d}}
tiers: {{peer: {{every: 8w, mode: propose}}}}
stakeholders: []
groups:
  - {{name: platform, members: [{members}], kind: coffee, duration: 60m, size: "3..4",
     quorum: 0.6, location: Room 4}}
allowed_domains: [corp.example]
"""


@pytest.fixture(params=["google", "microsoft"])
def provider(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Provider]:
    if request.param == "google":
        with GoogleEmulator() as emu:
            for email in MEMBERS:
                emu.add_calendar(email, "UTC")
            yield GoogleProvider(emu)
            assert emu.schema_violations == []
    else:
        graph = GraphEmulator(tmp_path / "graph")
        try:
            for email in MEMBERS:
                graph.add_mailbox(email, zone="UTC")
            yield GraphProvider(graph)
        finally:
            graph.close()
        assert graph.schema_violations == []


@dataclass
class Org:
    p: Pipeline
    store: Store
    clock: FixedClock
    provider: Provider

    def user_id(self) -> int:
        user = self.store.get_user_by_email(ALEX)
        assert user is not None
        return user.id

    def group(self) -> Meeting:
        (m,) = [
            m
            for m in self.store.meetings_between(self.user_id(), NOW, NOW + timedelta(days=30))
            if m.group_name == "platform"
        ]
        return m


@pytest.fixture
def org(db_url: str, tmp_path: Path, provider: Provider) -> Iterator[Org]:
    engine = make_engine(db_url)
    migrate(engine)
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "alex.yaml").write_text(
        POLICY.format(provider=provider.name, members=", ".join(MEMBERS))
    )
    clock = FixedClock(NOW)
    store = Store(engine)
    p = Pipeline(store=store, clock=clock, backends=provider.backend, policies=PolicyBook(policies))
    planning.register_policies(p)
    yield Org(p, store, clock, provider)
    engine.dispose()


def _approved(org: Org) -> Meeting:
    run = planning.plan_user(org.p, org.user_id())
    assert run.error is None, run.error
    m = org.group()
    assert m.state is S.PROPOSED
    assert set(m.attendees) == set(MEMBERS)
    assert decisions.approve(org.p, m.id)
    return m


@pytest.mark.parametrize("applied", [False, True], ids=["create-lost", "reply-lost"])
def test_a_group_meeting_is_one_event_and_a_lost_create_is_never_sent_twice(
    org: Org, applied: bool
) -> None:
    m = _approved(org)
    org.provider.lose_next_create(applied=applied)
    assert booking.book_meeting(org.p, m.id).outcome is BookOutcome.RETRY
    org.clock.advance(timedelta(hours=1))
    before = org.provider.creates()
    assert booking.book_meeting(org.p, m.id).outcome is BookOutcome.BOOKED
    assert org.provider.creates() - before == (0 if applied else 1)
    for email in (ALEX, *MEMBERS):  # one event, everyone on it
        assert org.provider.live_events_with(email) == [(ALEX, m.start)]
    assert org.store.get_meeting(m.id).state is S.BOOKED  # type: ignore[union-attr]


def test_group_answers_are_read_per_attendee_and_declines_below_quorum_tell_the_owner(
    org: Org,
) -> None:
    m = _approved(org)
    assert booking.book_meeting(org.p, m.id).outcome is BookOutcome.BOOKED
    booked = org.store.get_meeting(m.id)
    assert booked is not None
    event = booked.provider_event_id or ""
    for email in booked.attendees[1:3]:
        if isinstance(org.provider, GoogleProvider):
            org.provider.emu.respond(ALEX, event, email, "declined")
        else:
            assert isinstance(org.provider, GraphProvider)
            org.provider.emu.respond(email, event, "declined")
    responses.sync_responses(org.p, org.user_id())
    after = org.store.get_meeting(m.id)
    assert after is not None
    assert after.state is S.BOOKED  # below the quorum: the owner decides, nothing cancelled
    assert sorted(a for _, a in after.attendee_status).count("declined") == 2
    details = [e.detail for e in org.store.audit_trail(m.id)]
    assert "group below quorum: 2 of 4 declined (needs 3)" in details
    assert org.provider.live_events_with(ALEX) == [(ALEX, m.start)]
