"""E-mailed answers (iMIP REPLY): who may answer for whom, and what the owner decides.

A REPLY says "ATTENDEE x answers PARTSTAT for UID u". Anyone can write that, so before it is
applied (:func:`scheduler.app.responses.record_reply`) the mail's sender must vouch for x:

- the sender (``From``, or ``Sender`` for a delegate) is the attendee;
- or it is the ATTENDEE's ``SENT-BY`` (a delegate named in the reply), when that address is in
  the policy's ``allowed_domains`` (a SENT-BY is written by the same hand as the rest of the
  reply, so one from outside the organisation vouches for nothing);
- or it is an alias listed for that stakeholder in the owner's policy (``aliases:``), which may
  also stand for the stakeholder as the ATTENDEE.

Addresses are compared without case, ``mailto:`` stripped in any case, after unfolding (the
reader, :mod:`connectors.imip`, hands them over that way).

A reply that fails the rule is not dropped: real clients answer from other addresses (an
Outlook.com account answering an invite sent to a work address, a CalDAV server mailing from a
system address with the attendee in ``Reply-To``). It is *held* and shown to the owner, who may
apply it (:func:`accept_held_reply`, ``goodwill replies --accept ID``). A reply whose receiving
server says DKIM or DMARC failed for the sender's domain is refused outright.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from scheduler.app.conflicts import receive_counter
from scheduler.app.pipeline import Pipeline, policy_for
from scheduler.app.records import HeldReply, HeldReplyState, Meeting, NewHeldReply
from scheduler.app.responses import STALE, ReplyOutcome, ReplyResult, record_reply
from scheduler.core.model import AttendeeStatus
from scheduler.core.policy import Policy

__all__ = ["IncomingReply", "ReplyDecision", "accept_held_reply", "receive_reply"]


@dataclass(frozen=True, slots=True)
class IncomingReply:
    """One e-mailed answer, as the mail reader found it (addresses bare and lower case).

    Attributes:
        uid: the event UID it answers.
        attendee: the ATTENDEE it answers for.
        answer: their PARTSTAT.
        sequence: the SEQUENCE it refers to (None: the reply carries none).
        senders: ``From`` (when it names one mailbox), then ``Sender``.
        sent_by: the ATTENDEE's SENT-BY, or "".
        reply_to: ``Reply-To`` addresses (shown to the owner; they vouch for nothing).
        authentication: why DKIM/DMARC failed for the sender's domain, or None.
        digest: SHA-256 (hex) of the raw mail.
    """

    uid: str
    attendee: str
    answer: AttendeeStatus
    sequence: int | None
    senders: tuple[str, ...]
    sent_by: str = ""
    reply_to: tuple[str, ...] = ()
    authentication: str | None = None
    digest: str = ""
    #: For an iMIP COUNTER: the (start, end) the attendee proposes instead (aware UTC).
    proposed: tuple[datetime, datetime] | None = None


@dataclass(frozen=True, slots=True)
class ReplyDecision:
    """What :func:`receive_reply` did, with what the owner needs to see when it was held."""

    result: ReplyResult
    held: HeldReply | None = None
    #: The mailbox shown as "a reply from X" (the first sender, or "an unknown sender").
    sender: str = ""
    stakeholder: str = ""

    @property
    def outcome(self) -> ReplyOutcome:
        return self.result.outcome


def _domain(address: str) -> str:
    return address.rpartition("@")[2].lower()


def _invited_as(attendee: str, m: Meeting, policy: Policy) -> str | None:
    """The invited attendee an ATTENDEE address stands for (themselves, or an alias listed for
    them in the policy), or None. A group meeting has several; a one-to-one its stakeholder."""
    invited = m.attendees or (m.stakeholder_email,)
    if attendee in invited:
        return attendee
    for email in invited:
        s = policy.stakeholder(email)
        if s is not None and attendee in s.aliases:
            return email
    return None


def _vouching(reply: IncomingReply, m: Meeting, policy: Policy) -> tuple[str | None, bool]:
    """(the attendee the ATTENDEE stands for, else None; a sender vouches for that attendee).

    Only the attendee themselves (or their aliases, or an allowed SENT-BY) vouch: another
    attendee of the same group meeting answering for them does not.
    """
    who = _invited_as(reply.attendee, m, policy)
    if who is None:
        return None, False
    stakeholder = policy.stakeholder(who)
    vouchers = {who, reply.attendee, *(stakeholder.aliases if stakeholder is not None else ())}
    if reply.sent_by and _domain(reply.sent_by) in policy.allowed_domains:
        vouchers.add(reply.sent_by)
    return who, any(s in vouchers for s in reply.senders)


def _hold_reason(reply: IncomingReply, m: Meeting, policy: Policy, who: str | None) -> str:
    sender = reply.senders[0] if reply.senders else "a mailbox we could not read"
    if who is None:
        went_to = ", ".join(m.attendees) if m.is_group else m.stakeholder_email
        why = f"it answers for {reply.attendee}, but the invitation went to {went_to}"
        who = m.stakeholder_email
    else:
        why = f"it was sent by {sender}, not by {who}"
        if reply.sent_by and _domain(reply.sent_by) not in policy.allowed_domains:
            why += f" (its SENT-BY {reply.sent_by} is outside allowed_domains)"
    if reply.reply_to:
        why += f"; its Reply-To names {', '.join(reply.reply_to[:3])}"
    return f"{why}. If that address is theirs, list it under aliases for {who} in {policy.source}"


def receive_reply(p: Pipeline, reply: IncomingReply) -> ReplyDecision:
    """Apply, hold or refuse one e-mailed answer (the module's rules).

    Returns the decision; a transient provider error is raised (the mail is retried later).
    """
    if reply.authentication:
        detail = f"refused: {reply.authentication}; a forged sender is likely"
        return ReplyDecision(ReplyResult(None, None, detail, ReplyOutcome.REFUSED))
    m = p.store.meeting_by_event_id(reply.uid)
    if m is None:
        return ReplyDecision(
            ReplyResult(None, None, "no goodwill meeting with this UID", ReplyOutcome.UNKNOWN)
        )
    policy = policy_for(p, p.store.get_user(m.user_id))
    if policy is None:
        return ReplyDecision(ReplyResult(m.id, m.state, "the owner's policy is unavailable"))
    who, sender_ok = _vouching(reply, m, policy)
    sender = reply.senders[0] if reply.senders else "an unknown sender"
    if reply.proposed is not None:
        if not (who == m.stakeholder_email and sender_ok):
            detail = f"refused: a counter-proposal not from {m.stakeholder_email} (from {sender})"
            return ReplyDecision(ReplyResult(m.id, m.state, detail, ReplyOutcome.REFUSED))
        detail = receive_counter(p, m, policy, *reply.proposed)
        after = p.store.get_meeting(m.id)
        state = after.state if after is not None else m.state
        return ReplyDecision(ReplyResult(m.id, state, detail), sender=sender)
    if who is not None and sender_ok:  # a group meeting: that attendee's own answer
        result = record_reply(p, reply.uid, who, reply.answer, sequence=reply.sequence)
        return ReplyDecision(result, sender=sender, stakeholder=who)
    reason = _hold_reason(reply, m, policy, who)
    shown = who or m.stakeholder_email
    held = p.store.hold_reply(
        NewHeldReply(
            meeting_id=m.id,
            user_id=m.user_id,
            sender=sender,
            attendee=reply.attendee,
            answer=reply.answer,
            uid=reply.uid,
            sequence=reply.sequence,
            reason=reason,
            message_digest=reply.digest,
        ),
        now=p.clock.now(),
    )
    if held.state is not HeldReplyState.HELD:
        detail = f"this mail was held before ({held.id}) and is {held.state.value}"
        return ReplyDecision(ReplyResult(m.id, m.state, detail), held, sender, shown)
    return ReplyDecision(ReplyResult(m.id, m.state, reason, ReplyOutcome.HELD), held, sender, shown)


def accept_held_reply(p: Pipeline, held_id: int, *, actor: str = "cli") -> ReplyDecision:
    """The owner vouches for a held reply: apply it as the stakeholder's answer (for a group
    meeting: the answer of the attendee it answers for; refused when that is nobody invited).

    It is applied as :func:`record_reply` would (SEQUENCE checked, the meeting followed); then
    the held reply is marked ``applied`` (or ``refused`` when it could not apply: the event is
    gone, or it is older than the invite). A transient provider error leaves it held.
    """
    held = p.store.get_held_reply(held_id)
    if held is None:
        return ReplyDecision(
            ReplyResult(None, None, f"no held reply {held_id}", ReplyOutcome.UNKNOWN)
        )
    if held.state is not HeldReplyState.HELD:
        detail = f"held reply {held_id} was already {held.state.value}"
        return ReplyDecision(ReplyResult(held.meeting_id, None, detail), held)
    m = p.store.get_meeting(held.meeting_id) if held.meeting_id is not None else None
    if m is None:
        p.store.decide_held_reply(held_id, HeldReplyState.REFUSED, now=p.clock.now(), actor=actor)
        detail = "refused: its meeting no longer exists"
        return ReplyDecision(ReplyResult(None, None, detail, ReplyOutcome.REFUSED), held)
    who = m.stakeholder_email
    if m.is_group:  # the owner vouches for the sender, as the attendee the reply answers for
        policy = policy_for(p, p.store.get_user(m.user_id))
        if policy is None:
            return ReplyDecision(ReplyResult(m.id, m.state, "the owner's policy is unavailable"))
        found = _invited_as(held.attendee, m, policy)
        if found is None:
            now = p.clock.now()
            p.store.decide_held_reply(held_id, HeldReplyState.REFUSED, now=now, actor=actor)
            detail = f"refused: it answers for {held.attendee}, who is not invited"
            return ReplyDecision(ReplyResult(m.id, m.state, detail, ReplyOutcome.REFUSED), held)
        who = found
    result = record_reply(p, held.uid, who, held.answer, sequence=held.sequence)
    stale = result.detail == STALE
    if result.outcome in (ReplyOutcome.APPLIED, ReplyOutcome.REFUSED) or stale:
        state = (
            HeldReplyState.APPLIED
            if result.outcome is ReplyOutcome.APPLIED
            else HeldReplyState.REFUSED
        )
        p.store.decide_held_reply(held_id, state, now=p.clock.now(), actor=actor)
    return ReplyDecision(result, held, held.sender, who)
