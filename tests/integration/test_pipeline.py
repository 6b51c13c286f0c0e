"""The booking pipeline end to end, in process: store (SQLite and PostgreSQL), the writable ICS
calendar directory, an injected clock. Events are counted in the calendar files."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import icalendar
import pytest

from connectors.ics import IcsDirectory
from connectors.registry import BackendRegistry
from scheduler.app import booking, decisions, planning, responses
from scheduler.app.booking import BookOutcome
from scheduler.app.pipeline import Pipeline
from scheduler.core.clock import FixedClock
from scheduler.core.errors import InvalidRequest, ProviderUnavailable
from scheduler.core.model import AttendeeStatus, CreatedEvent, EventDraft, Person
from scheduler.core.policy import Policy
from scheduler.core.ports import CalendarBackend
from scheduler.core.states import MeetingState
from scheduler.entrypoints.bootstrap import App, bootstrap
from scheduler.settings import Settings
from scheduler.store import NewMeeting
from tests.calendars import empty_calendar as _empty_calendar

NOW = datetime(2027, 3, 1, 8, 0, tzinfo=UTC)  # a Monday

POLICY = """\
owner: {{email: alex@corp.example, name: Alex Doe, timezone: Europe/London}}
calendar: {{provider: ics}}
meeting: {{kind: coffee, duration: 30m, location: "Level 2 café"}}
availability:
  working_hours: {{mon-fri: "09:00-17:00"}}
  windows: ["10:00-11:30", "14:00-16:30"]
  min_notice: 1d
  horizon: 14d
  buffer: 10m
  max_per_day: 1
  max_per_week: 3
tiers:
  mentor: {{every: 4w, mode: propose}}
  peer: {{every: 8w, mode: {peer_mode}}}
etiquette: {{max_unanswered: 2}}
stakeholders:
  - {{email: sam@corp.example, name: Sam Lee, tier: mentor, timezone: America/New_York,
     senior: true, notes: "SECRET-NOTE: wants a sponsor", power: [position]}}
  - {{email: kim@corp.example, name: Kim Ito, tier: peer, department: Finance}}
  - {{email: jo@corp.example, name: Jo Park, tier: peer}}
allowed_domains: [corp.example]
"""


@dataclass
class Env:
    app: App
    clock: FixedClock
    calendars: Path
    policy_path: Path
    directory: IcsDirectory

    @property
    def p(self) -> Pipeline:
        return self.app.pipeline

    def user_id(self) -> int:
        user = self.app.store.get_user_by_email("alex@corp.example")
        assert user is not None
        return user.id

    def plan(self) -> planning.PlanRun:
        planning.register_policies(self.p)
        return planning.plan_user(self.p, self.user_id())

    def book_all(self) -> list[booking.BookResult]:
        ids = self.app.store.approved_needing_send(self.clock.now(), 100)
        return [booking.book_meeting(self.p, i) for i in ids]

    def meetings(self, state: MeetingState | None = None) -> list:  # type: ignore[type-arg]
        found = self.app.store.meetings_between(
            self.user_id(), NOW - timedelta(days=400), NOW + timedelta(days=400)
        )
        return [m for m in found if state is None or m.state == state]

    def events_at_calendar(self, email: str = "alex@corp.example") -> list[icalendar.Event]:
        path = self.calendars / f"{email}.ics"
        cal = icalendar.Calendar.from_ical(path.read_bytes())
        return [
            e
            for e in cal.walk("VEVENT")
            if "X-GOODWILL-KEY" in e and str(e.get("STATUS", "")).upper() != "CANCELLED"
        ]


@pytest.fixture
def env(tmp_path: Path, db_url: str) -> Iterator[Env]:
    calendars = tmp_path / "calendars"
    calendars.mkdir()
    for who in ("alex", "sam", "kim", "jo"):
        _empty_calendar(calendars / f"{who}@corp.example.ics")
    policies = tmp_path / "policies"
    policies.mkdir()
    policy_path = policies / "alex.yaml"
    policy_path.write_text(POLICY.format(peer_mode="auto"))
    clock = FixedClock(NOW)
    settings = Settings(
        _env_file=None,
        data_dir=tmp_path / "data",
        database_url=db_url,
        policy_dir=policies,
        calendars_dir=calendars,
    )
    app = bootstrap(settings, clock=clock, auto_migrate=True)
    directory = IcsDirectory(calendars, clock=clock)
    yield Env(app, clock, calendars, policy_path, directory)
    app.engine.dispose()


def test_auto_meetings_are_booked_once_and_proposals_wait(env: Env) -> None:
    run = env.plan()
    assert run.error is None
    assert len(run.meeting_ids) == 3
    approved = env.meetings(MeetingState.APPROVED)
    proposed = env.meetings(MeetingState.PROPOSED)
    assert {m.stakeholder_email for m in approved} == {"kim@corp.example", "jo@corp.example"}
    assert [m.stakeholder_email for m in proposed] == ["sam@corp.example"]  # senior: propose

    results = env.book_all()
    assert [r.outcome for r in results] == [BookOutcome.BOOKED, BookOutcome.BOOKED]
    booked = env.meetings(MeetingState.BOOKED)
    assert len(booked) == 2
    assert all(m.provider_event_id for m in booked)
    # counted at the calendar: one event per meeting, on both sides, and one iTIP REQUEST each
    assert len(env.events_at_calendar()) == 2
    assert len(env.events_at_calendar("kim@corp.example")) == 1
    assert len(list((env.calendars / "outbox").glob("*.ics"))) == 2


def test_a_redelivered_book_message_changes_nothing(env: Env) -> None:
    env.plan()
    (first, *_) = env.app.store.approved_needing_send(NOW, 100)
    assert booking.book_meeting(env.p, first).outcome == BookOutcome.BOOKED
    assert booking.book_meeting(env.p, first).outcome == BookOutcome.ALREADY
    assert len(env.events_at_calendar()) == 1


def test_replanning_does_not_duplicate_open_meetings(env: Env) -> None:
    env.plan()
    env.book_all()
    env.clock.advance(timedelta(hours=1))
    run = env.plan()
    assert run.meeting_ids == ()
    assert len(env.meetings()) == 3


def test_invite_text_is_friendly_and_keeps_private_fields_out(env: Env) -> None:
    env.plan()
    (meeting,) = env.meetings(MeetingState.PROPOSED)
    assert decisions.approve(env.p, meeting.id)
    env.book_all()
    events = env.events_at_calendar("sam@corp.example")
    assert len(events) == 1
    text = str(events[0]["DESCRIPTION"]) + str(events[0]["SUMMARY"])
    assert "Hi Sam" in text
    for private in ("SECRET-NOTE", "mentor", "position", "senior", "sponsor"):
        assert private not in text
    kim = [m for m in env.meetings() if m.stakeholder_email == "kim@corp.example"]
    kim_event = env.events_at_calendar("kim@corp.example")[0]
    assert "Finance" in str(kim_event["DESCRIPTION"])
    assert kim


def test_approve_books_and_decline_backs_off(env: Env) -> None:
    env.plan()
    (proposal,) = env.meetings(MeetingState.PROPOSED)
    assert decisions.decline(env.p, proposal.id)
    assert not decisions.approve(env.p, proposal.id)  # declined proposals stay declined
    env.clock.advance(timedelta(hours=1))
    run = env.plan()
    assert run.plan is not None
    skipped = {s.stakeholder: s.code.value for s in run.plan.skipped}
    assert skipped["sam@corp.example"] == "backoff"


def test_unapproved_proposals_expire_before_their_slot(env: Env) -> None:
    env.plan()
    (proposal,) = env.meetings(MeetingState.PROPOSED)
    env.clock.advance(proposal.start - NOW - timedelta(hours=1))
    assert decisions.expire_proposals(env.p) == 1
    assert env.app.store.get_meeting(proposal.id).state == MeetingState.EXPIRED


def _booked_with(env: Env, email: str):  # type: ignore[no-untyped-def]
    env.plan()
    env.book_all()
    (m,) = [m for m in env.meetings(MeetingState.BOOKED) if m.stakeholder_email == email]
    return m


def test_accept_then_completion_counts_as_contact(env: Env) -> None:
    m = _booked_with(env, "kim@corp.example")
    env.directory.respond("kim@corp.example", m.provider_event_id, AttendeeStatus.ACCEPTED)
    assert responses.sync_responses(env.p, env.user_id()) >= 1
    assert env.app.store.get_meeting(m.id).state == MeetingState.ACCEPTED
    env.clock.advance(m.end - NOW + timedelta(minutes=1))
    responses.sync_responses(env.p, env.user_id())
    assert env.app.store.get_meeting(m.id).state == MeetingState.COMPLETED
    assert env.app.store.last_contacts(env.user_id())["kim@corp.example"] == m.end
    run = env.plan()
    skipped = {s.stakeholder: s.code.value for s in run.plan.skipped}
    assert skipped["kim@corp.example"] == "not_due"


def test_decline_backs_the_cadence_off(env: Env) -> None:
    m = _booked_with(env, "kim@corp.example")
    env.directory.respond("kim@corp.example", m.provider_event_id, AttendeeStatus.DECLINED)
    responses.sync_responses(env.p, env.user_id())
    assert env.app.store.get_meeting(m.id).state == MeetingState.DECLINED
    status = env.app.store.get_stakeholder_status(env.user_id(), "kim@corp.example")
    assert status.backoff_until is not None
    assert status.backoff_until >= NOW + timedelta(weeks=4)  # half of the 8-week interval
    env.clock.advance(timedelta(days=3))
    run = env.plan()
    skipped = {s.stakeholder: s.code.value for s in run.plan.skipped}
    assert skipped["kim@corp.example"] == "backoff"
    assert not [
        x for x in env.meetings(MeetingState.APPROVED) if x.stakeholder_email == "kim@corp.example"
    ]


def test_unanswered_invites_in_a_row_pause_the_stakeholder(env: Env) -> None:
    for _ in range(2):  # etiquette.max_unanswered: 2
        m = _booked_with(env, "jo@corp.example")
        env.clock.advance(m.end - env.clock.now() + timedelta(minutes=1))
        responses.sync_responses(env.p, env.user_id())
        assert env.app.store.get_meeting(m.id).state == MeetingState.CANCELLED
    status = env.app.store.get_stakeholder_status(env.user_id(), "jo@corp.example")
    assert status.unanswered_in_row == 2
    assert status.paused_reason == "2 invites in a row went unanswered"
    run = env.plan()
    skipped = {s.stakeholder: s.reason for s in run.plan.skipped}
    assert "unanswered" in skipped["jo@corp.example"]


def test_cancelled_at_the_provider_is_followed(env: Env) -> None:
    m = _booked_with(env, "kim@corp.example")
    owner = Person("alex@corp.example", "Alex Doe", "Europe/London")
    env.directory.cancel_event(owner, m.provider_event_id)
    responses.sync_responses(env.p, env.user_id())
    assert env.app.store.get_meeting(m.id).state == MeetingState.CANCELLED


def test_a_moved_event_is_followed(env: Env) -> None:
    m = _booked_with(env, "kim@corp.example")
    new_start = m.start + timedelta(days=1)
    for email in ("alex@corp.example", "kim@corp.example"):
        path = env.calendars / f"{email}.ics"
        cal = icalendar.Calendar.from_ical(path.read_bytes())
        for ev in cal.walk("VEVENT"):
            if str(ev["UID"]) == m.provider_event_id:
                ev["DTSTART"].dt = new_start
                ev["DTEND"].dt = new_start + timedelta(minutes=30)
        path.write_bytes(cal.to_ical())
    responses.sync_responses(env.p, env.user_id())
    moved = env.app.store.get_meeting(m.id)
    assert moved.start == new_start
    assert moved.state == MeetingState.BOOKED


def test_slot_taken_before_booking_goes_back_to_planning(env: Env) -> None:
    env.plan()
    (m, *_) = env.meetings(MeetingState.APPROVED)
    kim = Person(m.stakeholder_email, "X", "Europe/London")
    env.directory.add_event(kim, m.start - timedelta(minutes=15), m.end + timedelta(minutes=15))
    result = booking.book_meeting(env.p, m.id)
    assert result.outcome == BookOutcome.SLOT_TAKEN
    assert env.app.store.get_meeting(m.id).state == MeetingState.CANCELLED
    user = env.app.store.get_user(env.user_id())
    assert user.next_plan_at <= env.clock.now()
    assert env.events_at_calendar(m.stakeholder_email) == []
    run = env.plan()
    fresh = [x for x in run.meeting_ids if x != m.id]
    new = env.app.store.get_meeting(fresh[0]) if fresh else None
    assert new is not None
    assert new.stakeholder_email == m.stakeholder_email
    assert not new.start < m.end + timedelta(minutes=15) or new.end <= m.start - timedelta(
        minutes=15
    )


class FlakyWriter:
    """A calendar that fails the first ``failures`` creates with ``error``, then works."""

    def __init__(self, inner: IcsDirectory, failures: int, error: Exception) -> None:
        self.inner = inner
        self.failures = failures
        self.error = error
        self.calls = 0

    def create_event(self, draft: EventDraft) -> CreatedEvent:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return self.inner.create_event(draft)

    def cancel_event(self, organizer: Person, provider_event_id: str) -> None:
        self.inner.cancel_event(organizer, provider_event_id)

    def cancel_by_key(self, organizer: Person, idempotency_key: str) -> None:
        self.inner.cancel_by_key(organizer, idempotency_key)

    def find_by_key(self, organizer: Person, idempotency_key: str) -> CreatedEvent | None:
        return self.inner.find_by_key(organizer, idempotency_key)


def _with_writer(env: Env, writer: object) -> None:
    real = BackendRegistry(env.app.settings)

    def factory(policy: Policy) -> CalendarBackend:
        b = real(policy)
        return CalendarBackend(b.provider, b.source, b.history, writer, b.responses)  # type: ignore[arg-type]

    env.p.backends = factory


def test_transient_errors_retry_with_backoff_then_book(env: Env) -> None:
    flaky = FlakyWriter(env.directory, 2, ProviderUnavailable("503", provider="ics", status=503))
    _with_writer(env, flaky)
    env.plan()
    (m, *_) = env.meetings(MeetingState.APPROVED)
    r1 = booking.book_meeting(env.p, m.id)
    assert r1.outcome == BookOutcome.RETRY
    assert env.app.store.get_meeting(m.id).next_attempt_at == NOW + timedelta(seconds=30)
    assert booking.book_meeting(env.p, m.id).outcome == BookOutcome.ALREADY  # not yet due
    env.clock.advance(timedelta(seconds=30))
    assert booking.book_meeting(env.p, m.id).outcome == BookOutcome.RETRY
    env.clock.advance(timedelta(seconds=60))
    assert booking.book_meeting(env.p, m.id).outcome == BookOutcome.BOOKED
    assert (
        len(
            [
                e
                for e in env.events_at_calendar()
                if str(e["UID"]) == env.app.store.get_meeting(m.id).provider_event_id
            ]
        )
        == 1
    )


def test_permanent_error_fails_with_the_reason(env: Env) -> None:
    _with_writer(
        env, FlakyWriter(env.directory, 99, InvalidRequest("bad attendee", provider="ics"))
    )
    env.plan()
    (m, *_) = env.meetings(MeetingState.APPROVED)
    assert booking.book_meeting(env.p, m.id).outcome == BookOutcome.FAILED
    failed = env.app.store.get_meeting(m.id)
    assert failed.state == MeetingState.FAILED
    assert "bad attendee" in (failed.last_error or "")


def test_retries_give_up_after_max_attempts(env: Env) -> None:
    _with_writer(env, FlakyWriter(env.directory, 99, ProviderUnavailable("down", provider="ics")))
    env.p.max_attempts = 3
    env.plan()
    (m, *_) = env.meetings(MeetingState.APPROVED)
    outcomes = []
    for _ in range(3):
        outcomes.append(booking.book_meeting(env.p, m.id).outcome)
        env.clock.advance(timedelta(hours=7))
    assert outcomes == [BookOutcome.RETRY, BookOutcome.RETRY, BookOutcome.FAILED]
    assert "gave up after 3 attempts" in (env.app.store.get_meeting(m.id).last_error or "")


def test_edited_policy_is_reread_and_a_broken_edit_keeps_the_last_good(env: Env) -> None:
    env.plan()
    user = env.app.store.get_user(env.user_id())
    assert user.next_plan_at > env.clock.now()
    env.clock.advance(timedelta(minutes=5))
    env.policy_path.write_text(POLICY.format(peer_mode="propose"))
    planning.register_policies(env.p)
    user = env.app.store.get_user(env.user_id())
    assert user.next_plan_at == env.clock.now()  # brought forward by the edit
    env.policy_path.write_text(POLICY.format(peer_mode="sometimes"))
    issues = planning.register_policies(env.p)
    assert issues
    assert issues[0].line == 14
    user = env.app.store.get_user(env.user_id())
    assert user.policy_error is not None
    assert "sometimes" in user.policy_error
    run = planning.plan_user(env.p, env.user_id())
    assert run.error is None  # the last good version (peers: propose) is used
    env.policy_path.write_text(POLICY.format(peer_mode="auto"))
    planning.register_policies(env.p)
    assert env.app.store.get_user(env.user_id()).policy_error is None


def test_a_malformed_policy_does_not_stop_other_users(env: Env) -> None:
    broken = env.policy_path.parent / "zed.yaml"
    broken.write_text("owner: {email: zed@corp.example, name: Zed, timezone: Mars/Olympus}\n")
    issues = planning.register_policies(env.p)
    assert {i.file for i in issues} == {str(broken)}
    assert env.app.store.get_user_by_email("zed@corp.example") is None
    run = planning.plan_user(env.p, env.user_id())
    assert run.error is None
    assert len(run.meeting_ids) == 3


def test_writes_are_idempotent_on_the_key(env: Env) -> None:
    env.plan()
    (m, *_) = env.meetings()
    again = NewMeeting(
        stakeholder_email=m.stakeholder_email, kind=m.kind, start=m.start, end=m.end,
        mode=m.mode, idempotency_key=m.idempotency_key, provider="ics",
    )  # fmt: skip
    assert env.app.store.add_meetings(env.user_id(), [again], now=NOW) == [m.id]


def test_two_users_who_list_each_other_get_one_meeting_not_two(env: Env) -> None:
    # Given Sam uses goodwill too and lists Alex (auto mode)
    (env.policy_path.parent / "sam.yaml").write_text(
        "owner: {email: sam@corp.example, name: Sam Lee, timezone: America/New_York}\n"
        "availability: {min_notice: 1d}\n"
        "tiers: {peer: {every: 4w, mode: auto}}\n"
        "stakeholders:\n"
        "  - {email: alex@corp.example, name: Alex Doe, tier: peer, timezone: Europe/London}\n"
        "allowed_domains: [corp.example]\n"
    )
    planning.register_policies(env.p)
    sam = env.app.store.get_user_by_email("sam@corp.example")
    assert sam is not None
    # When Sam's side books first, then Alex plans
    assert len(planning.plan_user(env.p, sam.id).meeting_ids) == 1
    env.book_all()
    run = planning.plan_user(env.p, env.user_id())
    # Then Alex's planner sees that meeting: no second coffee for the same pair
    skipped = {s.stakeholder: s.code.value for s in run.plan.skipped}
    assert skipped["sam@corp.example"] == "open_meeting"
    assert not [m for m in env.meetings() if m.stakeholder_email == "sam@corp.example"]
    # And when it takes place, both clocks reset
    (m,) = env.app.store.open_meetings(sam.id)
    env.directory.respond("alex@corp.example", m.provider_event_id, AttendeeStatus.ACCEPTED)
    env.clock.advance(m.end - env.clock.now() + timedelta(minutes=1))
    responses.sync_responses(env.p, sam.id)
    assert env.app.store.last_contacts(env.user_id())["sam@corp.example"] == m.end


def _two_owners_same_slot(env: Env) -> tuple[int, int]:
    (env.policy_path.parent / "priya.yaml").write_text(
        "owner: {email: priya@corp.example, name: Priya N, timezone: Europe/London}\n"
        "tiers: {peer: {every: 8w, mode: auto}}\n"
        "stakeholders:\n"
        "  - {email: kim@corp.example, name: Kim Ito, tier: peer}\n"
        "allowed_domains: [corp.example]\n"
    )
    _empty_calendar(env.calendars / "priya@corp.example.ics")
    planning.register_policies(env.p)
    priya = env.app.store.get_user_by_email("priya@corp.example")
    assert priya is not None
    start = datetime(2027, 3, 3, 10, 0, tzinfo=UTC)
    ids = []
    for user_id in (env.user_id(), priya.id):
        (mid,) = env.app.store.add_meetings(
            user_id,
            [
                NewMeeting(
                    stakeholder_email="kim@corp.example", kind="coffee", start=start,
                    end=start + timedelta(minutes=30), mode="auto",
                    idempotency_key=f"clash-{user_id}", provider="ics",
                    state=MeetingState.APPROVED,
                )
            ],
            now=NOW,
        )  # fmt: skip
        ids.append(mid)
    return ids[0], ids[1]


def test_two_owners_booking_the_same_person_at_once_yield_to_the_lower_id(env: Env) -> None:
    first, second = _two_owners_same_slot(env)
    # Given another worker is creating the first meeting's event right now
    assert env.app.store.claim_for_booking(first, NOW, 300) is not None
    # When the second is booked meanwhile, its provider re-check cannot see that event yet
    assert booking.book_meeting(env.p, second).outcome == BookOutcome.SLOT_TAKEN
    # Then only one invite ever reaches Kim
    assert env.events_at_calendar("kim@corp.example") == []
    assert env.app.store.get_meeting(second).state == MeetingState.CANCELLED


def test_the_lower_id_does_not_yield_to_a_later_claim(env: Env) -> None:
    first, second = _two_owners_same_slot(env)
    assert env.app.store.claim_for_booking(second, NOW, 300) is not None
    assert booking.book_meeting(env.p, first).outcome == BookOutcome.BOOKED
    assert len(env.events_at_calendar("kim@corp.example")) == 1


class LostReplyWriter(FlakyWriter):
    """The event is created at the provider, but the reply never arrives (first call)."""

    def create_event(self, draft: EventDraft) -> CreatedEvent:
        self.calls += 1
        created = self.inner.create_event(draft)
        if self.calls <= self.failures:
            raise self.error
        return created


def test_a_meeting_ended_after_a_lost_create_takes_its_stray_invite_back(env: Env) -> None:
    lost = LostReplyWriter(env.directory, 1, ProviderUnavailable("timeout", provider="ics"))
    _with_writer(env, lost)
    env.plan()
    kim = [
        m for m in env.meetings(MeetingState.APPROVED) if m.stakeholder_email == "kim@corp.example"
    ]
    (m,) = kim
    # Given the create went through but its reply was lost (the meeting is back to approved)
    assert booking.book_meeting(env.p, m.id).outcome == BookOutcome.RETRY
    assert len(env.events_at_calendar("kim@corp.example")) == 1
    # When Kim is removed from the policy before the retry
    env.policy_path.write_text(
        POLICY.format(peer_mode="auto").replace(
            "  - {email: kim@corp.example, name: Kim Ito, tier: peer, department: Finance}\n", ""
        )
    )
    env.clock.advance(timedelta(minutes=5))
    # Then the retry ends the meeting and cancels the invite that did go out
    assert booking.book_meeting(env.p, m.id).outcome == BookOutcome.CANCELLED
    assert env.events_at_calendar("kim@corp.example") == []
    assert env.app.store.get_meeting(m.id).state == MeetingState.CANCELLED


def _pair_planned_in_the_same_round(env: Env) -> tuple[int, int]:
    """Alex proposed Sam and Sam (a user too) auto-booked Alex, neither seeing the other."""
    (env.policy_path.parent / "sam.yaml").write_text(
        "owner: {email: sam@corp.example, name: Sam Lee, timezone: America/New_York}\n"
        "tiers: {peer: {every: 4w, mode: auto}}\n"
        "stakeholders:\n"
        "  - {email: alex@corp.example, name: Alex Doe, tier: peer, timezone: Europe/London}\n"
        "allowed_domains: [corp.example]\n"
    )
    planning.register_policies(env.p)
    sam = env.app.store.get_user_by_email("sam@corp.example")
    assert sam is not None
    made = []
    for user_id, who, day, state in (
        (env.user_id(), "sam@corp.example", 3, MeetingState.PROPOSED),
        (sam.id, "alex@corp.example", 4, MeetingState.APPROVED),
    ):
        start = datetime(2027, 3, day, 15, 0, tzinfo=UTC)
        (mid,) = env.app.store.add_meetings(
            user_id,
            [
                NewMeeting(
                    stakeholder_email=who, kind="coffee", start=start,
                    end=start + timedelta(minutes=30), mode=state.value,
                    idempotency_key=f"pair-{user_id}", provider="ics", state=state,
                )
            ],
            now=NOW,
        )  # fmt: skip
        made.append(mid)
    return made[0], made[1]


def test_one_coffee_per_pair_when_both_sides_planned_in_the_same_round(env: Env) -> None:
    alex_proposal, sam_meeting = _pair_planned_in_the_same_round(env)
    assert booking.book_meeting(env.p, sam_meeting).outcome == BookOutcome.BOOKED
    # Alex approves his own (older) proposal on another day: it must not become a second coffee,
    # and Alex is told so at once (it is withdrawn, not approved and then quietly cancelled)
    assert not decisions.approve(env.p, alex_proposal)
    assert env.app.store.get_meeting(alex_proposal).state == MeetingState.CANCELLED
    assert env.app.store.audit_trail(alex_proposal)[-1].detail == decisions.WITHDRAWN_PAIR
    assert booking.book_meeting(env.p, alex_proposal).outcome == BookOutcome.ALREADY
    sam_events = env.events_at_calendar("sam@corp.example")
    assert len(sam_events) == 1  # Sam's calendar holds exactly one goodwill coffee with Alex


def test_planning_withdraws_a_proposal_the_other_side_already_booked(env: Env) -> None:
    alex_proposal, sam_meeting = _pair_planned_in_the_same_round(env)
    assert booking.book_meeting(env.p, sam_meeting).outcome == BookOutcome.BOOKED
    run = planning.plan_user(env.p, env.user_id())
    assert env.app.store.get_meeting(alex_proposal).state == MeetingState.CANCELLED
    skipped = {s.stakeholder: s.code.value for s in run.plan.skipped}
    assert skipped["sam@corp.example"] == "open_meeting"


# -- a group meeting: one event with every attendee --------------------------------------------

GROUP = """\
groups:
  - name: platform
    members: [kim@corp.example, jo@corp.example, lee@corp.example, max@corp.example]
    kind: coffee
    duration: 60m
    size: "3..4"
    quorum: 0.6
allowed_domains: [corp.example]
"""
MEMBERS = {"kim@corp.example", "jo@corp.example", "lee@corp.example", "max@corp.example"}


class LosingWriter(FlakyWriter):
    """Creates the event, then loses the reply of the first ``failures`` creates."""

    def create_event(self, draft: EventDraft) -> CreatedEvent:
        self.calls += 1
        created = self.inner.create_event(draft)
        if self.calls <= self.failures:
            raise self.error
        return created


def _group_env(env: Env) -> None:
    for who in ("lee", "max"):
        _empty_calendar(env.calendars / f"{who}@corp.example.ics")
    text = POLICY.format(peer_mode="propose").replace("allowed_domains: [corp.example]\n", GROUP)
    env.policy_path.write_text(text)


def _approved_group(env: Env):  # type: ignore[no-untyped-def]
    env.plan()
    (m,) = [m for m in env.meetings(MeetingState.PROPOSED) if m.group_name == "platform"]
    assert decisions.approve(env.p, m.id)
    return m


def test_a_group_meeting_is_one_event_with_every_attendee(env: Env) -> None:
    _group_env(env)
    m = _approved_group(env)
    assert set(m.attendees) == MEMBERS
    assert [r.outcome for r in env.book_all()] == [BookOutcome.BOOKED]
    (event,) = env.events_at_calendar()
    invited = event.get("ATTENDEE")
    invited = invited if isinstance(invited, list) else [invited]
    assert {str(a).lower().removeprefix("mailto:") for a in invited} >= MEMBERS
    for email in MEMBERS:  # each attendee's calendar holds the same one event
        assert [str(e["UID"]) for e in env.events_at_calendar(email)] == [str(event["UID"])]
    assert "Presenting this time" in str(event["DESCRIPTION"])


def test_a_group_create_whose_reply_was_lost_is_not_sent_twice(env: Env) -> None:
    _group_env(env)
    _with_writer(env, LosingWriter(env.directory, 1, ProviderUnavailable("lost", provider="ics")))
    m = _approved_group(env)
    assert booking.book_meeting(env.p, m.id).outcome == BookOutcome.RETRY
    assert len(env.events_at_calendar()) == 1  # it got through
    env.clock.advance(timedelta(minutes=5))
    assert booking.book_meeting(env.p, m.id).outcome == BookOutcome.BOOKED
    assert len(env.events_at_calendar()) == 1
    assert (
        str(env.events_at_calendar()[0]["UID"]) == env.app.store.get_meeting(m.id).provider_event_id
    )


def test_group_answers_are_followed_per_attendee(env: Env) -> None:
    _group_env(env)
    m = _approved_group(env)
    env.book_all()
    booked = env.app.store.get_meeting(m.id)
    for email in booked.attendees[1:3]:
        env.directory.respond(email, booked.provider_event_id, AttendeeStatus.DECLINED)
    responses.sync_responses(env.p, env.user_id())
    after = env.app.store.get_meeting(m.id)
    assert after.state == MeetingState.BOOKED  # below the quorum, not cancelled
    assert sorted(a for _, a in after.attendee_status) == [
        "declined", "declined", "needsAction", "needsAction",
    ]  # fmt: skip
    details = [e.detail for e in env.app.store.audit_trail(m.id)]
    assert "group below quorum: 2 of 4 declined (needs 3)" in details
