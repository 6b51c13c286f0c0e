"""How the owner's page and digest describe a group meeting or an introduction (read only).

A group meeting (:attr:`~scheduler.app.records.Meeting.is_group`) is one meeting row with several
attendees; these helpers turn it into plain words for the owner: a headline ("Lunch:
design-data-lunch", "Introduction: Maria Garcia introduces you to Nina Park"), the attendees
with their zones and answers, the presenter, and whether declines took it below its quorum.
The invite text of a group meeting is :func:`scheduler.app.groups.group_draft`'s, exactly as it
is sent.

Everything here is for the owner only; nothing of it reads tiers, power tags or notes.
"""

from __future__ import annotations

from scheduler.app.groups import group_draft, group_person, presenter_declined
from scheduler.app.owner_model import AttendeeView
from scheduler.app.records import Meeting
from scheduler.core.model import AttendeeStatus
from scheduler.core.policy import Policy
from scheduler.core.policy.groups import INTRODUCTION
from scheduler.core.states import MeetingState

__all__ = [
    "BELOW_QUORUM",
    "attendee_views",
    "below_quorum",
    "group_headline",
    "group_invite",
    "group_label",
    "person_name",
    "plain_group_line",
    "presenter_declined_text",
]


#: How the audit row that tells the owner a group fell below its quorum begins
#: (:func:`scheduler.app.groups.below_quorum_text`).
BELOW_QUORUM = "group below quorum"


def person_name(policy: Policy | None, email: str) -> str:
    """A stakeholder's name, else the address's local part (a member outside the list)."""
    s = policy.stakeholder(email) if policy is not None else None
    if s is not None:
        return s.name
    return email


def _zone(policy: Policy | None, email: str) -> str:
    if policy is None:
        return "UTC"
    return group_person(policy, email).timezone


def attendee_views(policy: Policy | None, m: Meeting) -> tuple[AttendeeView, ...]:
    """Everyone the group meeting invites (presenter first), each with their zone and answer
    (answers only once the meeting is at the provider: "" while it is a proposal)."""
    answers = dict(m.attendee_status)
    proposed = m.state == MeetingState.PROPOSED
    return tuple(
        AttendeeView(
            email=email,
            name=person_name(policy, email),
            zone=_zone(policy, email),
            answer="" if proposed else answers.get(email, AttendeeStatus.NEEDS_ACTION.value),
            presenter=email == m.presenter and not presenter_declined(m),
        )
        for email in m.attendees
    )


def group_headline(policy: Policy | None, m: Meeting) -> str:
    """``Lunch: design-data-lunch`` or ``Introduction: Y introduces you to X``; "" for a
    one-to-one."""
    if not m.is_group:
        return ""
    if m.group_name == INTRODUCTION:
        via, *rest = m.attendees or ("someone",)
        to_meet = " and ".join(person_name(policy, e) for e in rest) or "someone new"
        return f"Introduction: {person_name(policy, via)} introduces you to {to_meet}"
    return f"{m.kind.capitalize()}: {m.group_name}"


def group_label(policy: Policy | None, m: Meeting) -> str:
    """Who a group meeting is with, in a sentence: ``design-data-lunch (Maria Garcia, Jon
    Berg)`` or ``Maria Garcia and Nina Park (an introduction)``."""
    names = [person_name(policy, e) for e in m.attendees]
    if m.group_name == INTRODUCTION:
        return f"{' and '.join(names)} (an introduction)"
    return f"{m.group_name} ({', '.join(names)})"


def below_quorum(m: Meeting) -> bool:
    """Whether the attendees still coming (or not answered yet) are fewer than the quorum."""
    if not m.is_group or not m.attendee_status:
        return False
    standing = sum(1 for _, a in m.attendee_status if a != AttendeeStatus.DECLINED.value)
    return standing < (m.quorum or 1)


def group_invite(policy: Policy | None, m: Meeting) -> tuple[str, str]:
    """(title, body) of the group event exactly as it will be sent; ("", "") without a policy."""
    if policy is None:
        return "", ""
    draft = group_draft(policy, m)
    return draft.title, draft.description


def plain_group_line(policy: Policy | None, m: Meeting) -> str:
    """One sentence for the digest: the headline, who is invited and who presents."""
    names = ", ".join(person_name(policy, e) for e in m.attendees)
    line = f"{group_headline(policy, m)}, with {names}"
    if m.presenter:
        line += f"; {person_name(policy, m.presenter)} presents"
    if m.quorum and m.group_name != INTRODUCTION:
        line += f"; it stands while {m.quorum} of {len(m.attendees)} can come"
    return line


def presenter_declined_text(policy: Policy | None, m: Meeting) -> str:
    """The owner's note when the presenter declined a meeting that stands ("" otherwise):
    ``Chloe Martin, the presenter, declined: the lunch stands without a presenter; …``."""
    if not m.is_group or not presenter_declined(m):
        return ""
    return (
        f"{person_name(policy, m.presenter or '')}, the presenter, declined: the {m.kind} stands "
        "without a presenter; pick one or present yourself"
    )
