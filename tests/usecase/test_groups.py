"""Group meetings through the pipeline: planned from the store, booked as ONE event with every
attendee, followed per attendee against the quorum, on every store."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from scheduler.app import decisions, replies, responses
from scheduler.app.booking import BookOutcome
from scheduler.app.groups import (
    below_quorum_text,
    group_history,
    group_new_meetings,
    group_refusal,
)
from scheduler.app.records import Meeting, NewMeeting
from scheduler.app.replies import IncomingReply
from scheduler.app.responses import ReplyOutcome
from scheduler.core.errors import ProviderUnavailable
from scheduler.core.groups import GroupProposal
from scheduler.core.model import AttendeeStatus
from scheduler.core.states import MeetingState
from tests.usecase.fakes import FAKE_PROVIDER
from tests.usecase.world import (
    ALEX,
    JO,
    KIM,
    NOW,
    PRIYA,
    PRIYA_POLICY,
    SAM,
    World,
    alex_policy,
    skip_codes,
)

S = MeetingState
A = AttendeeStatus
LEE, MAX, ZED = "lee@corp.example", "max@corp.example", "zed@corp.example"
MEMBERS = (KIM, JO, LEE, MAX)

GROUP = """\
groups:
  - name: platform
    members: [kim@corp.example, jo@corp.example, lee@corp.example, max@corp.example]
    every: 4w
    kind: coffee
    duration: 60m
    size: "3..4"
    quorum: 0.6
    location: Room 4
"""


def _with_group(world: World, group: str = GROUP) -> None:
    world.write_policy(ALEX, alex_policy(peer_mode="propose", extra=group))


def _group(world: World, state: MeetingState | None = None) -> Meeting:
    (found,) = [m for m in world.meetings(ALEX, state) if m.group_name == "platform"]
    return found


def _booked_group(world: World) -> Meeting:
    _with_group(world)
    world.plan()
    m = _group(world, S.PROPOSED)
    assert decisions.approve(world.p, m.id)
    [result] = [world.book(i) for i in world.store.approved_needing_send(world.clock.now(), 10)]
    assert result.outcome is BookOutcome.BOOKED, result.detail
    return world.meeting(m.id)


def _sync(world: World) -> int:
    return responses.sync_responses(world.p, world.user_id())


# -- planning -------------------------------------------------------------------------------


def test_a_group_proposal_is_written_as_one_proposed_meeting_with_its_attendees(
    world: World,
) -> None:
    _with_group(world)
    run = world.plan()
    assert run.plan is not None
    assert len(run.plan.group_proposals) == 1
    [proposal] = run.plan.group_proposals
    m = _group(world)
    assert m.state is S.PROPOSED
    assert m.mode == "propose"
    assert set(m.attendees) == set(MEMBERS)
    assert len(m.attendees) == 4
    assert m.stakeholder_email == m.attendees[0] == proposal.attendees[0]
    assert m.presenter == proposal.presenter == m.attendees[0]
    assert m.quorum == proposal.quorum == 3  # ceil(0.6 × 4)
    assert (m.start, m.end, m.kind) == (proposal.start, proposal.end, "coffee")
    assert dict(m.attendee_status) == dict.fromkeys(MEMBERS, "needsAction")
    assert m.id in run.meeting_ids


def test_the_round_reads_busy_time_once_for_the_owner_stakeholders_and_members(
    world: World,
) -> None:
    _with_group(world)
    world.plan()
    assert world.calendar.calls["busy"] == 1


def test_planning_again_proposes_no_second_group_meeting(world: World) -> None:
    _with_group(world)
    world.plan()
    first = _group(world)
    world.advance(timedelta(hours=1))
    world.plan()
    assert _group(world) == first  # the open one stands; no second row


def test_the_open_group_meeting_is_nobodys_open_one_to_one(world: World) -> None:
    _with_group(world)
    world.plan()
    proposed = {m.stakeholder_email for m in world.meetings(ALEX) if m.group_name is None}
    assert {KIM, JO} <= proposed  # their one-to-ones are proposed beside the group


def test_no_member_gets_a_one_to_one_in_the_week_of_their_group_meeting(world: World) -> None:
    # etiquette.max_per_stakeholder_per_week defaults to 1: the group counts for every attendee.
    _with_group(world)
    world.plan()
    group = _group(world)
    week = group.start.isocalendar()[:2]
    for m in world.meetings(ALEX):
        if m.group_name is None and m.stakeholder_email in group.attendees:
            assert m.start.isocalendar()[:2] != week, m
    # The open group meeting reaches the next round's planner for each attendee.
    history = group_history(world.store, world.user_id(), world.clock.now())
    assert {e: list(v) for e, v in history.attended.items()} == {
        e: [group.start] for e in group.attendees
    }


def test_a_senior_member_is_not_invited_before_a_one_to_one(world: World) -> None:
    group = GROUP.replace("members: [kim", "members: [sam@corp.example, kim")
    _with_group(world, group)
    world.plan()
    assert SAM not in _group(world).attendees
    history = group_history(world.store, world.user_id(), world.clock.now())
    assert history.one_to_one_done == set()


def test_the_owner_declining_a_group_proposal_backs_nobody_off(world: World) -> None:
    _with_group(world)
    world.plan()
    m = _group(world, S.PROPOSED)
    assert decisions.decline(world.p, m.id)
    for email in m.attendees:
        assert world.store.get_stakeholder_status(world.user_id(), email).backoff_until is None


def test_a_group_above_one_busy_read_is_trimmed_with_a_reason(world: World) -> None:
    many = tuple(f"p{i:02}@corp.example" for i in range(25))
    g = GroupProposal("big", many, many[0], NOW + timedelta(days=2),
                      NOW + timedelta(days=2, hours=1), "lunch", quorum=15)  # fmt: skip
    [graph] = group_new_meetings(world.p, 1, [g], "microsoft")
    assert graph.attendees == many[:19]
    assert graph.quorum == 15
    assert "invites 19 of 25: one microsoft busy read takes at most 20 calendars" in graph.reason
    [google] = group_new_meetings(world.p, 1, [g], "google")
    assert google.attendees == many
    [again] = group_new_meetings(world.p, 1, [g], "google")
    assert again.idempotency_key == google.idempotency_key  # user + group + start


# -- booking --------------------------------------------------------------------------------


def test_an_approved_group_books_one_event_with_every_attendee(world: World) -> None:
    m = _booked_group(world)
    assert m.state is S.BOOKED
    [event] = world.calendar.events(organizer=ALEX)
    assert event.id == m.provider_event_id
    assert event.attendees == m.attendees
    assert world.calendar.calls["create_event"] == 1
    presenter = world.policy().stakeholder(m.attendees[0])
    assert presenter is not None
    assert f"Presenting this time: {presenter.name}." in event.description
    assert "Room 4" in event.description
    assert m.reason not in event.description  # the owner's "why" stays private


def test_a_lost_create_is_found_by_key_on_retry_and_never_sent_twice(world: World) -> None:
    _with_group(world)
    world.plan()
    m = _group(world, S.PROPOSED)
    decisions.approve(world.p, m.id)
    world.calendar.lose_next_create_reply(ProviderUnavailable("reply lost", provider="fake"))
    assert world.book(m.id).outcome is BookOutcome.RETRY
    world.advance(timedelta(minutes=5))
    assert world.book(m.id).outcome is BookOutcome.BOOKED
    assert len(world.calendar.events(organizer=ALEX)) == 1
    assert world.calendar.calls["create_event"] == 1
    assert world.calendar.calls["find_by_key"] == 1


def test_booking_rechecks_every_attendee_and_keeps_the_quorum(world: World) -> None:
    _with_group(world)
    world.plan()
    m = _group(world, S.PROPOSED)
    world.calendar.add_busy(m.attendees[-1], m.start, m.end)  # one of four: 3 still free
    decisions.approve(world.p, m.id)
    assert world.book(m.id).outcome is BookOutcome.BOOKED


def test_booking_ends_when_the_quorum_is_no_longer_free(world: World) -> None:
    _with_group(world)
    world.plan()
    m = _group(world, S.PROPOSED)
    for email in m.attendees[-2:]:
        world.calendar.add_busy(email, m.start, m.end)
    decisions.approve(world.p, m.id)
    result = world.book(m.id)
    assert result.outcome is BookOutcome.SLOT_TAKEN
    assert result.detail == "slot_taken: only 2 of 4 attendees free, quorum 3"
    assert world.calendar.calls["create_event"] == 0


def _rivals_group_booked(world: World, m: Meeting, attendee: str) -> int:
    """Priya's own group meeting, booked, at ``m``'s time, with ``attendee`` invited."""
    now = world.clock.now()
    [theirs] = world.store.add_meetings(
        world.user_id(PRIYA),
        [NewMeeting(stakeholder_email=ZED, kind="lunch", start=m.start, end=m.end,
                    mode="propose", idempotency_key="priya-group", provider=FAKE_PROVIDER,
                    state=S.APPROVED, attendees=(ZED, attendee), group_name="theirs",
                    quorum=1)],
        now=now,
    )  # fmt: skip
    assert world.store.claim_for_booking(theirs, now, 300) is not None
    assert world.store.transition(theirs, S.BOOKED, actor="test", now=now)
    return theirs


def test_a_clash_with_another_owners_group_meeting_is_seen_for_any_attendee(
    world: World,
) -> None:
    _with_group(world)
    world.write_policy(PRIYA, PRIYA_POLICY)
    world.plan()
    m = _group(world, S.PROPOSED)
    # Priya's own group meeting at the same time invites one of Alex's attendees (not first).
    theirs = _rivals_group_booked(world, m, m.attendees[2])
    decisions.approve(world.p, m.id)
    result = world.book(m.id)
    assert result.outcome is BookOutcome.SLOT_TAKEN
    assert result.detail == f"slot_taken: clashes with meeting {theirs}"


def test_a_group_meeting_above_the_providers_busy_read_is_refused(world: World) -> None:
    _with_group(world)
    world.plan()
    m = replace(_group(world), attendees=tuple(f"p{i}@corp.example" for i in range(20)))
    refused = group_refusal(world.policy(), m, "microsoft")
    assert refused is not None
    assert refused[0] is S.FAILED
    assert refused[1].startswith("too many attendees: 20 is more than the 19")
    assert group_refusal(world.policy(), m, "google") is None


# -- answers --------------------------------------------------------------------------------


def test_answers_are_followed_per_attendee_and_the_quorum_accepts(world: World) -> None:
    m = _booked_group(world)
    event = m.provider_event_id or ""
    for email in m.attendees[:2]:
        world.calendar.respond(event, A.ACCEPTED, attendee=email)
    _sync(world)
    assert dict(world.meeting(m.id).attendee_status)[m.attendees[1]] == "accepted"
    assert world.meeting(m.id).state is S.BOOKED  # 2 accepted, quorum 3
    world.calendar.respond(event, A.ACCEPTED, attendee=m.attendees[2])
    _sync(world)
    assert world.meeting(m.id).state is S.ACCEPTED
    assert _sync(world) == 0


def test_declines_below_the_quorum_tell_the_owner_and_cancel_nothing(world: World) -> None:
    m = _booked_group(world)
    event = m.provider_event_id or ""
    world.calendar.respond(event, A.DECLINED, attendee=m.attendees[1])
    _sync(world)
    assert not any("below quorum" in e.detail for e in world.store.audit_trail(m.id))
    world.calendar.respond(event, A.DECLINED, attendee=m.attendees[2])
    _sync(world)
    _sync(world)
    told = [e.detail for e in world.store.audit_trail(m.id) if "below quorum" in e.detail]
    assert told == [below_quorum_text(2, 4, 3)] == ["group below quorum: 2 of 4 declined (needs 3)"]
    assert world.meeting(m.id).state is S.BOOKED
    assert not world.calendar.event(event).cancelled


def test_a_held_group_meeting_counts_as_contact_for_everyone_who_did_not_decline(
    world: World,
) -> None:
    m = _booked_group(world)
    event = m.provider_event_id or ""
    world.calendar.respond(event, A.ACCEPTED, attendee=m.attendees[0])
    world.calendar.respond(event, A.DECLINED, attendee=m.attendees[1])
    world.advance_past(m.end)
    _sync(world)
    assert world.meeting(m.id).state is S.COMPLETED
    contacts = world.store.last_contacts(world.user_id())
    assert {e for e in m.attendees if contacts.get(e) == m.end} == set(m.attendees) - {
        m.attendees[1]
    }
    history = group_history(world.store, world.user_id(), world.clock.now())
    assert history.last_held == {"platform": m.start}
    assert history.presented == {"platform": {m.attendees[0]: m.start}}
    assert history.open_groups == set()


def test_the_next_meeting_rotates_the_presenter(world: World) -> None:
    m = _booked_group(world)
    world.calendar.respond(m.provider_event_id or "", A.ACCEPTED, attendee=m.attendees[0])
    world.advance_past(m.end)
    _sync(world)
    world.advance(timedelta(weeks=3))
    world.plan()
    [nxt] = [x for x in world.meetings(ALEX, S.PROPOSED) if x.group_name == "platform"]
    assert nxt.presenter is not None
    assert nxt.presenter != m.presenter


def test_a_presenter_who_declines_is_told_and_does_not_count_as_presented(world: World) -> None:
    from scheduler.app.digest import describe_event
    from scheduler.app.groups import PRESENTER_DECLINED
    from scheduler.app.owner_groups import attendee_views, presenter_declined_text

    m = _booked_group(world)
    assert m.presenter == m.attendees[0]
    event = m.provider_event_id or ""
    world.calendar.respond(event, A.DECLINED, attendee=m.presenter)
    for email in m.attendees[1:]:
        world.calendar.respond(event, A.ACCEPTED, attendee=email)
    _sync(world)
    _sync(world)
    rows = [e for e in world.store.audit_trail(m.id) if e.detail.startswith(PRESENTER_DECLINED)]
    assert len(rows) == 1  # told once; the event is left as it is
    after = world.meeting(m.id)
    assert after.state is S.ACCEPTED
    assert after.presenter == m.presenter
    assert not world.calendar.event(event).cancelled
    policy = world.policy(ALEX)
    said = presenter_declined_text(policy, after)
    assert said.endswith(
        "the presenter, declined: the coffee stands without a presenter; pick one or "
        "present yourself"
    )
    assert not any(v.presenter for v in attendee_views(policy, after))
    assert describe_event(rows[0], after, "platform", policy) == said
    world.advance_past(m.end)
    _sync(world)
    assert world.meeting(m.id).state is S.COMPLETED
    history = group_history(world.store, world.user_id(), world.clock.now())
    assert history.presented == {}


# -- answers by e-mail (iMIP REPLY) -----------------------------------------------------------


def _mailed(m: Meeting, sender: str, attendee: str, answer: AttendeeStatus) -> IncomingReply:
    return IncomingReply(
        uid=m.provider_event_id or "",
        attendee=attendee,
        answer=answer,
        sequence=None,
        senders=(sender,),
        digest=f"{m.id}-{sender}-{attendee}-{answer.value}",
    )


def test_a_mailed_reply_from_any_attendee_applies_to_that_attendee(world: World) -> None:
    m = _booked_group(world)
    third = m.attendees[2]  # neither the first attendee nor the presenter
    decision = replies.receive_reply(world.p, _mailed(m, third, third, A.ACCEPTED))
    assert decision.outcome is ReplyOutcome.APPLIED, decision.result.detail
    assert decision.stakeholder == third
    answers = dict(world.meeting(m.id).attendee_status)
    assert answers[third] == "accepted"
    assert [e for e, a in answers.items() if a != "needsAction"] == [third]
    assert world.store.held_replies(world.user_id()) == []
    assert world.calendar.event(m.provider_event_id or "").answer_of(third) is A.ACCEPTED


def test_a_mailed_reply_from_one_attendee_for_another_is_held(world: World) -> None:
    m = _booked_group(world)
    jo_like, other = m.attendees[1], m.attendees[3]
    decision = replies.receive_reply(world.p, _mailed(m, jo_like, other, A.DECLINED))
    assert decision.outcome is ReplyOutcome.HELD
    assert f"not by {other}" in decision.result.detail
    assert dict(world.meeting(m.id).attendee_status)[other] == "needsAction"
    assert world.calendar.calls["set_attendee_status"] == 0
    # The owner vouches: it applies to the attendee it answers for, nobody else.
    assert decision.held is not None
    accepted = replies.accept_held_reply(world.p, decision.held.id)
    assert accepted.outcome is ReplyOutcome.APPLIED
    answers = dict(world.meeting(m.id).attendee_status)
    assert answers[other] == "declined"
    assert answers[jo_like] == "needsAction"


def test_a_mailed_reply_for_someone_not_invited_to_the_group_is_held_then_refused(
    world: World,
) -> None:
    m = _booked_group(world)
    decision = replies.receive_reply(world.p, _mailed(m, ZED, ZED, A.ACCEPTED))
    assert decision.outcome is ReplyOutcome.HELD
    assert f"answers for {ZED}, but the invitation went to" in decision.result.detail
    assert decision.held is not None
    refused = replies.accept_held_reply(world.p, decision.held.id)
    assert refused.outcome is ReplyOutcome.REFUSED
    assert all(a == "needsAction" for _, a in world.meeting(m.id).attendee_status)


# -- the cross-owner weekly cap, for group members ---------------------------------------------


def _priyas_group_meetings_with(world: World, email: str, weeks: int = 3) -> None:
    """Two of Priya's group meetings with ``email`` (never her first attendee) every week."""
    world.write_policy(PRIYA, PRIYA_POLICY)
    world.register()
    at = NOW.replace(hour=18)
    new = [
        NewMeeting(stakeholder_email=ZED, kind="coffee", start=at + timedelta(days=d),
                   end=at + timedelta(days=d, minutes=30), mode="propose",
                   idempotency_key=f"priya-g{d}", provider=FAKE_PROVIDER, state=S.PROPOSED,
                   attendees=(ZED, email), group_name="theirs", quorum=1)
        for w in range(weeks) for d in (7 * w + 1, 7 * w + 2)
    ]  # fmt: skip
    world.store.add_meetings(world.user_id(PRIYA), new, now=world.clock.now())


def test_a_member_at_the_weekly_cap_across_owners_is_not_invited(world: World) -> None:
    _priyas_group_meetings_with(world, LEE)
    _with_group(world)
    run = world.plan()
    assert run.plan is not None
    [proposal] = run.plan.group_proposals
    assert LEE not in proposal.attendees
    assert set(proposal.attendees) == {KIM, JO, MAX}
    assert "1 not invited: already have the most goodwill meetings a week that week" in (
        proposal.reason
    )
    assert "priya" not in proposal.reason.lower()
    assert LEE not in _group(world, S.PROPOSED).attendees


def test_group_meetings_count_towards_each_attendees_weekly_cap_for_one_to_ones(
    world: World,
) -> None:
    _priyas_group_meetings_with(world, KIM)  # Kim is Alex's peer and Priya's attendee
    run = world.plan()
    assert run.plan is not None
    assert KIM not in {p.stakeholder for p in run.plan.proposals}
    assert skip_codes(run)[KIM] == "stakeholder_busy"


# -- declined and taken group proposals ------------------------------------------------------


def test_a_group_the_owner_declined_is_backed_off_like_a_one_to_one(world: World) -> None:
    _with_group(world)
    world.plan()
    m = _group(world, S.PROPOSED)
    assert decisions.decline(world.p, m.id)
    world.advance(timedelta(hours=1))
    run = world.plan()
    assert run.plan is not None
    assert run.plan.group_proposals == ()
    [skip] = [g for g in run.plan.group_skipped if g.group == "platform"]
    assert skip.code == "backoff"
    until = NOW + decisions.DECLINE_BACKOFF
    assert skip.reason == f"backing off after you declined it until {until:%Y-%m-%d}"
    assert [x.state for x in world.meetings(ALEX) if x.group_name] == [S.CANCELLED]
    world.advance(decisions.DECLINE_BACKOFF)
    run = world.plan()
    assert run.plan is not None
    assert [g.group for g in run.plan.group_proposals] == ["platform"]


def test_a_taken_group_slot_is_planned_again_in_another_slot(world: World) -> None:
    _with_group(world)
    world.write_policy(PRIYA, PRIYA_POLICY)
    world.plan()
    m = _group(world, S.PROPOSED)
    _rivals_group_booked(world, m, m.attendees[1])
    decisions.approve(world.p, m.id)
    assert world.book(m.id).outcome is BookOutcome.SLOT_TAKEN
    assert world.user().next_plan_at == world.clock.now()  # planned again at once
    run = world.plan()
    assert run.plan is not None
    [again] = run.plan.group_proposals
    assert again.start != m.start
    assert again.end <= m.start or again.start >= m.end  # not the same slot, nor over it
    assert _group(world, S.PROPOSED).start == again.start


# -- a senior is asked at most once a day across owners, in groups too -------------------------


def test_a_senior_member_another_owner_invited_today_waits_until_tomorrow(world: World) -> None:
    # Sam (senior) has met Alex one-to-one, so the group may invite Sam ...
    world.register()
    done = world.add_meeting(ALEX, SAM, NOW - timedelta(days=14), key="alex-sam-done")
    assert world.store.claim_for_booking(done, NOW, 300) is not None
    assert world.store.transition(done, S.BOOKED, actor="test", now=NOW)
    assert world.store.transition(done, S.COMPLETED, actor="test", now=NOW)
    # ... but Priya's goodwill invite to Sam was approved today (going out).
    world.write_policy(PRIYA, PRIYA_POLICY)
    world.register()
    world.add_meeting(PRIYA, SAM, NOW + timedelta(days=3), state=S.APPROVED, key="priya-sam")
    group = GROUP.replace("members: [kim", "members: [sam@corp.example, kim").replace(
        'size: "3..4"', 'size: "5"'
    )
    _with_group(world, group)
    run = world.plan()
    assert run.plan is not None
    assert run.plan.group_proposals == ()
    [skip] = [g for g in run.plan.group_skipped if g.group == "platform"]
    assert skip.code == "stakeholder_busy"
    assert "1 senior, already asked by goodwill today (asked tomorrow)" in skip.reason
    assert "priya" not in skip.reason.lower()
    assert "@" not in skip.reason
    # A day later Priya's invite is no longer today's: Sam is invited with everyone else.
    world.advance(timedelta(days=1, minutes=1))
    run = world.plan()
    assert run.plan is not None
    [proposal] = run.plan.group_proposals
    assert set(proposal.attendees) == {SAM, *MEMBERS}


def test_the_coverage_report_tells_the_owner_of_a_group_meeting_below_its_quorum(
    world: World,
) -> None:
    from scheduler.app.owner_view import user_report
    from scheduler.entrypoints.rendering import render_text

    m = _booked_group(world)
    event = m.provider_event_id or ""
    policy = world.policy()

    def report_lines() -> list[str]:
        report = user_report(world.p, world.user(), policy, now=world.clock.now(), revoked=[])
        return [line for line in render_text([report]).splitlines() if "declined;" in line]

    assert report_lines() == []
    for email in m.attendees[1:3]:
        world.calendar.respond(event, A.DECLINED, attendee=email)
    _sync(world)
    _sync(world)
    report = user_report(world.p, world.user(), policy, now=world.clock.now(), revoked=[])
    (line,) = report.below_quorum
    assert (line.meeting_id, line.group, line.declined, line.invited, line.quorum) == (
        m.id, "platform", 2, 4, 3,
    )  # fmt: skip
    (said,) = report_lines()
    assert said.endswith(
        "platform: 2 of 4 declined; it needs 3 attending to stand — decide whether to keep or "
        "cancel it"
    )
    world.advance_past(m.end)
    report = user_report(world.p, world.user(), policy, now=world.clock.now(), revoked=[])
    assert report.below_quorum == ()  # only meetings ahead


def test_the_below_quorum_notice_reads_back_its_counts() -> None:
    from scheduler.app.groups import below_quorum_counts, below_quorum_text

    assert below_quorum_counts(below_quorum_text(2, 4, 3)) == (2, 4, 3)
    assert below_quorum_counts("declined by the owner") is None
