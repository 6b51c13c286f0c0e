"""Plain frozen records the store port hands to use cases (never live ORM objects)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from scheduler.core.states import MeetingState

__all__ = [
    "AuditEntry",
    "ContactSource",
    "Meeting",
    "NewMeeting",
    "RevokedCredential",
    "StakeholderStatus",
    "User",
]


class ContactSource(StrEnum):
    """How a contact happened: a meeting goodwill booked, or one found on the calendar."""

    GOODWILL = "goodwill"
    ORGANIC = "organic"


@dataclass(frozen=True, slots=True)
class User:
    id: int
    email: str
    policy_path: str
    policy_hash: str
    policy_error: str | None
    next_plan_at: datetime | None
    last_planned_at: datetime | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class NewMeeting:
    """A meeting the planner wants written. ``start``/``end`` are aware datetimes (UTC stored).

    ``idempotency_key`` must be unique per (user, stakeholder, slot); it is reused as the
    provider-side key, so writing the same proposal twice yields one row and one event.
    """

    stakeholder_email: str
    kind: str
    start: datetime
    end: datetime
    mode: str
    idempotency_key: str
    provider: str
    reason: str = ""
    state: MeetingState = MeetingState.PROPOSED


@dataclass(frozen=True, slots=True)
class Meeting:
    id: int
    user_id: int
    stakeholder_email: str
    kind: str
    start: datetime
    end: datetime
    state: MeetingState
    mode: str
    idempotency_key: str
    provider: str
    provider_event_id: str | None
    attempts: int
    next_attempt_at: datetime | None
    lease_until: datetime | None
    last_error: str | None
    reason: str
    created_at: datetime
    updated_at: datetime
    #: When a create call was first sent for this meeting; it may have reached the provider
    #: even if no answer came back (None: no create was ever attempted).
    create_attempted_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class StakeholderStatus:
    """Etiquette state for one (user, stakeholder). Absent row = all defaults."""

    user_id: int
    stakeholder_email: str
    paused_reason: str | None = None
    paused_until: datetime | None = None
    unanswered_in_row: int = 0
    backoff_until: datetime | None = None
    last_declined_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class RevokedCredential:
    user_email: str
    provider: str
    reason: str
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    meeting_id: int | None
    user_id: int | None
    at: datetime
    actor: str
    from_state: str | None
    to_state: str | None
    detail: str
