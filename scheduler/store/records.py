"""Mapping ORM rows to the app's plain records (:mod:`scheduler.app.records`)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from scheduler.app.records import (
    AuditEntry,
    Heartbeat,
    HeldReply,
    HeldReplyState,
    Meeting,
    NewHeldReply,
    NewMeeting,
    OwnerMail,
    OwnerMailKind,
    RevokedCredential,
    StakeholderStatus,
    User,
)
from scheduler.core.model import AttendeeStatus
from scheduler.core.states import MeetingState
from scheduler.store.tables import (
    AuditRow,
    HeldReplyRow,
    MeetingRow,
    OwnerMailRow,
    StakeholderStatusRow,
    UserRow,
)

__all__ = [
    "AuditEntry",
    "Heartbeat",
    "HeldReply",
    "HeldReplyState",
    "Meeting",
    "NewHeldReply",
    "NewMeeting",
    "RevokedCredential",
    "StakeholderStatus",
    "User",
    "alternatives_json",
    "audit_from_row",
    "held_reply_from_row",
    "meeting_from_row",
    "meeting_from_values",
    "owner_mail_from_row",
    "status_from_row",
    "user_from_row",
]


def meeting_from_row(row: MeetingRow) -> Meeting:
    return meeting_from_values(row, [(a.email, a.status) for a in row.attendees])


def meeting_from_values(row: Any, attendees: Iterable[tuple[str, str]]) -> Meeting:
    """A meeting from anything with the ``meetings`` columns as attributes (an ORM row, or a
    Core row of a prebuilt statement: no ORM instance is built) and its attendees'
    ``(email, answer)`` pairs in any order."""
    ordered = tuple(sorted(attendees, key=lambda a: (a[0] != row.stakeholder_email, a[0])))
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
        create_attempted_at=row.create_attempted_at,
        conflict_at=row.conflict_at,
        replaces_id=row.replaces_id,
        alternatives=_alternatives(row.alternatives),
        group_name=row.group_name,
        presenter=row.presenter,
        quorum=row.quorum,
        owner_note=row.owner_note or "",
        attendees=tuple(email for email, _ in ordered),
        attendee_status=ordered,
    )


def alternatives_json(slots: tuple[tuple[datetime, datetime], ...]) -> str | None:
    """The ``meetings.alternatives`` column: JSON ``[[start_iso, end_iso], …]`` in UTC."""
    if not slots:
        return None
    return json.dumps([[s.astimezone(UTC).isoformat(), e.astimezone(UTC).isoformat()]
                       for s, e in slots])  # fmt: skip


def _alternatives(text: str | None) -> tuple[tuple[datetime, datetime], ...]:
    if not text:
        return ()
    return tuple(
        (datetime.fromisoformat(s).astimezone(UTC), datetime.fromisoformat(e).astimezone(UTC))
        for s, e in json.loads(text)
    )


def user_from_row(row: UserRow | Any) -> User:
    """A user from an ORM row, or anything with the ``users`` columns as attributes."""
    return User(
        id=row.id,
        email=row.email,
        policy_path=row.policy_path,
        policy_hash=row.policy_hash,
        policy_error=row.policy_error,
        next_plan_at=row.next_plan_at,
        last_planned_at=row.last_planned_at,
        created_at=row.created_at,
        policy_missing_since=row.policy_missing_since,
        paused_until=row.paused_until,
        next_digest_at=row.next_digest_at,
        history_read_until=row.history_read_until,
        history_read_key=row.history_read_key,
    )


def status_from_row(row: StakeholderStatusRow | Any) -> StakeholderStatus:
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


def held_reply_from_row(row: HeldReplyRow) -> HeldReply:
    return HeldReply(
        id=row.id,
        meeting_id=row.meeting_id,
        user_id=row.user_id,
        received_at=row.received_at,
        sender=row.sender,
        attendee=row.attendee,
        answer=AttendeeStatus(row.partstat),
        uid=row.uid,
        sequence=row.sequence,
        reason=row.reason,
        state=HeldReplyState(row.state),
        decided_at=row.decided_at,
    )


def owner_mail_from_row(row: OwnerMailRow) -> OwnerMail:
    return OwnerMail(
        id=row.id,
        user_id=row.user_id,
        kind=OwnerMailKind(row.kind),
        period_key=row.period_key,
        state=row.state,
        claimed_at=row.claimed_at,
        lease_until=row.lease_until,
        sent_at=row.sent_at,
        attempts=row.attempts,
        last_error=row.last_error,
    )
