"""The owner's decisions (``approve``, ``decline``) and expiring proposals, on every store."""

from __future__ import annotations

from datetime import timedelta

from scheduler.app import decisions
from scheduler.app.booking import BookOutcome
from scheduler.core.states import MeetingState
from tests.usecase.world import ALEX, KIM, NOW, PRIYA, PRIYA_POLICY, SAM, World, skip_codes

S = MeetingState


def _sams_proposal(world: World) -> int:
    world.plan()
    return world.only(ALEX, SAM, S.PROPOSED).id


def test_approve_is_a_compare_and_set_and_the_approved_meeting_is_booked(world: World) -> None:
    proposal = _sams_proposal(world)
    assert decisions.approve(world.p, proposal, actor=f"user:{ALEX}")
    assert not decisions.approve(world.p, proposal)  # a second approval changes nothing
    assert not decisions.decline(world.p, proposal)  # nor does a late decline
    approved = world.meeting(proposal)
    assert approved.state is S.APPROVED
    trail = world.store.audit_trail(proposal)
    assert [(e.actor, e.to_state) for e in trail][-1] == (f"user:{ALEX}", "approved")
    assert len(trail) == 2
    assert BookOutcome.BOOKED in [r.outcome for r in world.book_all()]
    assert world.meeting(proposal).state is S.BOOKED
    assert len(world.calendar.events(attendee=SAM)) == 1


def test_decline_is_a_compare_and_set_and_backs_the_stakeholder_off_for_a_week(
    world: World,
) -> None:
    proposal = _sams_proposal(world)
    world.advance(timedelta(minutes=10))
    declined_at = world.clock.now()
    assert decisions.decline(world.p, proposal)
    assert not decisions.decline(world.p, proposal)
    assert not decisions.approve(world.p, proposal)  # declined proposals stay declined
    assert world.meeting(proposal).state is S.CANCELLED
    status = world.store.get_stakeholder_status(world.user_id(), SAM)
    assert status.backoff_until == declined_at + decisions.DECLINE_BACKOFF
    assert status.last_declined_at is None  # the owner declined, not Sam
    # The next rounds leave Sam alone for the week, then propose again
    world.advance(timedelta(hours=1))
    assert skip_codes(world.plan())[SAM] == "backoff"
    world.advance(timedelta(days=7))
    run = world.plan()
    assert SAM not in skip_codes(run)
    assert world.only(ALEX, SAM, S.PROPOSED).id != proposal


def test_deciding_on_an_unknown_meeting_is_false(world: World) -> None:
    world.plan()
    assert not decisions.decline(world.p, 10_000)
    assert world.store.get_stakeholder_status(world.user_id(), SAM).backoff_until is None


def test_pending_proposals_lists_one_users_or_everyones_oldest_first(world: World) -> None:
    world.write_policy(PRIYA, PRIYA_POLICY)
    world.register()
    alex_later = world.add_meeting(ALEX, SAM, NOW + timedelta(days=3), state=S.PROPOSED)
    priya = world.add_meeting(PRIYA, KIM, NOW + timedelta(days=2), state=S.PROPOSED)
    alex_sooner = world.add_meeting(ALEX, KIM, NOW + timedelta(days=2), state=S.PROPOSED)
    world.add_meeting(ALEX, "jo@corp.example", NOW + timedelta(days=4))  # approved: not pending
    everyone = [m.id for m in decisions.pending_proposals(world.p)]
    assert everyone == [alex_later, priya, alex_sooner]
    mine = [m.id for m in decisions.pending_proposals(world.p, user_id=world.user_id(ALEX))]
    assert mine == [alex_later, alex_sooner]


def test_expire_proposals_expires_only_that_users_late_proposals(world: World) -> None:
    # Alex's minimum notice is a day: a proposal expires 12 hours before its slot
    world.write_policy(PRIYA, PRIYA_POLICY)
    world.register()
    late = world.add_meeting(ALEX, SAM, NOW + timedelta(hours=11), state=S.PROPOSED)
    in_time = world.add_meeting(ALEX, KIM, NOW + timedelta(hours=13), state=S.PROPOSED)
    approved = world.add_meeting(ALEX, "jo@corp.example", NOW + timedelta(hours=3))
    priyas_late = world.add_meeting(PRIYA, KIM, NOW + timedelta(minutes=30), state=S.PROPOSED)

    expired = decisions.expire_proposals(world.p, user_id=world.user_id(), policy=world.policy())

    assert expired == 1
    assert world.meeting(late).state is S.EXPIRED
    assert world.store.audit_trail(late)[-1].detail == "not approved in time"
    assert world.meeting(in_time).state is S.PROPOSED
    assert world.meeting(approved).state is S.APPROVED
    assert world.meeting(priyas_late).state is S.PROPOSED  # another user's
    # Running it again expires nothing more; run for everyone, it takes Priya's too
    assert decisions.expire_proposals(world.p, user_id=world.user_id(), policy=world.policy()) == 0
    assert decisions.expire_proposals(world.p) == 1
    assert world.meeting(priyas_late).state is S.EXPIRED
    assert world.meeting(in_time).state is S.PROPOSED  # 13 h ahead: the default 2 h notice


def test_planning_expires_a_late_proposal_and_proposes_a_fresh_slot(world: World) -> None:
    proposal = world.meeting(_sams_proposal(world))
    world.advance_past(proposal.start - timedelta(hours=12), timedelta(0))
    world.plan()
    assert world.meeting(proposal.id).state is S.EXPIRED
    fresh = world.only(ALEX, SAM, S.PROPOSED)
    assert fresh.start > proposal.start
