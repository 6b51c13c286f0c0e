"""Conflict watch through every real connector (ICS, Google, Graph, CalDAV).

A coffee is booked through the provider; then a busy event is put over it on the owner's
calendar (read with event detail, so our own event is known by its key) or, where the provider
reports the attendee's events one by one, on the attendee's. In ``auto`` mode the conflict pass
moves the same event exactly once (one update to the attendee, no new create); in ``ask`` mode
it proposes a new time and moves nothing; within ``not_within`` of the start it only flags the
meeting. Counted at the provider.

CalDAV runs twice: on Radicale (``caldav``: goodwill mails iMIP itself) and on Xandikos
(``caldav_xandikos``: the server schedules). Both read the owner's own calendar with a
calendar-query (our event known by its ``X-GOODWILL-KEY``), so the owner's side is decided there;
stakeholders come from the free-busy REPORT, decided on Xandikos (periods listed one by one) and
skipped on Radicale (merged).

Opaque, merged free/busy (Google freeBusy for attendees, a CalDAV free-busy REPORT) folds a
conflict that overlaps the coffee into one block with it, indistinguishable from a meeting
booked right next to it; goodwill then leaves the coffee alone rather than move it for nothing
(see scheduler/core/conflicts.py). Those combinations are skipped here with that reason.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

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

from .conftest import ContractEnv, _available

#: Envs beyond conftest's PROVIDERS run by this suite only: CalDAV on a scheduling server.
_EXTRA_ENVS = ["caldav_xandikos"]


@pytest.fixture(params=[*_available(), *_EXTRA_ENVS])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ContractEnv]:
    """conftest's ``env``, plus Xandikos for CalDAV (its connector contract is Radicale's)."""
    module = importlib.import_module(f"tests.contract.envs.{request.param}")
    made: ContractEnv = module.make_env(tmp_path)
    try:
        yield made
    finally:
        made.close()


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
_MERGED_FREE_BUSY = {
    "google": "Google freeBusy merges busy time",
    "caldav": (
        "the server's free-busy REPORT (how stakeholders are read) merges overlapping periods "
        "and carries no UIDs, so a conflict over our event becomes one keyless block with it"
    ),
}


def _merges(env: ContractEnv) -> bool:
    """Whether the env's attendee free/busy merges overlaps: CalDAV says per server (Xandikos
    lists each period, so our event is the keyless block exactly at the slot and a conflict
    beside it stays its own block); every other provider listed above does."""
    quirks = getattr(env.source, "quirks", None)
    return quirks is None or bool(quirks.merges_free_busy_overlaps)


@pytest.fixture(params=["owner", "attendee"])
def side(request: pytest.FixtureRequest, env: ContractEnv) -> str:
    if request.param == "owner" and env.owner_keys_hidden:
        pytest.skip(f"{env.name}: {env.owner_keys_hidden}")
    if request.param == "attendee" and env.name in _MERGED_FREE_BUSY and _merges(env):
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


def _counting(env: ContractEnv) -> list[str]:
    """The HTTP methods the CalDAV connector's DAV client sends from now on."""
    seen: list[str] = []
    client: Any = env.source._client  # type: ignore[attr-defined]
    original = client.request

    def request(url: str, method: str = "GET", body: Any = "", headers: Any = None) -> Any:
        seen.append(method)
        return original(url, method, body, headers)

    client.request = request
    return seen


@pytest.mark.parametrize("env", ["caldav", "caldav_xandikos"], indirect=True)
def test_caldav_conflict_pass_costs(env: ContractEnv, tmp_path: Path) -> None:
    """Requests per conflict pass on CalDAV (Radicale, Xandikos): a quiet pass is one
    calendar-query of the owner plus one free-busy REPORT per stakeholder; a move adds the
    replanning read (the same two), the GET and PUT of our event, and on Radicale, where
    goodwill mails the update itself, the PUT of the mail mark."""
    p, _, _ = _world(env, tmp_path, "auto")
    seen = _counting(env)
    assert _watch(p, env) == 0
    assert seen == ["REPORT", "REPORT"]
    seen.clear()
    _conflict(env, "owner")
    assert _watch(p, env) == 1
    mails_itself = env.source.quirks.needs_imip  # type: ignore[attr-defined]
    assert seen == ["REPORT"] * 4 + ["GET", "PUT"] + (["PUT"] if mails_itself else [])
