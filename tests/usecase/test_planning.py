"""Planning a user (``plan_user``, ``register_policies``) on every store, with the fake calendar."""

from __future__ import annotations

from datetime import timedelta

import pytest

from scheduler.app import planning
from scheduler.app.pipeline import idempotency_key
from scheduler.core.errors import (
    AuthorizationRevoked,
    ConfigurationError,
    ConnectorError,
    ProviderUnavailable,
    RateLimited,
)
from scheduler.core.intervals import Interval
from scheduler.core.policy import Policy
from scheduler.core.ports import CalendarBackend
from scheduler.core.states import MeetingState
from tests.usecase.fakes import FAKE_PROVIDER
from tests.usecase.world import (
    ALEX,
    JO,
    KIM,
    NOW,
    SAM,
    SAM_POLICY,
    World,
    alex_policy,
    skip_codes,
)

S = MeetingState
LEE = "lee@corp.example"


def test_plan_writes_auto_as_approved_and_propose_as_proposed_and_records_skips(
    world: World,
) -> None:
    # Given Jo was met a week ago, Lee's calendar is not shared and Kim is busy all Tuesday
    world.write_policy(ALEX, alex_policy(extra=f"  - {{email: {LEE}, name: Lee, tier: peer}}\n"))
    met = NOW - timedelta(days=7)
    world.calendar.add_meeting(ALEX, JO, met, met + timedelta(minutes=45))
    world.calendar.make_unavailable(LEE)
    tuesday = Interval(NOW + timedelta(days=1), NOW + timedelta(days=2))
    world.calendar.add_busy(KIM, tuesday.start, tuesday.end)

    run = world.plan()

    assert run.error is None
    by_email = {world.meeting(i).stakeholder_email: world.meeting(i) for i in run.meeting_ids}
    assert set(by_email) == {SAM, KIM}
    assert by_email[SAM].state is S.PROPOSED  # senior: propose
    assert by_email[KIM].state is S.APPROVED  # peer: auto
    kim = by_email[KIM]
    assert not Interval(kim.start, kim.end).overlaps(tuesday)
    assert kim.idempotency_key == idempotency_key(
        world.user_id(), KIM, kim.start, secret=world.p.key_secret
    )
    assert kim.provider == FAKE_PROVIDER
    assert skip_codes(run) == {JO: "not_due", LEE: "calendar_unavailable"}
    details = world.events_detail()
    assert any(d.startswith(f"skipped {JO} [not_due]") for d in details)
    assert any(d.startswith(f"skipped {LEE} [calendar_unavailable]") for d in details)
    # The organic contact was recorded, and the round rescheduled the next one
    assert world.store.last_contacts(world.user_id()) == {JO: met + timedelta(minutes=45)}
    user = world.user()
    assert (user.last_planned_at, user.next_plan_at) == (NOW, NOW + world.p.plan_every)


def test_planning_twice_writes_no_duplicate(world: World) -> None:
    first = world.plan()
    assert len(first.meeting_ids) == 3
    world.advance(timedelta(hours=1))
    again = world.plan()
    assert again.meeting_ids == ()
    assert skip_codes(again) == {SAM: "open_meeting", KIM: "open_meeting", JO: "open_meeting"}
    # Booked meetings block their stakeholders as much as approved ones
    world.book_all()
    world.advance(timedelta(hours=1))
    assert world.plan().meeting_ids == ()
    assert sorted(m.id for m in world.meetings()) == sorted(first.meeting_ids)


def test_two_planning_rounds_at_once_write_each_proposal_once(world: World) -> None:
    # A redelivered plan message: the second round runs while the first reads busy time
    world.register()
    user_id = world.user_id()
    inner: list[planning.PlanRun] = []
    world.calendar.during_next("busy", lambda: inner.append(planning.plan_user(world.p, user_id)))
    outer = planning.plan_user(world.p, user_id)
    [first] = inner
    assert len(first.meeting_ids) == 3
    assert sorted(outer.meeting_ids) == sorted(first.meeting_ids)  # the same rows, not new ones
    assert len(world.meetings()) == 3
    for meeting_id in first.meeting_ids:
        assert [e.detail for e in world.store.audit_trail(meeting_id)] == ["created"]


@pytest.mark.parametrize(
    ("error", "retry_after"),
    [
        (RateLimited("slow down", retry_after_s=120, provider=FAKE_PROVIDER, status=429), 120.0),
        (ProviderUnavailable("503", provider=FAKE_PROVIDER, status=503), None),
    ],
    ids=["rate-limited", "unavailable"],
)
def test_a_calendar_read_failure_plans_again_after_retry_after(
    world: World, error: ConnectorError, retry_after: float | None
) -> None:
    world.calendar.fail_next("busy", error)
    run = world.plan()
    assert (run.plan, run.meeting_ids, run.error) == (None, (), type(error).__name__)
    assert world.meetings() == []
    delay = retry_after if retry_after is not None else world.p.plan_retry_s
    user = world.user()
    assert (user.next_plan_at, user.last_planned_at) == (NOW + timedelta(seconds=delay), None)
    assert world.events_detail() == [f"calendar read failed: {type(error).__name__}"]
    # When it comes due again, the round goes through
    world.advance(timedelta(seconds=delay))
    assert len(world.plan().meeting_ids) == 3


@pytest.mark.parametrize("had_grant", [True, False], ids=["stored-grant", "app-wide-grant"])
def test_a_revoked_grant_is_flagged_and_retried_in_an_hour(world: World, had_grant: bool) -> None:
    if had_grant:
        world.store.save_credential(ALEX, FAKE_PROVIDER, b"refresh-token", now=NOW)
    world.calendar.fail_next("busy", AuthorizationRevoked("invalid_grant", provider=FAKE_PROVIDER))
    run = world.plan()
    assert run.error == "credential revoked"
    [revoked] = world.store.revoked_credentials()
    assert (revoked.user_email, revoked.provider, revoked.reason) == (
        ALEX,
        FAKE_PROVIDER,
        "invalid_grant",
    )
    assert world.store.load_credential(ALEX, FAKE_PROVIDER) is None
    assert world.user().next_plan_at == NOW + timedelta(hours=1)
    assert "credential revoked" in world.events_detail()
    assert world.meetings() == []


def test_a_user_whose_calendar_is_not_configured_is_retried_hourly(world: World) -> None:
    def not_configured(policy: Policy) -> CalendarBackend:
        raise ConfigurationError(f"no grant for {policy.owner.email} yet")

    world.p.backends = not_configured
    run = world.plan()
    assert run.error == "not configured"
    assert world.user().next_plan_at == NOW + timedelta(hours=1)
    assert world.events_detail() == [f"not configured: no grant for {ALEX} yet"]


def test_an_unreadable_owner_calendar_skips_everyone(world: World) -> None:
    world.calendar.make_unavailable(ALEX, "calendar unavailable: 403")
    run = world.plan()
    assert run.meeting_ids == ()
    assert set(skip_codes(run).values()) == {"calendar_unavailable"}
    assert world.meetings() == []


def test_an_edited_policy_is_planned_at_once_and_a_broken_edit_keeps_the_last_good(
    world: World,
) -> None:
    world.plan()
    assert world.user().next_plan_at == NOW + world.p.plan_every
    world.advance(timedelta(minutes=5))
    path = world.write_policy(ALEX, alex_policy(peer_mode="propose"))
    world.register()
    assert world.user().next_plan_at == world.clock.now()  # brought forward by the edit
    assert world.user().policy_path == str(path)
    world.write_policy(ALEX, alex_policy(peer_mode="sometimes"))
    issues = world.register()
    assert issues
    assert "sometimes" in (world.user().policy_error or "")
    run = planning.plan_user(world.p, world.user_id())
    assert run.error is None  # the last good version is used
    world.write_policy(ALEX, alex_policy())
    world.register()
    assert world.user().policy_error is None


def test_a_malformed_policy_file_does_not_stop_the_others(world: World) -> None:
    broken = world.write_policy(
        "zed@corp.example",
        "owner: {email: zed@corp.example, name: Zed, timezone: Mars/Olympus}\n",
    )
    issues = world.register()
    assert {i.file for i in issues} == {str(broken)}
    assert world.store.get_user_by_email("zed@corp.example") is None
    assert len(world.plan().meeting_ids) == 3


def test_following_answers_is_best_effort_during_planning(world: World) -> None:
    world.plan()
    world.book_all()
    world.advance(timedelta(hours=13))
    world.calendar.fail_next("event_state", ProviderUnavailable("timeout", provider="fake"))
    run = world.plan()
    assert run.error is None
    assert world.user().last_planned_at == world.clock.now()


def test_two_users_who_list_each_other_get_one_meeting_for_the_pair(world: World) -> None:
    # Given Sam uses goodwill too, lists Alex, and plans and books first
    world.write_policy(SAM, SAM_POLICY)
    sam_run = world.plan(SAM)
    assert len(sam_run.meeting_ids) == 1
    assert [r.outcome.value for r in world.book_all()] == ["booked"]
    # When Alex plans
    run = world.plan(ALEX)
    # Then Alex's planner sees Sam's meeting: no second coffee for the same pair
    assert skip_codes(run)[SAM] == "open_meeting"
    assert world.meetings(ALEX, with_=SAM) == []
    assert len(world.calendar.events(attendee=ALEX)) == 1
    assert world.calendar.events(attendee=SAM) == []


def test_planning_withdraws_a_proposal_the_other_side_already_booked(world: World) -> None:
    world.write_policy(SAM, SAM_POLICY)
    world.register()
    day = NOW.replace(hour=15) + timedelta(days=2)
    alex_proposal = world.add_meeting(ALEX, SAM, day, state=S.PROPOSED)
    sam_meeting = world.add_meeting(SAM, ALEX, day + timedelta(days=1))
    assert world.book(sam_meeting).outcome.value == "booked"
    run = world.plan(ALEX)
    assert world.meeting(alex_proposal).state is S.CANCELLED
    assert "withdrawn" in world.store.audit_trail(alex_proposal)[-1].detail
    assert skip_codes(run)[SAM] == "open_meeting"
