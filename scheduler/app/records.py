"""Plain frozen records the store port hands to use cases (never live ORM objects)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from scheduler.core.model import AttendeeStatus
from scheduler.core.states import MeetingState

__all__ = [
    "AuditEntry",
    "BookedEvent",
    "BookingClaim",
    "ContactSource",
    "FollowedOwner",
    "Heartbeat",
    "HeldReply",
    "HeldReplyState",
    "Meeting",
    "NewHeldReply",
    "NewMeeting",
    "OwnerMail",
    "OwnerMailKind",
    "RevokedCredential",
    "Rival",
    "RoundMeetings",
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
    #: When the policy file was first found gone (None: it is there). Such a user is not
    #: planned; their open future meetings are cancelled after the grace period.
    policy_missing_since: datetime | None = None
    #: When the owner's next digest e-mail is due (None: no digest in their policy).
    next_digest_at: datetime | None = None
    #: The owner paused goodwill until then (None: not paused): nothing new is proposed, and
    #: approved meetings are not sent for booking before it.
    paused_until: datetime | None = None
    #: The end of the owner's calendar history read by the last finished planning round, and
    #: the digest of the stakeholder set it was read for (None: never, or read before the store
    #: kept it: the next round reads the whole lookback). Written by ``record_plan_round``.
    history_read_until: datetime | None = None
    history_read_key: str | None = None

    def paused_at(self, now: datetime) -> bool:
        """Whether the owner's pause is in force at ``now``."""
        return self.paused_until is not None and self.paused_until > now


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
    #: A proposal to move this meeting's event (made after a conflict) instead of a new one.
    replaces_id: int | None = None
    #: Other slots for the same proposal (aware UTC ``(start, end)``), offered to the owner.
    alternatives: tuple[tuple[datetime, datetime], ...] = ()
    #: A group meeting's attendees (lower-case e-mails, the owner not included, presenter
    #: first); () for a one-to-one. ``stakeholder_email`` must then be the first of them.
    attendees: tuple[str, ...] = ()
    #: A group meeting's group, or "introduction" (None: a one-to-one).
    group_name: str | None = None
    presenter: str | None = None
    #: Attendees (the owner excluded) who must stay for a group meeting to stand.
    quorum: int | None = None
    #: Private to the owner ("ask Y to introduce you to X"): their page and digest only,
    #: never an invite, a log or a metric; "" when none.
    owner_note: str = ""


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
    #: When a busy event was first seen overlapping this booked meeting (None: none known).
    conflict_at: datetime | None = None
    #: For a proposal made after a conflict: the meeting whose event approving it moves.
    replaces_id: int | None = None
    #: A proposal's other slots (aware UTC ``(start, end)``), best first; () when none.
    alternatives: tuple[tuple[datetime, datetime], ...] = ()
    #: A group meeting's attendees, ``stakeholder_email`` first; () for a one-to-one.
    attendees: tuple[str, ...] = ()
    #: A group meeting's group, or "introduction" (None: a one-to-one).
    group_name: str | None = None
    presenter: str | None = None
    quorum: int | None = None
    #: Each attendee's answer: ``(email, AttendeeStatus value)``, in ``attendees`` order.
    attendee_status: tuple[tuple[str, str], ...] = ()
    #: Private to the owner (see :attr:`NewMeeting.owner_note`); "" when none.
    owner_note: str = ""

    @property
    def is_group(self) -> bool:
        """A meeting with several attendees (a lunch group or an introduction)."""
        return self.group_name is not None


@dataclass(frozen=True, slots=True)
class RoundMeetings:
    """The meetings one planning round reads, in ONE query (``StorePort.round_meetings``).

    Each list is what the single-purpose read returns, in its order (by start, then id).
    """

    #: ``open_meetings(user_id)``.
    open: list[Meeting]
    #: ``meetings_between(user_id, declined_since, declined_until, states=[DECLINED])``.
    declined: list[Meeting]
    #: ``group_meetings(user_id, since=history_since)``.
    groups: list[Meeting]
    #: ``meetings_between(user_id, history_since, now, states=[COMPLETED])``.
    completed: list[Meeting]
    #: ``open_meetings_as_stakeholder(owner_email)``: (the other owner's e-mail, meeting).
    as_stakeholder: list[tuple[str, Meeting]]


@dataclass(frozen=True, slots=True)
class BookedEvent:
    """A claimed meeting whose event exists: what ``StorePort.record_bookings`` writes."""

    meeting_id: int
    #: The claim number the booking holds (the write is fenced on it).
    attempt: int
    provider_event_id: str
    #: The audit row's detail (``created``, ``reconciled existing event``).
    detail: str


@dataclass(frozen=True, slots=True)
class BookingClaim:
    """A claimed meeting and its owner's row, read by the claim itself."""

    meeting: Meeting
    owner: User | None


@dataclass(frozen=True, slots=True)
class Rival:
    """A meeting a booking re-check reads (``StorePort.booking_rival_rows``): its owner's
    e-mail, whether it holds the window read for one of the people asked about, and whether it
    is an open meeting whose stakeholder is the owner asked about."""

    owner_email: str
    meeting: Meeting
    overlaps: bool
    theirs: bool


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
class Heartbeat:
    """A named process's last completed round (``beat_at``: the database server's clock).

    ``failures`` counts the rounds that failed in a row since then (0: the last one completed).
    """

    name: str
    holder: str
    beat_at: datetime
    failures: int
    last_error: str | None


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


class HeldReplyState(StrEnum):
    """What became of an e-mailed answer that was not applied on arrival."""

    HELD = "held"  # waiting for the owner: ``goodwill replies --accept ID``
    APPLIED = "applied"  # the owner accepted it and it was applied
    REFUSED = "refused"  # the owner (or a later rule) set it aside for good


@dataclass(frozen=True, slots=True)
class NewHeldReply:
    """An iMIP REPLY whose sender is not the attendee it answers for, to keep for the owner.

    ``answer`` is stored as its :class:`~scheduler.core.model.AttendeeStatus` value;
    ``message_digest`` (SHA-256 hex of the raw mail) makes holding the same mail twice a no-op.
    """

    meeting_id: int
    user_id: int
    sender: str
    attendee: str
    answer: AttendeeStatus
    uid: str
    sequence: int | None
    reason: str
    message_digest: str


@dataclass(frozen=True, slots=True)
class HeldReply:
    id: int
    meeting_id: int | None
    user_id: int | None
    received_at: datetime
    sender: str
    attendee: str
    answer: AttendeeStatus
    uid: str
    sequence: int | None
    reason: str
    state: HeldReplyState
    decided_at: datetime | None


class OwnerMailKind(StrEnum):
    """What an e-mail to the owner is: the periodic digest, or one event's short notice."""

    DIGEST = "digest"
    NOTICE = "notice"


@dataclass(frozen=True, slots=True)
class OwnerMail:
    """One e-mail goodwill owes an owner, claimed before it is sent (never twice per period).

    ``state`` is ``sending`` (claimed; ``lease_until`` bounds the claim), ``sent`` or ``failed``
    (retried once ``lease_until`` has passed). ``period_key``: a digest's scheduled moment (UTC,
    ISO) or a notice's audit row id.
    """

    id: int
    user_id: int
    kind: OwnerMailKind
    period_key: str
    state: str
    claimed_at: datetime
    lease_until: datetime | None
    sent_at: datetime | None
    attempts: int
    last_error: str | None


@dataclass(frozen=True, slots=True)
class FollowedOwner:
    """An owner with meetings whose answers are followed (``StorePort.followed_owners``)."""

    #: Their policy file is gone: their answers are followed again once it is back.
    policy_missing: bool
    #: The start of their soonest followed meeting still to be followed closely: not ended yet,
    #: or ended and waiting to be completed (not a past decline). None: not asked for, or none.
    next_start: datetime | None = None
    #: The start of their soonest followed meeting more than ``cutoff`` ahead (asked for with
    #: ``cutoff``): the tick paces by when it enters its last ``not_within``.
    next_far_start: datetime | None = None
