"""The owner's own actions (issue 12): approve/decline/choose an alternative, cancel, pause,
resume, snooze, and the page's data, on the fake store, SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import date, timedelta
from zoneinfo import ZoneInfo

import pytest

from scheduler.app import owner
from scheduler.app.owner import Outcome
from scheduler.app.owner_view import user_report
from scheduler.core.invites import invite_text
from scheduler.core.states import MeetingState
from tests.concurrency import run_together
from tests.usecase.world import ALEX, JO, KIM, NOW, PRIYA, PRIYA_POLICY, SAM, World, skip_codes

S = MeetingState
LONDON = ZoneInfo("Europe/London")


def _sams_proposal(world: World) -> int:
    world.plan()
    return world.only(ALEX, SAM, S.PROPOSED).id


# -- alternatives ------------------------------------------------------------------------------


def test_a_proposal_keeps_other_slots_on_other_days_under_the_same_rules(world: World) -> None:
    proposal = world.meeting(_sams_proposal(world))
    alts = proposal.alternatives
    assert 2 <= len(alts) <= 3
    chosen_day = proposal.start.astimezone(LONDON).date()
    days = [start.astimezone(LONDON).date() for start, _ in alts]
    assert chosen_day not in days
    assert len(set(days)) == len(days)
    for start, end in alts:
        local = start.astimezone(LONDON)
        assert end - start == timedelta(minutes=30)
        assert start >= NOW + timedelta(days=1)  # the minimum notice
        assert local.weekday() < 5
        assert local.hour >= 9
        assert end.astimezone(LONDON).hour < 17
        # Sam works in New York: the slot is inside his hours too (09:00-17:00 by default)
        assert start.astimezone(ZoneInfo("America/New_York")).hour >= 9


# -- approve, decline, choose ------------------------------------------------------------------


def test_approve_goes_through_decisions_and_a_second_approval_is_a_conflict(world: World) -> None:
    proposal = _sams_proposal(world)
    first = owner.approve(world.p, world.user_id(), proposal)
    assert first.outcome is Outcome.DONE, first.message
    assert world.meeting(proposal).state is S.APPROVED
    again = owner.approve(world.p, world.user_id(), proposal)
    assert (again.outcome, again.message) == (
        Outcome.CONFLICT,
        "This proposal was already approved.",
    )
    assert owner.decline(world.p, world.user_id(), proposal).outcome is Outcome.CONFLICT


def test_another_owners_meeting_is_not_found_for_every_action(world: World) -> None:
    proposal = _sams_proposal(world)
    world.write_policy(PRIYA, PRIYA_POLICY)
    world.register()
    priya = world.user_id(PRIYA)
    assert owner.meeting_for_owner(world.p, priya, proposal) is None
    assert owner.meeting_for_owner(world.p, world.user_id(), proposal) is not None
    for result in (
        owner.approve(world.p, priya, proposal),
        owner.decline(world.p, priya, proposal),
        owner.cancel(world.p, priya, proposal),
        owner.choose_alternative(world.p, priya, proposal, 0),
        owner.approve(world.p, priya, 10_000),
    ):
        assert result.outcome is Outcome.NOT_FOUND
    assert world.meeting(proposal).state is S.PROPOSED


def test_approving_a_slot_taken_meanwhile_offers_the_free_alternatives(world: World) -> None:
    proposal = world.meeting(_sams_proposal(world))
    world.calendar.add_busy(SAM, proposal.start, proposal.end)
    first_alt = proposal.alternatives[0]
    world.calendar.add_busy(ALEX, first_alt[0], first_alt[1])  # the owner's side this time
    result = owner.approve(world.p, world.user_id(), proposal.id)
    assert result.outcome is Outcome.SLOT_GONE
    offered = [a.index for a in result.alternatives]
    assert offered == list(range(1, len(proposal.alternatives)))
    assert world.meeting(proposal.id).state is S.PROPOSED
    # Choosing a free one moves the proposal there and approves it
    pick = result.alternatives[0]
    chosen = owner.choose_alternative(world.p, world.user_id(), proposal.id, pick.index)
    assert chosen.outcome is Outcome.DONE, chosen.message
    moved = world.meeting(proposal.id)
    assert (moved.start, moved.end, moved.state) == (pick.start, pick.end, S.APPROVED)
    # The busy one is refused with what is still free
    other = owner.choose_alternative(world.p, world.user_id(), proposal.id, 0)
    assert other.outcome is Outcome.CONFLICT


def test_a_busy_alternative_is_slot_gone_and_an_unknown_index_not_found(world: World) -> None:
    proposal = world.meeting(_sams_proposal(world))
    start, end = proposal.alternatives[1]
    world.calendar.add_busy(SAM, start, end)
    busy = owner.choose_alternative(world.p, world.user_id(), proposal.id, 1)
    assert busy.outcome is Outcome.SLOT_GONE
    assert 1 not in [a.index for a in busy.alternatives]
    assert owner.choose_alternative(world.p, world.user_id(), proposal.id, 7).outcome is (
        Outcome.NOT_FOUND
    )
    assert world.meeting(proposal.id).start == proposal.start


def test_an_expired_proposal_says_when_it_expired(world: World) -> None:
    proposal = world.meeting(_sams_proposal(world))
    world.advance_past(proposal.start - timedelta(hours=12))  # half of Alex's day of notice
    result = owner.approve(world.p, world.user_id(), proposal.id)
    day = world.clock.now().astimezone(LONDON)
    assert result.outcome is Outcome.CONFLICT
    assert result.message == f"This proposal expired on {day:%a} {day.day} {day:%b}."
    assert world.meeting(proposal.id).state is S.EXPIRED
    assert owner.approve(world.p, world.user_id(), proposal.id).message == result.message


def test_decline_backs_off_and_then_approve_is_refused_plainly(world: World) -> None:
    proposal = _sams_proposal(world)
    result = owner.decline(world.p, world.user_id(), proposal)
    assert result.outcome is Outcome.DONE
    assert "Sam Lee" in result.message
    late = owner.approve(world.p, world.user_id(), proposal)
    assert (late.outcome, late.message) == (Outcome.CONFLICT, "This proposal was already declined.")


def test_two_approvals_at_once_have_exactly_one_winner(world: World) -> None:
    proposal = _sams_proposal(world)
    outcomes: list[Outcome] = []
    lock = threading.Lock()

    def work(_: int, barrier: threading.Barrier) -> None:
        barrier.wait()
        result = owner.approve(world.p, world.user_id(), proposal)
        with lock:
            outcomes.append(result.outcome)

    run_together(4, work)
    assert sorted(outcomes) == sorted([Outcome.DONE] + [Outcome.CONFLICT] * 3)
    approvals = [e for e in world.store.audit_trail(proposal) if e.to_state == "approved"]
    assert len(approvals) == 1


# -- cancel ------------------------------------------------------------------------------------


def test_cancel_takes_the_invite_back_once_then_the_row(world: World) -> None:
    world.plan()
    kim = world.only(ALEX, KIM, S.APPROVED)
    world.book_all()
    booked = world.meeting(kim.id)
    assert booked.state is S.BOOKED
    result = owner.cancel(world.p, world.user_id(), kim.id)
    assert result.outcome is Outcome.DONE, result.message
    assert world.calendar.calls["cancel_event"] + world.calendar.calls["cancel_by_key"] == 1
    assert world.calendar.events(attendee=KIM) == []
    assert world.meeting(kim.id).state is S.CANCELLED
    again = owner.cancel(world.p, world.user_id(), kim.id)
    assert again.outcome is Outcome.CONFLICT
    assert again.message == "This meeting is already cancelled."
    assert world.calendar.calls["cancel_event"] + world.calendar.calls["cancel_by_key"] == 1


def test_cancel_all_cancels_every_meeting_ahead_and_nothing_past(world: World) -> None:
    world.plan()
    world.book_all()
    past = world.add_meeting(ALEX, JO, NOW - timedelta(days=2), state=S.APPROVED, key="old")
    ahead = {m.id for m in owner.to_cancel(world.p, world.user_id())}
    assert past not in ahead
    assert len(ahead) == 3
    results = owner.cancel_all(world.p, world.user_id())
    assert [r.outcome for r in results] == [Outcome.DONE] * 3
    assert owner.to_cancel(world.p, world.user_id()) == []
    assert world.calendar.events() == []
    assert world.meeting(past).state is S.APPROVED


# -- pause, resume, snooze -----------------------------------------------------------------------


def test_a_paused_owner_gets_no_proposals_and_approved_meetings_wait(world: World) -> None:
    world.register()
    approved = world.add_meeting(ALEX, KIM, NOW + timedelta(days=10))
    until = date(2027, 3, 5)  # Friday, in London
    result = owner.pause(world.p, world.user_id(), until)
    assert result.outcome is Outcome.DONE
    assert "Fri 5 Mar" in result.message
    assert world.user().paused_until == NOW.replace(day=6, hour=0)  # GMT in March: UTC
    run = world.plan()
    assert run.plan is not None
    assert run.plan.proposals == ()
    assert skip_codes(run) == {SAM: "paused", JO: "paused", KIM: "open_meeting"}
    reasons = {s.stakeholder: s.reason for s in run.plan.skipped}
    assert reasons[SAM].startswith("paused until the end of Fri 5 Mar 2027")
    assert world.store.approved_needing_send(world.clock.now(), 10) == []
    assert world.calendar.calls["busy"] == 1  # the owner's calendar only, for responses/history
    # Resuming sends the approved meeting and plans again at once
    assert owner.resume(world.p, world.user_id()).outcome is Outcome.DONE
    assert world.user().paused_until is None
    assert world.store.approved_needing_send(world.clock.now(), 10) == [approved]
    assert world.plan().plan.proposals  # type: ignore[union-attr]


def test_a_booking_already_queued_when_the_owner_pauses_waits_for_the_pause(world: World) -> None:
    world.register()
    approved = world.add_meeting(ALEX, KIM, NOW + timedelta(days=10))
    assert owner.pause(world.p, world.user_id(), date(2027, 3, 5)).outcome is Outcome.DONE
    result = world.book(approved)  # the message was on the queue before the pause
    assert result.detail == "held: the owner paused goodwill"
    held = world.meeting(approved)
    assert held.state is S.APPROVED
    assert held.attempts == 0
    assert held.next_attempt_at == world.user().paused_until
    assert world.calendar.calls["create_event"] == 0


def test_a_pause_ends_by_itself_and_can_cancel_what_is_booked(world: World) -> None:
    world.plan()
    world.book_all()
    booked = [m.id for m in world.meetings() if m.state is S.BOOKED]
    proposed = [m.id for m in world.meetings() if m.state is S.PROPOSED]
    assert booked  # both kinds, so the test can tell them apart
    assert proposed
    result = owner.pause(world.p, world.user_id(), date(2027, 3, 2), cancel_booked=True)
    assert result.outcome is Outcome.DONE
    n = len(booked)
    assert f"{n} booked meeting{'s' if n != 1 else ''} cancelled" in result.message
    assert "Proposals stay" in result.message
    assert world.calendar.events() == []
    assert all(world.meeting(i).state is S.CANCELLED for i in booked)
    assert all(world.meeting(i).state is S.PROPOSED for i in proposed)  # they wait
    past_day = owner.pause(world.p, world.user_id(), date(2027, 2, 28))
    assert past_day.outcome is Outcome.CONFLICT
    world.advance(timedelta(days=2))  # past the end of Tue 2 Mar
    assert not world.user().paused_at(world.clock.now())
    assert world.plan().plan.proposals  # type: ignore[union-attr]


def test_snooze_pauses_the_stakeholder_and_declines_open_proposals(world: World) -> None:
    proposal = _sams_proposal(world)
    with pytest.raises(ValueError, match="2, 4 or 8"):
        owner.snooze(world.p, world.user_id(), SAM, 3)
    assert owner.snooze(world.p, world.user_id(), "nobody@corp.example", 2).outcome is (
        Outcome.NOT_FOUND
    )
    result = owner.snooze(world.p, world.user_id(), SAM, 4)
    assert result.outcome is Outcome.DONE
    assert world.meeting(proposal).state is S.CANCELLED
    status = world.store.get_stakeholder_status(world.user_id(), SAM)
    assert status.paused_until == NOW + timedelta(weeks=4)
    assert status.paused_reason == "snoozed by you"
    world.advance(timedelta(days=8))  # past the decline's week of back-off
    run = world.plan()
    assert skip_codes(run)[SAM] == "paused"
    assert run.plan is not None
    assert [s.reason for s in run.plan.skipped if s.stakeholder == SAM] == [
        "paused: snoozed by you"
    ]


# -- the page ----------------------------------------------------------------------------------


def test_owner_view_shows_proposals_as_they_will_be_sent_and_the_report(world: World) -> None:
    proposal = _sams_proposal(world)
    world.book_all()
    view = owner.owner_view(world.p, world.user_id())
    assert view is not None
    assert (view.email, view.name, view.zone, view.paused_until) == (
        ALEX,
        "Alex Doe",
        "Europe/London",
        None,
    )
    (p,) = view.proposals
    policy = world.policy()
    sam = policy.stakeholder(SAM)
    assert sam is not None
    assert (p.meeting.id, p.stakeholder_name, p.stakeholder_zone) == (
        proposal,
        "Sam Lee",
        "America/New_York",
    )
    assert (p.invite_title, p.invite_body) == invite_text(policy, sam, policy.person_of(sam))
    assert [(a.start, a.end) for a in p.alternatives] == list(p.meeting.alternatives)
    assert p.reason == world.meeting(proposal).reason
    assert {(u.stakeholder_name, u.status) for u in view.upcoming} == {
        ("Kim Ito", "invited"),
        ("Jo Park", "invited"),
    }
    assert view.report == user_report(world.p, world.user(), policy, now=world.clock.now())
    assert view.policy_problems == ()
    assert owner.owner_view(world.p, 10_000) is None


def test_owner_view_lists_the_validate_lines_of_a_broken_file(world: World) -> None:
    world.register()
    path = world.write_policy(ALEX, "owner: {email: alex@corp.example\n")
    view = owner.owner_view(world.p, world.user_id())
    assert view is not None
    assert view.policy_problems
    assert all(line.startswith(f"{path}:") for line in view.policy_problems)


# -- group meetings and introductions -------------------------------------------------------------


def _group_proposal(world: World, start_hours: int = 50) -> int:
    from scheduler.app.records import NewMeeting
    from tests.usecase.fakes import FAKE_PROVIDER

    world.register()
    start = (NOW + timedelta(hours=start_hours)).replace(minute=0, second=0, microsecond=0)
    (meeting_id,) = world.store.add_meetings(
        world.user_id(),
        [
            NewMeeting(
                stakeholder_email=SAM,
                kind="lunch",
                start=start,
                end=start + timedelta(hours=1),
                mode="propose",
                idempotency_key=f"group-{start_hours}",
                provider=FAKE_PROVIDER,
                reason="every 4w, never held",
                attendees=(SAM, KIM),
                group_name="quokka-lunch",
                presenter=SAM,
                quorum=1,
            )
        ],
        now=world.clock.now(),
    )
    return meeting_id


def test_owner_view_shows_a_group_proposal_with_its_people_and_the_event_as_sent(
    world: World,
) -> None:
    meeting_id = _group_proposal(world)
    view = owner.owner_view(world.p, world.user_id())
    assert view is not None
    (p,) = [p for p in view.proposals if p.meeting.id == meeting_id]
    assert p.group_name == "quokka-lunch"
    assert p.headline == "Lunch: quokka-lunch"
    assert [a.email for a in p.attendees] == [SAM, KIM]
    assert [a.presenter for a in p.attendees] == [True, False]
    assert [a.answer for a in p.attendees] == ["", ""]  # nobody is invited yet
    assert p.presenter_name == world.policy().stakeholder(SAM).name  # type: ignore[union-attr]
    assert p.quorum == 1
    assert p.invite_title == "Lunch: quokka-lunch"
    assert f"Presenting this time: {p.presenter_name}." in p.invite_body
    assert p.alternatives == ()
    assert p.owner_note == ""


def test_a_group_proposal_is_approved_after_everyones_recheck_and_declined_plainly(
    world: World,
) -> None:
    taken = _group_proposal(world)
    m = world.meeting(taken)
    world.calendar.add_busy(SAM, m.start, m.end)
    world.calendar.add_busy(KIM, m.start, m.end)  # fewer than the quorum are free
    gone = owner.approve(world.p, world.user_id(), taken)
    assert gone.outcome is Outcome.SLOT_GONE, gone.message
    assert gone.alternatives == ()
    assert world.meeting(taken).state is S.PROPOSED
    declined = owner.decline(world.p, world.user_id(), taken)
    assert (declined.outcome, declined.message) == (Outcome.DONE, "Declined: Lunch: quokka-lunch.")
    assert world.store.get_stakeholder_status(world.user_id(), SAM).backoff_until is None
    free = _group_proposal(world, start_hours=74)
    done = owner.approve(world.p, world.user_id(), free)
    assert done.outcome is Outcome.DONE, done.message
    assert world.meeting(free).state is S.APPROVED
