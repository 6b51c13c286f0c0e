"""The records the owner's use cases hand out (:mod:`scheduler.app.owner` re-exports them:
import them from there). Kept apart so :mod:`scheduler.app.owner_view` can build them without
an import cycle."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from scheduler.app.records import Meeting
from scheduler.core.report import UserReport

__all__ = [
    "ActionResult",
    "Alternative",
    "AttendeeView",
    "Outcome",
    "OwnerView",
    "ProposalView",
    "UpcomingView",
]


class Outcome(StrEnum):
    """How an owner's action ended. The web page maps them to HTTP statuses."""

    DONE = "done"  # 200/303: the change was made
    NOT_FOUND = "not_found"  # 404: no such meeting *for this owner*
    CONFLICT = "conflict"  # 409: already decided, expired, cancelled … (``message`` says which)
    SLOT_GONE = "slot_gone"  # 409: approving found the slot busy now; ``alternatives`` offered


@dataclass(frozen=True, slots=True)
class Alternative:
    """Another slot for a proposal, in UTC (render in either zone)."""

    index: int  # 0-based, stable for the life of the proposal
    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class ActionResult:
    outcome: Outcome
    message: str  # one plain sentence for the owner, e.g. "This proposal expired on Tue 3 Dec."
    meeting_id: int | None = None
    alternatives: tuple[Alternative, ...] = ()


@dataclass(frozen=True, slots=True)
class AttendeeView:
    """One person invited to a group meeting, as the owner's page shows them."""

    email: str
    name: str
    zone: str  # IANA name: the time is shown on their clock too
    #: Their answer (an AttendeeStatus value: "needsAction", "accepted", "tentative",
    #: "declined"); "" on a proposal (nobody is invited yet).
    answer: str = ""
    presenter: bool = False


@dataclass(frozen=True, slots=True)
class ProposalView:
    meeting: Meeting
    stakeholder_name: str
    stakeholder_zone: str  # IANA name; the owner's zone when the stakeholder has none
    reason: str  # "why this slot"
    invite_title: str  # exactly as it will be sent
    invite_body: str  # exactly as it will be sent
    alternatives: tuple[Alternative, ...]  # 0–3 other slots
    replaces_id: int | None = None  # a move proposal after a conflict
    #: One line naming the meeting: "Lunch: design-data-lunch", "Introduction: Maria Garcia
    #: introduces you to Nina Park", "" for a one-to-one (the page says "Coffee with NAME").
    headline: str = ""
    #: A group meeting's group ("introduction" for one); None for a one-to-one.
    group_name: str | None = None
    #: Everyone a group meeting invites (the owner not included), presenter first; ().
    attendees: tuple[AttendeeView, ...] = ()
    presenter_name: str | None = None
    #: Attendees who must be free for a group meeting to stand; None for a one-to-one.
    quorum: int | None = None
    #: Private to the owner ("ask Maria to introduce you to Nina"): never in the invite.
    owner_note: str = ""


@dataclass(frozen=True, slots=True)
class UpcomingView:
    meeting: Meeting
    stakeholder_name: str
    stakeholder_zone: str
    #: "invited" (booked/approved/booking), "accepted", "tentative", "declined", "conflicted"
    status: str
    #: As :class:`ProposalView`: the meeting's line, group and attendees (with their answers).
    headline: str = ""
    group_name: str | None = None
    attendees: tuple[AttendeeView, ...] = ()
    presenter_name: str | None = None
    quorum: int | None = None
    #: A group meeting whose declines took it below its quorum (it still stands).
    below_quorum: bool = False
    owner_note: str = ""


@dataclass(frozen=True, slots=True)
class OwnerView:
    """Everything the owner's main page shows, for one owner, read in one go."""

    user_id: int
    email: str
    name: str
    zone: str
    paused_until: datetime | None
    proposals: tuple[ProposalView, ...]
    upcoming: tuple[UpcomingView, ...]
    #: The coverage report (scheduler.core.report.UserReport) or None when the policy cannot
    #: load.
    report: UserReport | None
    #: ``goodwill validate`` lines for the owner's policy file (FILE:LINE: message); () = valid.
    policy_problems: tuple[str, ...] = field(default=())
