"""Conflict watch through every real connector (ICS, Google, Graph, CalDAV).

A coffee is booked through the provider; then a busy event is put over it on the owner's
calendar (read with event detail, so our own event is known by its key) or, where the provider
reports the attendee's events one by one, on the attendee's. In ``auto`` mode the conflict pass
moves the same event exactly once (one update to the attendee, no new create); in ``ask`` mode
it proposes a new time and moves nothing; within ``not_within`` of the start it only flags the
meeting. Counted at the provider.

Opaque, merged free/busy (Google freeBusy for attendees, a CalDAV free-busy REPORT) folds a
conflict that overlaps the coffee into one block with it, indistinguishable from a meeting
booked right next to it; goodwill then leaves the coffee alone rather than move it for nothing
(see scheduler/core/conflicts.py). Those combinations are skipped here with that reason.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from scheduler.app import booking, conflicts, planning
from scheduler.app.booking import BookOutcome
from scheduler.app.pipeline import Pipeline, idempotency_key
from scheduler.app.policies import PolicyBook
from scheduler.app.records import NewMeeting
from scheduler.core.clock import FixedClock
from scheduler.core.policy import Policy
from scheduler.core.ports import CalendarBackend
from scheduler.core.states import MeetingState
from tests.usecase.fakes import FakeStore

from .conftest import ContractEnv

NOW = datetime(2027, 3, 1, 8, 0, tzinfo=UTC)  # Monday
SLOT = datetime(2027, 3, 3, 14, 0, tzinfo=UTC)  # Wednesday: 14:00 London, 09:00 New York

POLICY = """\
owner: {{email: {owner}, name: Olive Organizer, timezone: Europe/London}}
calendar: {{provider: ics}}
availability: {{working_hours: {{mon-fri: "09:00-17:00"}}, min_notice: 2h, buffer: 0m}}
tiers: {{peer: {{every: 8w, mode: auto}}}}
reschedule: {{mode: {mode}}}
stakeholders:
  - {{email: {attendee}, name: Arthur Attendee, tier: peer, timezone: America/New_York}}
allowed_domains: [corp.example]
"""


def _world(env: ContractEnv, tmp_path: Path, mode: str) -> tuple[Pipeline, int, FixedClock]:
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "owner.yaml").write_text(
        POLICY.format(owner=env.organizer.email, attendee=env.attendee.email, mode=mode)
    )
    store, clock = FakeStore(), FixedClock(NOW)

    def backends(policy: Policy) -> CalendarBackend:
        return CalendarBackend(env.name, env.source, None, env.writer, env.responses)

    p = Pipeline(store=store, clock=clock, backends=backends, policies=PolicyBook(policies))
    planning.register_policies(p)
    user = store.get_user_by_email(env.organizer.email)
    assert user is not None
    (mid,) = store.add_meetings(
        user.id,
        [
            NewMeeting(
                stakeholder_email=env.attendee.email,
                kind="coffee",
                start=SLOT,
                end=SLOT + timedelta(minutes=30),
                mode="auto",
                idempotency_key=idempotency_key(
                    user.id, env.attendee.email, SLOT, secret=p.key_secret
                ),
                provider=env.name,
                state=MeetingState.APPROVED,
            )
        ],
        now=NOW,
    )
    assert booking.book_meeting(p, mid).outcome == BookOutcome.BOOKED
    env.deliver_mail()
    return p, mid, clock


def _watch(p: Pipeline, env: ContractEnv) -> int:
    user = p.store.get_user_by_email(env.organizer.email)
    assert user is not None
    policy = p.policies.load(user.policy_path).policy
    assert policy is not None
    return conflicts.watch_conflicts(p, user.id, policy, p.backends(policy))


#: Providers whose attendee free/busy merges our event with a conflict (no event detail).
_MERGED_FREE_BUSY = {"google": "Google freeBusy merges busy time", "caldav": "free-busy REPORT"}


@pytest.fixture(params=["owner", "attendee"])
def side(request: pytest.FixtureRequest, env: ContractEnv) -> str:
    if request.param == "owner" and env.owner_keys_hidden:
        pytest.skip(f"{env.name}: {env.owner_keys_hidden}")
    if request.param == "attendee" and env.name in _MERGED_FREE_BUSY:
        pytest.skip(f"{env.name}: {_MERGED_FREE_BUSY[env.name]}")
    return str(request.param)


def _conflict(env: ContractEnv, side: str) -> None:
    person = env.organizer if side == "owner" else env.attendee
    env.seed_event(person, SLOT - timedelta(minutes=15), SLOT + timedelta(minutes=45))


def test_auto_moves_the_same_event_once_and_creates_nothing(
    env: ContractEnv, side: str, tmp_path: Path
) -> None:
    p, mid, _ = _world(env, tmp_path, "auto")
    booked = p.store.get_meeting(mid)
    assert booked is not None
    assert booked.provider_event_id
    event_id = booked.provider_event_id
    # Our own event is no conflict
    assert _watch(p, env) == 0
    _conflict(env, side)
    creates = env.count_creates(env.organizer.email)
    events = env.count_events(env.organizer.email)
    assert _watch(p, env) == 1
    moved = p.store.get_meeting(mid)
    assert moved is not None
    assert moved.start != SLOT
    assert moved.provider_event_id == event_id
    # Exactly one update sent for the same event, no new create, one event on the calendar
    assert env.updates_sent(env.attendee.email, event_id) == 1
    assert env.count_creates(env.organizer.email) == creates
    assert env.count_events(env.organizer.email) == events
    state = env.responses.event_state(env.organizer, event_id, env.attendee.email)
    assert (state.start, state.end) == (moved.start, moved.end)
    # A second pass does nothing more
    env.deliver_mail()
    assert _watch(p, env) == 0
    assert env.updates_sent(env.attendee.email, event_id) == 1


def test_ask_proposes_a_new_time_and_moves_nothing(
    env: ContractEnv, side: str, tmp_path: Path
) -> None:
    p, mid, _ = _world(env, tmp_path, "ask")
    booked = p.store.get_meeting(mid)
    assert booked is not None
    assert booked.provider_event_id
    _conflict(env, side)
    assert _watch(p, env) == 1
    assert env.updates_sent(env.attendee.email, booked.provider_event_id) == 0
    proposals = [m for m in p.store.open_meetings(booked.user_id) if m.replaces_id == mid]
    assert [m.state for m in proposals] == [MeetingState.PROPOSED]
    still = p.store.get_meeting(mid)
    assert still is not None
    assert still.start == SLOT


@pytest.mark.parametrize("mode", ["auto", "ask"])
def test_within_not_within_it_only_notifies(
    env: ContractEnv, side: str, tmp_path: Path, mode: str
) -> None:
    p, mid, clock = _world(env, tmp_path, mode)
    booked = p.store.get_meeting(mid)
    assert booked is not None
    assert booked.provider_event_id
    clock.advance(SLOT - timedelta(hours=5) - clock.now())
    _conflict(env, side)
    assert _watch(p, env) == 1
    flagged = p.store.get_meeting(mid)
    assert flagged is not None
    assert flagged.conflict_at is not None
    assert flagged.start == SLOT
    assert env.updates_sent(env.attendee.email, booked.provider_event_id) == 0
    assert not [m for m in p.store.open_meetings(booked.user_id) if m.replaces_id == mid]
