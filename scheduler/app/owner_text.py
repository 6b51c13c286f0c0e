"""Plain sentences and small reads behind the owner's actions (:mod:`scheduler.app.owner`)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from scheduler.app.decisions import WITHDRAWN_PAIR
from scheduler.app.pipeline import Pipeline
from scheduler.app.records import Meeting, User
from scheduler.core.policy import Policy
from scheduler.core.states import MeetingState

__all__ = [
    "CANCELLABLE",
    "day_text",
    "decided_text",
    "name_of",
    "pause_end",
    "read_policy",
    "refuse_cancel",
    "when_text",
    "zone_of",
]

_S = MeetingState
#: Meetings an owner may cancel (while they are still ahead).
CANCELLABLE = frozenset(
    {_S.PROPOSED, _S.APPROVED, _S.BOOKING, _S.BOOKED, _S.ACCEPTED, _S.TENTATIVE}
)
#: A proposal in these states was approved (and maybe booked, answered, held) already.
_WAS_APPROVED = frozenset(
    {_S.APPROVED, _S.BOOKING, _S.BOOKED, _S.ACCEPTED, _S.TENTATIVE, _S.DECLINED, _S.COMPLETED}
)


def read_policy(p: Pipeline, user: User) -> Policy | None:
    """The owner's policy in force, read only (nothing is recorded)."""
    try:
        return p.policies.load(user.policy_path).policy
    except Exception:  # a file the loader cannot take: register_policies reports it
        return None


def zone_of(policy: Policy | None) -> ZoneInfo:
    return ZoneInfo(policy.owner.timezone) if policy is not None else ZoneInfo("UTC")


def day_text(moment: datetime, zone: ZoneInfo) -> str:
    local = moment.astimezone(zone)
    return f"{local:%a} {local.day} {local:%b}"


def when_text(moment: datetime, zone: ZoneInfo) -> str:
    return f"{day_text(moment, zone)} at {moment.astimezone(zone):%H:%M}"


def name_of(policy: Policy | None, email: str) -> str:
    s = policy.stakeholder(email) if policy is not None else None
    return s.name if s is not None else email


def decided_text(p: Pipeline, m: Meeting, zone: ZoneInfo) -> str:
    """Why a proposal is no longer open, in one sentence."""
    if m.state in _WAS_APPROVED:
        return "This proposal was already approved."
    if m.state == _S.EXPIRED:
        return f"This proposal expired on {day_text(m.updated_at, zone)}."
    if m.state == _S.FAILED:
        return "This proposal could not be booked."
    trail = p.store.audit_trail(m.id)
    detail = trail[-1].detail if trail else ""
    if detail.startswith("approved"):
        return "This proposal was already approved."
    if detail == "declined by the owner":
        return "This proposal was already declined."
    if detail == WITHDRAWN_PAIR:
        return "This proposal was withdrawn: their side booked a meeting with you first."
    return "This proposal was cancelled."


def refuse_cancel(m: Meeting, now: datetime) -> str | None:
    if m.state == _S.BOOKING:
        return "This meeting is being booked right now; try again in a minute."
    if m.state not in CANCELLABLE:
        return f"This meeting is already {m.state.value}."
    if m.start <= now:
        return "This meeting has already started."
    return None


def pause_end(until: date, zone: str) -> datetime:
    """The end of ``until`` in ``zone`` (the start of the next local day), in UTC."""
    return datetime.combine(until + timedelta(days=1), time(0), ZoneInfo(zone)).astimezone(UTC)
