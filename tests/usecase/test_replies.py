"""E-mailed answers: who may answer for whom (``receive_reply``) and the owner's decision on a
held one (``accept_held_reply``), on every store."""

from __future__ import annotations

import hashlib

from scheduler.app import replies
from scheduler.app.records import HeldReplyState, Meeting
from scheduler.app.responses import ReplyOutcome
from scheduler.core.model import AttendeeStatus
from scheduler.core.states import MeetingState
from tests.usecase.world import ALEX, KIM, World, alex_policy

S = MeetingState
A = AttendeeStatus
OUT = ReplyOutcome


def _booked_with_kim(world: World) -> Meeting:
    world.plan()
    world.book_all()
    return world.only(ALEX, KIM, S.BOOKED)


def _reply(
    m: Meeting,
    *,
    senders: tuple[str, ...] = (KIM,),
    attendee: str = KIM,
    answer: AttendeeStatus = A.DECLINED,
    sent_by: str = "",
    authentication: str | None = None,
    tag: str = "",
) -> replies.IncomingReply:
    assert m.provider_event_id is not None
    digest = hashlib.sha256(f"{m.id}{senders}{attendee}{answer}{sent_by}{tag}".encode()).hexdigest()
    return replies.IncomingReply(
        uid=m.provider_event_id,
        attendee=attendee,
        answer=answer,
        sequence=None,
        senders=senders,
        sent_by=sent_by,
        authentication=authentication,
        digest=digest,
    )


def test_the_attendees_own_reply_is_applied(world: World) -> None:
    m = _booked_with_kim(world)
    decision = replies.receive_reply(world.p, _reply(m, answer=A.ACCEPTED))
    assert decision.outcome is OUT.APPLIED
    assert world.meeting(m.id).state is S.ACCEPTED


def test_a_reply_from_a_stranger_is_held_and_changes_nothing(world: World) -> None:
    m = _booked_with_kim(world)
    decision = replies.receive_reply(world.p, _reply(m, senders=("mallory@evil.example",)))
    assert decision.outcome is OUT.HELD
    assert decision.held is not None
    assert decision.sender == "mallory@evil.example"
    assert world.meeting(m.id).state is S.BOOKED
    assert world.calendar.calls["set_attendee_status"] == 0
    status = world.store.get_stakeholder_status(world.user_id(), KIM)
    assert status.backoff_until is None  # the forged decline did not back the cadence off
    [held] = world.store.held_replies(world.user_id())
    assert (held.sender, held.attendee, held.answer) == ("mallory@evil.example", KIM, A.DECLINED)
    assert "not by kim@corp.example" in held.reason
    assert "aliases" in held.reason
    # The same mail read again is the same held reply, not a second one.
    again = replies.receive_reply(world.p, _reply(m, senders=("mallory@evil.example",)))
    assert again.held is not None
    assert again.held.id == held.id
    assert len(world.store.held_replies(world.user_id())) == 1


def test_the_owner_accepts_a_held_reply_and_it_is_applied_once(world: World) -> None:
    m = _booked_with_kim(world)
    held = replies.receive_reply(world.p, _reply(m, senders=("kim.ito@outlook.example",))).held
    assert held is not None
    decision = replies.accept_held_reply(world.p, held.id)
    assert decision.outcome is OUT.APPLIED
    assert world.meeting(m.id).state is S.DECLINED
    # Accepted means accepted: the decline backs the cadence off as any decline does.
    assert world.store.get_stakeholder_status(world.user_id(), KIM).backoff_until is not None
    assert world.store.held_replies(world.user_id()) == []
    [decided] = world.store.held_replies(world.user_id(), states=[HeldReplyState.APPLIED])
    assert decided.decided_at == world.clock.now()
    assert "already applied" in replies.accept_held_reply(world.p, held.id).result.detail
    assert replies.accept_held_reply(world.p, 999_999).outcome is OUT.UNKNOWN


def test_an_answer_for_someone_not_invited_is_held(world: World) -> None:
    m = _booked_with_kim(world)
    decision = replies.receive_reply(
        world.p, _reply(m, senders=("kim@elsewhere.example",), attendee="kim@elsewhere.example")
    )
    assert decision.outcome is OUT.HELD
    assert "the invitation went to kim@corp.example" in decision.result.detail
    # Accepted by the owner, it stands for the invited stakeholder's answer.
    assert decision.held is not None
    assert replies.accept_held_reply(world.p, decision.held.id).outcome is OUT.APPLIED
    assert world.meeting(m.id).state is S.DECLINED


def test_a_delegate_named_by_sent_by_inside_the_allowed_domains_may_answer(world: World) -> None:
    m = _booked_with_kim(world)
    inside = _reply(m, senders=("pa@corp.example",), sent_by="pa@corp.example")
    assert replies.receive_reply(world.p, inside).outcome is OUT.APPLIED


def test_a_sent_by_outside_the_allowed_domains_vouches_for_nothing(world: World) -> None:
    m = _booked_with_kim(world)
    forged = _reply(m, senders=("mallory@evil.example",), sent_by="mallory@evil.example")
    decision = replies.receive_reply(world.p, forged)
    assert decision.outcome is OUT.HELD
    assert "SENT-BY mallory@evil.example is outside allowed_domains" in decision.result.detail


def test_an_alias_in_the_policy_answers_as_the_stakeholder(world: World) -> None:
    world.write_policy(
        ALEX,
        alex_policy()
        .replace(
            "{email: kim@corp.example, name: Kim Ito, tier: peer}",
            "{email: kim@corp.example, name: Kim Ito, tier: peer, aliases: [kim@home.example]}",
        )
        .replace(
            "allowed_domains: [corp.example]", "allowed_domains: [corp.example, home.example]"
        ),
    )
    m = _booked_with_kim(world)
    from_alias = _reply(m, senders=("kim@home.example",), attendee="kim@home.example")
    assert replies.receive_reply(world.p, from_alias).outcome is OUT.APPLIED
    assert world.meeting(m.id).state is S.DECLINED


def test_a_failed_authentication_is_refused_outright(world: World) -> None:
    m = _booked_with_kim(world)
    decision = replies.receive_reply(world.p, _reply(m, authentication="DKIM failed for x"))
    assert decision.outcome is OUT.REFUSED
    assert world.store.held_replies(world.user_id()) == []
    assert world.meeting(m.id).state is S.BOOKED


def test_a_reply_for_a_vanished_event_is_refused_not_raised(world: World) -> None:
    m = _booked_with_kim(world)
    assert m.provider_event_id is not None
    world.calendar.delete(m.provider_event_id)
    decision = replies.receive_reply(world.p, _reply(m))
    assert decision.outcome is OUT.REFUSED
    assert "no longer exists" in decision.result.detail


def test_an_unknown_uid_is_reported_as_such(world: World) -> None:
    unknown = replies.IncomingReply("nope@goodwill", KIM, A.DECLINED, None, (KIM,), digest="d")
    assert replies.receive_reply(world.p, unknown).outcome is OUT.UNKNOWN
