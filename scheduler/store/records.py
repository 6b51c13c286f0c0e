"""Plain frozen records the store hands to use cases (never live ORM objects)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from scheduler.core.states import MeetingState
from scheduler.store.tables import AuditRow, MeetingRow, StakeholderStatusRow, UserRow

__all__ = [
    "AuditEntry",
    "Meeting",
    "NewMeeting",
    "RevokedCredential",
    "StakeholderStatus",
    "User",
    "audit_from_row",
    "meeting_from_row",
    "status_from_row",
    "user_from_row",
]


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


def meeting_from_row(row: MeetingRow) -> Meeting:
    return Meeting(
        id=row.id,
        user_id=row.user_id,
        stakeholder_email=row.stakeholder_email,
        kind=row.kind,
        start=row.start,
        end=row.end,
        state=MeetingState(row.state),
        mode=row.mode,
        idempotency_key=row.idempotency_key,
        provider=row.provider,
        provider_event_id=row.provider_event_id,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        lease_until=row.lease_until,
        last_error=row.last_error,
        reason=row.reason,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def user_from_row(row: UserRow) -> User:
    return User(
        id=row.id,
        email=row.email,
        policy_path=row.policy_path,
        policy_hash=row.policy_hash,
        policy_error=row.policy_error,
        next_plan_at=row.next_plan_at,
        last_planned_at=row.last_planned_at,
        created_at=row.created_at,
    )


def status_from_row(row: StakeholderStatusRow) -> StakeholderStatus:
    return StakeholderStatus(
        user_id=row.user_id,
        stakeholder_email=row.stakeholder_email,
        paused_reason=row.paused_reason,
        paused_until=row.paused_until,
        unanswered_in_row=row.unanswered_in_row,
        backoff_until=row.backoff_until,
        last_declined_at=row.last_declined_at,
    )


def audit_from_row(row: AuditRow) -> AuditEntry:
    return AuditEntry(
        id=row.id,
        meeting_id=row.meeting_id,
        user_id=row.user_id,
        at=row.at,
        actor=row.actor,
        from_state=row.from_state,
        to_state=row.to_state,
        detail=row.detail,
    )
