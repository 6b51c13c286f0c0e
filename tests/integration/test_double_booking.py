"""No double-booking after a create whose outcome is unknown (issue: bookings that stay right).

The reproduction: owners Alex and Bea both list hub@corp.example. Alex's create is lost on the
wire (the connection drops; nothing, or everything, was applied), so Alex's meeting goes back to
``approved`` with its create attempted. Bea then books hub at the same time. Before the fix,
Alex's retry skipped the clash rules and a second invite went out: hub had two events at 10:00.
Now an uncertain create holds the slot for both people until its retry has looked the event up
by its key; whoever wins, hub has exactly one event. The same holds for a pair of users who list
each other. Counted at the provider emulators (Google and Graph), on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from connectors.google import GoogleCalendar, user_credentials
from connectors.microsoft import GraphCalendar
from connectors.microsoft_auth import AppOnlyTokens
from connectors.tokens import MemoryTokenStore
from scheduler.app import booking, planning
from scheduler.app.booking import BookOutcome
from scheduler.app.pipeline import Pipeline, idempotency_key
from scheduler.app.policies import PolicyBook
from scheduler.app.records import NewMeeting
from scheduler.core.clock import FixedClock
from scheduler.core.policy import Policy
from scheduler.core.ports import CalendarBackend
from scheduler.core.states import MeetingState
from scheduler.settings import GoogleSettings
from scheduler.store import Store, make_engine, migrate
from tests.emulators.google_emulator import GoogleEmulator
from tests.emulators.graph_emulator import GraphEmulator

NOW = datetime(2027, 3, 1, 8, 0, tzinfo=UTC)  # Monday
SLOT = datetime(2027, 3, 3, 10, 0, tzinfo=UTC)  # Wednesday 10:00
HUB = "hub@corp.example"
OWNERS = {"alex": "alex@corp.example", "bea": "bea@corp.example"}

POLICY = """\
owner: {{email: {email}, name: {name} Doe, timezone: UTC}}
calendar: {{provider: google}}
availability: {{working_hours: {{mon-fri: "08:00-18:00"}}, min_notice: 0m}}
tiers: {{peer: {{every: 8w, mode: auto}}}}
stakeholders:
{stakeholders}
allowed_domains: [corp.example]
"""


def _write_policies(directory: Path, lists: dict[str, list[str]]) -> None:
    directory.mkdir()
    for name, email in OWNERS.items():
        people = "\n".join(
            f"  - {{email: {s}, name: {s.split('@')[0].title()} X, tier: peer, timezone: UTC}}"
            for s in lists[name]
        )
        (directory / f"{name}.yaml").write_text(
            POLICY.format(email=email, name=name.title(), stakeholders=people)
        )


class Provider:
    """One emulator seen through the real client library, and how to count at it."""

    name: str

    def backend(self, policy: Policy) -> CalendarBackend:
        raise NotImplementedError

    def lose_next_create(self, *, applied: bool) -> None:
        raise NotImplementedError

    def live_events_with(self, email: str) -> list[tuple[str, datetime]]:
        """(organizer, start) of every live event ``email`` organises or is invited to."""
        raise NotImplementedError

    def creates(self) -> int:
        raise NotImplementedError


class GoogleProvider(Provider):
    name = "google"

    def __init__(self, emu: GoogleEmulator) -> None:
        self.emu = emu
        for email in [*OWNERS.values(), HUB]:
            emu.add_calendar(email, "UTC")
            emu.add_refresh_token(f"1//rt-{email}", email)
        settings = GoogleSettings(
            token_uri=emu.token_uri, api_endpoint=emu.api_endpoint, timeout_s=5
        )

        def creds(email: str) -> Any:
            return user_credentials(f"1//rt-{email}", "cid", "csecret", emu.token_uri)

        self.calendar = GoogleCalendar(settings, creds, sleep=lambda _s: None)

    def backend(self, policy: Policy) -> CalendarBackend:
        c = self.calendar
        return CalendarBackend("google", c, c, c, c)

    def lose_next_create(self, *, applied: bool) -> None:
        kind = "drop_after" if applied else "drop"
        # twice: httplib2 resends a request once by itself on a fresh socket
        self.emu.faults.queue(kind, times=2, path="/events", method="POST")

    def live_events_with(self, email: str) -> list[tuple[str, datetime]]:
        out = []
        for owner in OWNERS.values():
            for e in self.emu.events(owner):
                people = {a.get("email", "").lower() for a in e.get("attendees", [])}
                if email in people or owner == email:
                    start = datetime.fromisoformat(e["start"]["dateTime"].replace("Z", "+00:00"))
                    out.append((owner, start))
        return out

    def creates(self) -> int:
        return self.emu.count("POST", "/events")


class GraphProvider(Provider):
    name = "microsoft"

    def __init__(self, emu: GraphEmulator) -> None:
        self.emu = emu
        for email in [*OWNERS.values(), HUB]:
            emu.add_mailbox(email, zone="UTC")
        settings = emu.settings()
        self.calendar = GraphCalendar(
            settings, AppOnlyTokens(settings, MemoryTokenStore()), sleep=lambda _s: None
        )

    def backend(self, policy: Policy) -> CalendarBackend:
        c = self.calendar
        return CalendarBackend("microsoft", c, c, c, c)

    def lose_next_create(self, *, applied: bool) -> None:
        self.emu.drop_next(match="/events", method="POST", after_processing=applied)

    def live_events_with(self, email: str) -> list[tuple[str, datetime]]:
        out = []
        for owner in OWNERS.values():
            for e in self.emu.events_of(owner):
                people = {a["emailAddress"]["address"].lower() for a in e.get("attendees", [])}
                if email in people or owner == email:
                    start = datetime.fromisoformat(e["start"]["dateTime"][:19]).replace(tzinfo=UTC)
                    out.append((owner, start))
        return out

    def creates(self) -> int:
        return self.emu.count("POST", "/events")


@pytest.fixture(params=["google", "microsoft"])
def provider(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Provider]:
    if request.param == "google":
        with GoogleEmulator() as emu:
            yield GoogleProvider(emu)
            assert emu.schema_violations == []
    else:
        graph = GraphEmulator(tmp_path / "graph")
        try:
            yield GraphProvider(graph)
        finally:
            graph.close()
        assert graph.schema_violations == []


@dataclass
class World:
    p: Pipeline
    store: Store
    clock: FixedClock
    provider: Provider

    def user_id(self, name: str) -> int:
        user = self.store.get_user_by_email(OWNERS[name])
        assert user is not None
        return user.id

    def approve_meeting(self, owner: str, stakeholder: str, start: datetime) -> int:
        uid = self.user_id(owner)
        meeting = NewMeeting(
            stakeholder_email=stakeholder,
            kind="coffee",
            start=start,
            end=start + timedelta(minutes=30),
            mode="auto",
            idempotency_key=idempotency_key(uid, stakeholder, start, secret=self.p.key_secret),
            provider=self.provider.name,
            state=MeetingState.APPROVED,
        )
        (mid,) = self.store.add_meetings(uid, [meeting], now=self.clock.now())
        return mid

    def book(self, meeting_id: int) -> BookOutcome:
        return booking.book_meeting(self.p, meeting_id).outcome

    def state(self, meeting_id: int) -> MeetingState:
        m = self.store.get_meeting(meeting_id)
        assert m is not None
        return m.state

    def later(self, hours: float = 1) -> None:
        self.clock.advance(timedelta(hours=hours))


@pytest.fixture
def make_world(
    db_url: str, tmp_path: Path, provider: Provider
) -> Iterator[Callable[[dict[str, list[str]]], World]]:
    engine = make_engine(db_url)
    migrate(engine)

    def make(lists: dict[str, list[str]]) -> World:
        _write_policies(tmp_path / "policies", lists)
        clock = FixedClock(NOW)
        store = Store(engine)
        p = Pipeline(
            store=store,
            clock=clock,
            backends=provider.backend,
            policies=PolicyBook(tmp_path / "policies"),
        )
        planning.register_policies(p)
        return World(p, store, clock, provider)

    yield make
    engine.dispose()


@pytest.mark.parametrize("applied", [False, True], ids=["create-lost", "reply-lost"])
def test_a_lost_create_keeps_its_claim_and_hub_gets_one_event(
    make_world: Callable[[dict[str, list[str]]], World], applied: bool
) -> None:
    w = make_world({"alex": [HUB], "bea": [HUB]})
    alex = w.approve_meeting("alex", HUB, SLOT)
    bea = w.approve_meeting("bea", HUB, SLOT)
    # Given Alex's create is lost on the wire (nothing applied, or applied with no reply)
    w.provider.lose_next_create(applied=applied)
    assert w.book(alex) == BookOutcome.RETRY
    assert w.state(alex) == MeetingState.APPROVED
    # When Bea books hub at the same time, Alex's uncertain create still holds the slot
    assert w.book(bea) == BookOutcome.SLOT_TAKEN
    # And Alex's retry looks the event up by its key before anything else
    w.later()
    creates_before = w.provider.creates()
    assert w.book(alex) == BookOutcome.BOOKED
    # Then hub has exactly one event at 10:00, and each meeting has at most one
    assert w.provider.live_events_with(HUB) == [(OWNERS["alex"], SLOT)]
    assert w.state(bea) == MeetingState.CANCELLED
    # A create that got through is found, not sent again; one that never landed is sent once
    assert w.provider.creates() - creates_before == (0 if applied else 1)


def test_the_clash_rules_run_again_after_a_create_that_never_landed(
    make_world: Callable[[dict[str, list[str]]], World],
) -> None:
    w = make_world({"alex": [HUB], "bea": [HUB]})
    alex = w.approve_meeting("alex", HUB, SLOT)
    # Given Alex's create never landed, and Bea booked hub at 10:00 before Alex's create
    # was recorded as attempted (she was booked first)
    bea = w.approve_meeting("bea", HUB, SLOT)
    assert w.book(bea) == BookOutcome.BOOKED
    w.provider.lose_next_create(applied=False)
    # When Alex's meeting is booked: the clash is seen before any create goes out
    assert w.book(alex) == BookOutcome.SLOT_TAKEN
    # Then hub has one event, Bea's
    assert w.provider.live_events_with(HUB) == [(OWNERS["bea"], SLOT)]


@pytest.mark.parametrize("applied", [False, True], ids=["create-lost", "reply-lost"])
def test_a_pair_who_list_each_other_is_booked_once_after_a_lost_create(
    make_world: Callable[[dict[str, list[str]]], World], applied: bool
) -> None:
    w = make_world({"alex": [OWNERS["bea"]], "bea": [OWNERS["alex"]]})
    alex_side = w.approve_meeting("alex", OWNERS["bea"], SLOT)
    bea_side = w.approve_meeting("bea", OWNERS["alex"], SLOT + timedelta(days=1))
    # Given Alex's side's create is lost
    w.provider.lose_next_create(applied=applied)
    assert w.book(alex_side) == BookOutcome.RETRY
    # When Bea's side books the pair on another day, Alex's uncertain create holds the pair
    assert w.book(bea_side) == BookOutcome.CANCELLED
    w.later()
    assert w.book(alex_side) == BookOutcome.BOOKED
    # Then the pair has exactly one meeting, at the provider and in the store
    events = w.provider.live_events_with(OWNERS["bea"])
    assert events == [(OWNERS["alex"], SLOT)]
    assert w.state(bea_side) == MeetingState.CANCELLED


def test_a_meeting_that_ends_after_a_lost_create_takes_its_event_back(
    make_world: Callable[[dict[str, list[str]]], World],
) -> None:
    w = make_world({"alex": [HUB], "bea": [HUB]})
    alex = w.approve_meeting("alex", HUB, SLOT)
    # Given the create reached the provider but its reply was lost
    w.provider.lose_next_create(applied=True)
    assert w.book(alex) == BookOutcome.RETRY
    assert len(w.provider.live_events_with(HUB)) == 1
    # When the slot passes before the retry
    w.clock.advance(SLOT + timedelta(minutes=5) - w.clock.now())
    assert w.book(alex) == BookOutcome.FAILED
    # Then the invite that did go out is cancelled by its key
    assert w.provider.live_events_with(HUB) == []
