"""The coverage report's output records: what :func:`scheduler.core.report.build_report` and
:func:`scheduler.core.report.owner_removed` return (pure data; re-exported by ``report``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from scheduler.core.insights import Insights

__all__ = [
    "BelowQuorumLine",
    "Coverage",
    "CredentialIssue",
    "HeldReplyLine",
    "OwnerRemoved",
    "Pause",
    "Rates",
    "RemovedMeeting",
    "StakeholderLine",
    "ToMeetLine",
    "UserReport",
]


@dataclass(frozen=True, slots=True)
class StakeholderLine:
    """One stakeholder's standing. ``days_overdue`` is negative while not yet due."""

    email: str
    name: str
    tier: str
    department: str | None
    last_met: datetime | None
    due_at: datetime
    days_overdue: int
    next_meeting: datetime | None
    next_meeting_state: str | None
    #: Their meeting's kind (``coffee``, ``lunch``: the tier's or their own ``meeting``).
    kind: str = "coffee"
    #: When they count as late: last met + the tier's ``at_most`` (or ``every``); None: due_at.
    late_at: datetime | None = None

    @property
    def late(self) -> datetime:
        return self.late_at if self.late_at is not None else self.due_at

    def days_late(self, now: datetime) -> int:
        """Whole days past :attr:`late` (negative while not late)."""
        return (now - self.late).days


@dataclass(frozen=True, slots=True)
class ToMeetLine:
    """A ``status: to_meet`` stakeholder not met yet: never invited cold, so neither overdue nor
    due soon, and not counted in coverage, until a meeting with them has completed.

    ``status`` (with ``meeting_start``/``meeting_state`` of the meeting it names, else None):

    - ``introduction_booked``: an introduction meeting (you, ``via``, them) is booked ahead;
    - ``introduction_proposed``: one is proposed (or approved, being booked) ahead;
    - ``note_on_next_coffee``: your next one-to-one with ``via`` carries the private note
      "ask … to introduce you";
    - ``waiting_for_coffee``: the note goes on your next one-to-one proposal with ``via``;
    - ``waiting_for_via``: ``via`` is to be met through an introduction first.
    """

    email: str
    name: str
    via: str
    via_name: str
    status: str
    meeting_start: datetime | None = None
    meeting_state: str | None = None
    #: The kind of your one-to-ones with ``via`` (``coffee``, ``lunch``).
    via_kind: str = "coffee"
    #: With ``note_on_next_coffee``: the owner's private note ("ask Sam to introduce you to
    #: Nina …"), for the owner's page and report only; "" otherwise.
    note: str = ""

    def state_text(self, when: str) -> str:
        """The state in words; ``when`` is :attr:`meeting_start` as the reader's clock shows it."""
        via, state = self.via_name, self.meeting_state
        if self.status == "introduction_booked":
            return f"introduction meeting with {via} booked for {when} ({state})"
        if self.status == "introduction_proposed":
            return f"introduction meeting with {via} proposed for {when} ({state})"
        if self.status == "note_on_next_coffee" and self.note:
            return f"{self.note} — at your {self.via_kind} with {via} on {when} ({state})"
        if self.status == "note_on_next_coffee":
            return f"note for you on your {self.via_kind} with {via} on {when} ({state})"
        if self.status == "waiting_for_via":
            return f"waiting: {via} is to be met through an introduction first"
        return f"the note to ask {via} goes on your next {self.via_kind} proposal with them"


@dataclass(frozen=True, slots=True)
class Coverage:
    """Stakeholders of one tier or department met within their interval."""

    group: str
    met: int
    total: int

    @property
    def percent(self) -> float:
        return round(100.0 * self.met / self.total, 1) if self.total else 0.0


@dataclass(frozen=True, slots=True)
class Rates:
    sent: int
    accepted: int
    declined: int
    awaiting: int

    @property
    def acceptance_rate(self) -> float | None:
        return round(self.accepted / self.sent, 3) if self.sent else None

    @property
    def decline_rate(self) -> float | None:
        return round(self.declined / self.sent, 3) if self.sent else None


@dataclass(frozen=True, slots=True)
class Pause:
    """Why a stakeholder gets no invites now. ``source``: policy | service | backoff."""

    email: str
    source: str
    until: date | datetime | None
    reason: str


@dataclass(frozen=True, slots=True)
class BelowQuorumLine:
    """A booked group meeting ahead whose declines took it below its quorum (it still stands:
    the owner decides whether to keep or cancel it)."""

    meeting_id: int
    group: str
    kind: str
    start: datetime
    declined: int
    invited: int
    quorum: int

    @property
    def note(self) -> str:
        return (
            f"{self.declined} of {self.invited} declined; it needs {self.quorum} attending to "
            "stand — decide whether to keep or cancel it"
        )


@dataclass(frozen=True, slots=True)
class ConflictLine:
    """A booked coffee that a new event overlaps, or that goodwill moved because of one.

    ``note`` is the audit wording: ``moved: conflict``, ``conflict: waiting for your answer``,
    ``conflict: a new event overlaps this meeting``, ``conflict: no new slot found …``,
    ``counter-proposal …``.
    """

    meeting_id: int
    stakeholder: str
    start: datetime
    note: str
    at: datetime


@dataclass(frozen=True, slots=True)
class HeldReplyLine:
    """An e-mailed answer not applied: "a reply from X about your meeting with Y"."""

    id: int
    meeting_id: int | None
    sender: str
    stakeholder: str
    answer: str
    meeting_start: datetime | None
    received_at: datetime
    reason: str

    @property
    def accept(self) -> str:
        """The command that applies it."""
        return f"goodwill replies --accept {self.id}"


@dataclass(frozen=True, slots=True)
class CredentialIssue:
    provider: str
    reason: str
    since: datetime
    fix: str


@dataclass(frozen=True, slots=True)
class RemovedMeeting:
    """An open future meeting of an owner whose policy file is gone."""

    id: int
    stakeholder: str
    start: datetime
    end: datetime
    state: str


@dataclass(frozen=True, slots=True)
class OwnerRemoved:
    """A user whose policy file is gone: not planned since ``since``; their open future
    meetings are cancelled at ``cancel_after`` unless the file comes back."""

    user_email: str
    policy_path: str
    since: datetime
    cancel_after: datetime
    meetings: tuple[RemovedMeeting, ...]


@dataclass(frozen=True, slots=True)
class UserReport:
    user_email: str
    generated_at: datetime
    timezone: str
    stakeholders: tuple[StakeholderLine, ...]
    overdue: tuple[StakeholderLine, ...]
    due_soon: tuple[StakeholderLine, ...]
    coverage_by_tier: tuple[Coverage, ...]
    coverage_by_department: tuple[Coverage, ...]
    rates: Rates
    paused: tuple[Pause, ...]
    credentials: tuple[CredentialIssue, ...]
    #: E-mailed answers not applied because their sender is not the attendee (newest last).
    held_replies: tuple[HeldReplyLine, ...] = ()
    #: Conflicts seen on booked coffees, and moves made because of them (oldest first).
    conflicts: tuple[ConflictLine, ...] = ()
    #: Sources of power, meetings outside the department, mentor suggestions (owner only).
    insights: Insights | None = None
    #: Unmet ``status: to_meet`` stakeholders, in policy order: not in ``overdue``,
    #: ``due_soon`` or the coverage (they are still in ``stakeholders``).
    to_meet: tuple[ToMeetLine, ...] = ()
    #: Booked group meetings ahead below their quorum (soonest first).
    below_quorum: tuple[BelowQuorumLine, ...] = ()
