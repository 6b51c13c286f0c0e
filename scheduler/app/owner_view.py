"""What the owner's page shows (read only): :func:`owner_view`, and the per-owner coverage
report :func:`user_report` that ``goodwill report`` prints too.

The records live in :mod:`scheduler.app.owner_model` (re-exported by :mod:`scheduler.app.owner`,
the shared contract); ``owner.owner_view`` calls :func:`build_owner_view` here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from scheduler.app.conflicts import conflict_lines
from scheduler.app.decisions import pending_proposals
from scheduler.app.owner_groups import (
    attendee_views,
    below_quorum,
    group_headline,
    group_invite,
    person_name,
    presenter_declined_text,
)
from scheduler.app.owner_model import Alternative, OwnerView, ProposalView, UpcomingView
from scheduler.app.owner_text import read_policy
from scheduler.app.pipeline import Pipeline
from scheduler.app.policies import check_policy_files
from scheduler.app.records import Meeting, RevokedCredential, User
from scheduler.core.invites import invite_text
from scheduler.core.model import AttendeeStatus
from scheduler.core.policy import Policy
from scheduler.core.report import BelowQuorumLine, UserReport, build_report
from scheduler.core.states import MeetingState

__all__ = [
    "alternatives_of",
    "build_owner_view",
    "policy_problems",
    "stakeholder_label",
    "user_report",
]

_S = MeetingState
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FAR = datetime(9999, 1, 1, tzinfo=UTC)
#: What the page calls each upcoming state.
_STATUS = {
    _S.APPROVED: "invited",
    _S.BOOKING: "invited",
    _S.BOOKED: "invited",
    _S.ACCEPTED: "accepted",
    _S.TENTATIVE: "tentative",
    _S.DECLINED: "declined",
}


def stakeholder_label(policy: Policy | None, email: str) -> tuple[str, str]:
    """(name, IANA zone) of a stakeholder: the policy's, else the e-mail and the owner's zone."""
    if policy is None:
        return email, "UTC"
    s = policy.stakeholder(email)
    if s is None:
        return email, policy.owner.timezone
    return s.name, policy.person_of(s).timezone


def alternatives_of(m: Meeting) -> tuple[Alternative, ...]:
    return tuple(Alternative(i, start, end) for i, (start, end) in enumerate(m.alternatives))


def user_report(
    p: Pipeline,
    user: User,
    policy: Policy,
    *,
    now: datetime,
    revoked: Sequence[RevokedCredential] | None = None,
) -> UserReport:
    """The coverage report of one owner, as ``goodwill report`` prints it, with the booked
    group meetings ahead that declines took below their quorum (soonest first)."""
    meetings = p.store.meetings_between(user.id, _EPOCH, _FAR)
    below = sorted((m for m in meetings if _booked_below_quorum(m, now)), key=lambda m: m.start)
    report = build_report(
        policy,
        now=now,
        last_contacts=p.store.last_contacts(user.id),
        meetings=meetings,
        statuses=p.store.stakeholder_statuses(user.id),
        revoked=p.store.revoked_credentials() if revoked is None else revoked,
        user_email=user.email,
        held_replies=p.store.held_replies(user.id),
        conflicts=conflict_lines(p, user.id),
        their_meetings=[
            dataclasses.replace(m, stakeholder_email=other)
            for other, m in p.store.open_meetings_as_stakeholder(user.email)
        ],
    )
    return dataclasses.replace(report, below_quorum=tuple(map(_below_quorum_line, below)))


_BOOKED = frozenset({_S.BOOKED, _S.ACCEPTED, _S.TENTATIVE, _S.DECLINED})  # at the provider


def _booked_below_quorum(m: Meeting, now: datetime) -> bool:
    return m.state in _BOOKED and m.start > now and below_quorum(m)


def _below_quorum_line(m: Meeting) -> BelowQuorumLine:
    declined = sum(1 for _, a in m.attendee_status if a == AttendeeStatus.DECLINED.value)
    return BelowQuorumLine(
        meeting_id=m.id, group=m.group_name or "", kind=m.kind, start=m.start,
        declined=declined, invited=len(m.attendees), quorum=m.quorum or 1,
    )  # fmt: skip


def policy_problems(p: Pipeline, user: User) -> tuple[str, ...]:
    """The lines ``goodwill validate FILE`` prints for the owner's policy file (FILE:LINE: …)."""
    count, issues = check_policy_files([Path(user.policy_path)], p.policies.limits)
    if count == 0:
        return (f"{user.policy_path}:1: the policy file is gone",)
    return tuple(str(issue) for issue in issues)


def _invite(policy: Policy | None, m: Meeting) -> tuple[str, str]:
    """(title, body) exactly as they will be sent: the group event's for a group meeting.
    The owner's private note is never part of it."""
    if m.is_group:
        return group_invite(policy, m)
    s = policy.stakeholder(m.stakeholder_email) if policy is not None else None
    if policy is None or s is None:
        return "", ""
    return invite_text(policy, s, policy.person_of(s))


def _presenter(policy: Policy | None, m: Meeting) -> str | None:
    """The presenter's name; None without one, or when they declined (nobody presents)."""
    if not m.presenter or presenter_declined_text(policy, m):
        return None
    return person_name(policy, m.presenter)


def _note(policy: Policy | None, m: Meeting) -> str:
    """The owner's private notes on an upcoming meeting: its own, and a declined presenter."""
    return "; ".join(n for n in (m.owner_note, presenter_declined_text(policy, m)) if n)


def _proposal(p: Pipeline, policy: Policy | None, m: Meeting) -> ProposalView:
    name, zone = stakeholder_label(policy, m.stakeholder_email)
    title, body = _invite(policy, m)
    return ProposalView(
        meeting=m,
        stakeholder_name=name,
        stakeholder_zone=zone,
        reason=m.reason,
        invite_title=title,
        invite_body=body,
        alternatives=alternatives_of(m),
        replaces_id=m.replaces_id,
        headline=group_headline(policy, m),
        group_name=m.group_name,
        attendees=attendee_views(policy, m) if m.is_group else (),
        presenter_name=_presenter(policy, m),
        quorum=m.quorum if m.is_group else None,
        owner_note=m.owner_note,
    )


def _upcoming(p: Pipeline, policy: Policy | None, user: User, now: datetime) -> list[UpcomingView]:
    ahead = p.store.meetings_between(user.id, now, _FAR, states=tuple(_STATUS))
    out: list[UpcomingView] = []
    for m in ahead:
        name, zone = stakeholder_label(policy, m.stakeholder_email)
        status = "conflicted" if m.conflict_at is not None else _STATUS[m.state]
        out.append(
            UpcomingView(
                m,
                name,
                zone,
                status,
                headline=group_headline(policy, m),
                group_name=m.group_name,
                attendees=attendee_views(policy, m) if m.is_group else (),
                presenter_name=_presenter(policy, m),
                quorum=m.quorum if m.is_group else None,
                below_quorum=below_quorum(m),
                owner_note=_note(policy, m),
            )
        )
    return out


def build_owner_view(p: Pipeline, user_id: int) -> OwnerView | None:
    user = p.store.get_user(user_id)
    if user is None:
        return None
    now = p.clock.now()
    policy = read_policy(p, user)
    report = None
    if policy is not None and user.policy_missing_since is None:
        report = user_report(p, user, policy, now=now)
    return OwnerView(
        user_id=user.id,
        email=user.email,
        name=policy.owner.name if policy is not None else user.email.split("@", 1)[0],
        zone=policy.owner.timezone if policy is not None else "UTC",
        paused_until=user.paused_until if user.paused_at(now) else None,
        proposals=tuple(_proposal(p, policy, m) for m in pending_proposals(p, user_id=user.id)),
        upcoming=tuple(_upcoming(p, policy, user, now)),
        report=report,
        policy_problems=policy_problems(p, user),
    )
