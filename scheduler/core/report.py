"""The coverage report: who is overdue, who is due soon, how well the network is kept warm (pure).

Inputs are plain data (the policy, last contacts, the user's meeting rows, etiquette statuses,
revoked credentials); the output is a :class:`UserReport`, rendered as text tables for a person
(:func:`scheduler.entrypoints.rendering.render_text`) or as JSON for scripts (:func:`as_json`;
the shape is documented in docs/operations.md). The output records live in
:mod:`scheduler.core.report_model` and the JSON shaping in :mod:`scheduler.core.report_json`;
both are re-exported here. The report is for the user themself, so it
names stakeholders by e-mail — unlike metrics and health answers, which never carry an address.

Definitions (also in docs/operations.md):

- **last met**: the later of the recorded last contact (goodwill or organic) and the end of the
  latest ``completed`` goodwill meeting.
- **due**: last met + the tier's interval (:func:`scheduler.core.cadence.next_due`);
  never met = due now.
- **late** (the *overdue* list): last met + the tier's ``at_most`` (its interval without one)
  at or before ``now``; **due soon**: not late and due within the next 14 days (already due
  but not yet late, between ``every`` and ``at_most``, counts here). Never met = late now.
  Paused stakeholders appear under *paused*, not in these lists.
- **to meet**: a ``status: to_meet`` stakeholder never met yet (no contact, no completed
  meeting) is never invited cold (:mod:`scheduler.core.introductions`): listed under *to_meet*
  with how the introduction stands (:class:`ToMeetLine`), never overdue or due soon, and not
  counted in coverage. Once a meeting with them completed, they are ordinary stakeholders.
- **next meeting**: the earliest goodwill meeting still ahead in ``booked``, ``tentative`` or
  ``accepted``.
- **coverage**: share of stakeholders met and not late (last met + ``at_most`` or interval
  > now), among those not *to meet*.
- **insights**: sources of power, meetings outside the owner's department, mentor suggestions
  (:mod:`scheduler.core.insights`).
- **rates**: over invites that reached the provider (booked, tentative, accepted, declined,
  completed): accepted (accepted + completed) / sent and declined / sent; None when none sent.
- **owner removed**: a user whose policy file is gone (:func:`owner_removed`). They get no
  report of their own (their policy is gone); their open future meetings are listed, with when
  they will be cancelled unless the file comes back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from scheduler.core.cadence import late_at, next_due
from scheduler.core.insights import build_insights
from scheduler.core.introductions import introduction_notes
from scheduler.core.policy import Policy, Stakeholder
from scheduler.core.policy.groups import INTRODUCTION
from scheduler.core.report_json import as_json as as_json
from scheduler.core.report_json import owner_removed_json as owner_removed_json
from scheduler.core.report_json import report_json as report_json
from scheduler.core.report_model import (
    BelowQuorumLine,
    ConflictLine,
    Coverage,
    CredentialIssue,
    HeldReplyLine,
    OwnerRemoved,
    Pause,
    Rates,
    RemovedMeeting,
    StakeholderLine,
    ToMeetLine,
    UserReport,
)
from scheduler.core.states import OPEN_STATES, MeetingState

__all__ = [
    "DUE_SOON",
    "BelowQuorumLine",
    "ConflictLine",
    "Coverage",
    "CredentialIssue",
    "HeldReplyLike",
    "HeldReplyLine",
    "MeetingLike",
    "OwnerRemoved",
    "Pause",
    "Rates",
    "RemovedMeeting",
    "RevokedLike",
    "StakeholderLine",
    "StatusLike",
    "ToMeetLine",
    "UserReport",
    "as_json",
    "build_report",
    "owner_removed",
    "owner_removed_json",
    "report_json",
]

#: How far ahead "due soon" looks.
DUE_SOON = timedelta(days=14)
#: Meetings that will happen unless someone cancels: shown as "next meeting".
UPCOMING_STATES = frozenset({MeetingState.BOOKED, MeetingState.TENTATIVE, MeetingState.ACCEPTED})
#: Shown as "next meeting" only when nothing is booked: still waiting for approval or booking.
PENDING_STATES = frozenset({MeetingState.PROPOSED, MeetingState.APPROVED, MeetingState.BOOKING})
#: Meetings whose invite reached the provider (the denominator of the rates).
SENT_STATES = frozenset(
    {
        MeetingState.BOOKED,
        MeetingState.TENTATIVE,
        MeetingState.ACCEPTED,
        MeetingState.DECLINED,
        MeetingState.COMPLETED,
    }
)
NO_DEPARTMENT = "(none)"


# -- inputs (structural, so the store's frozen records fit without importing the store) ------


class MeetingLike(Protocol):
    @property
    def stakeholder_email(self) -> str: ...
    @property
    def start(self) -> datetime: ...
    @property
    def end(self) -> datetime: ...
    @property
    def state(self) -> MeetingState: ...


class IdentifiedMeetingLike(MeetingLike, Protocol):
    @property
    def id(self) -> int: ...


class StatusLike(Protocol):
    @property
    def paused_reason(self) -> str | None: ...
    @property
    def paused_until(self) -> datetime | None: ...
    @property
    def backoff_until(self) -> datetime | None: ...
    @property
    def last_declined_at(self) -> datetime | None: ...


class HeldReplyLike(Protocol):
    """An e-mailed answer held for the owner (:class:`scheduler.app.records.HeldReply`)."""

    @property
    def id(self) -> int: ...
    @property
    def meeting_id(self) -> int | None: ...
    @property
    def sender(self) -> str: ...
    @property
    def attendee(self) -> str: ...
    @property
    def answer(self) -> str: ...
    @property
    def received_at(self) -> datetime: ...
    @property
    def reason(self) -> str: ...


class RevokedLike(Protocol):
    @property
    def user_email(self) -> str: ...
    @property
    def provider(self) -> str: ...
    @property
    def reason(self) -> str: ...
    @property
    def updated_at(self) -> datetime: ...


# -- building ------------------------------------------------------------------------------------


def build_report(
    policy: Policy,
    *,
    now: datetime,
    last_contacts: Mapping[str, datetime],
    meetings: Sequence[MeetingLike],
    statuses: Mapping[str, StatusLike],
    revoked: Sequence[RevokedLike],
    user_email: str,
    their_meetings: Sequence[MeetingLike] = (),
    held_replies: Sequence[HeldReplyLike] = (),
    conflicts: Sequence[ConflictLine] = (),
) -> UserReport:
    """Everything the user should know about their network today.

    Args:
        policy: the user's validated policy.
        now: aware UTC "now".
        last_contacts: latest contact per lower-cased stakeholder e-mail, aware UTC.
        meetings: the user's goodwill meetings (any state).
        statuses: etiquette state per lower-cased stakeholder e-mail.
        revoked: revoked provider grants (all users'; this user's are picked out).
        user_email: whose report this is.
        their_meetings: meetings stakeholders who use goodwill booked with this user, each
            with ``stakeholder_email`` set to that stakeholder: shown as the next meeting (one
            coffee per pair), never counted in the user's own rates.
        held_replies: the user's e-mailed answers held for a decision (their meetings are
            looked up in ``meetings`` by id).
        conflicts: conflicts on the user's booked coffees and the moves made for them
            (:func:`scheduler.app.conflicts.conflict_lines`).
    """
    if now.tzinfo is None:
        raise ValueError("build_report needs an aware now")
    by_email: dict[str, list[MeetingLike]] = {}
    for m in (*meetings, *their_meetings):
        by_email.setdefault(m.stakeholder_email.lower(), []).append(m)
    paused = _pauses(policy, now, statuses)
    paused_emails = {p.email for p in paused}

    lines: list[StakeholderLine] = []
    met_in_time: dict[str, bool] = {}
    unmet: set[str] = set()
    for s in policy.stakeholders:
        line = _line(policy, s, now, last_contacts.get(s.email), by_email.get(s.email, []))
        lines.append(line)
        met_in_time[s.email] = line.last_met is not None and line.late > now
        if s.status == "to_meet" and line.last_met is None:
            unmet.add(s.email)
    counted = [s for s in policy.stakeholders if s.email not in unmet]

    active = [line for line in lines if line.email not in paused_emails | unmet]
    overdue = sorted(
        (line for line in active if line.late <= now),
        key=lambda line: (line.last_met is not None, line.late, line.email),
    )
    due_soon = sorted(
        (line for line in active if line.late > now and line.due_at <= now + DUE_SOON),
        key=lambda line: (line.due_at, line.email),
    )
    return UserReport(
        user_email=user_email.strip().lower(),
        generated_at=now,
        timezone=policy.owner.timezone,
        stakeholders=tuple(lines),
        overdue=tuple(overdue),
        due_soon=tuple(due_soon),
        coverage_by_tier=_coverage(
            ((s.tier, met_in_time[s.email]) for s in counted), order=list(policy.tiers)
        ),
        coverage_by_department=_coverage(
            (s.department or NO_DEPARTMENT, met_in_time[s.email]) for s in counted
        ),
        rates=_rates(meetings),
        paused=tuple(paused),
        credentials=_credentials(revoked, user_email, policy),
        held_replies=_held(held_replies, meetings),
        conflicts=tuple(sorted(conflicts, key=lambda c: (c.at, c.meeting_id))),
        insights=build_insights(policy, now=now, meetings=[*meetings, *their_meetings]),
        to_meet=_to_meet(policy, now, unmet, meetings, their_meetings),
    )


def _to_meet(
    policy: Policy,
    now: datetime,
    unmet: set[str],
    meetings: Sequence[MeetingLike],
    their_meetings: Sequence[MeetingLike] = (),
) -> tuple[ToMeetLine, ...]:
    """How each unmet ``to_meet`` stakeholder's introduction stands. The note to ask ``via``
    rides on the next one-to-one with them, whoever booked it: the owner's own, or one ``via``
    (an owner too) booked with them (whose own notes are never read: they are ``via``'s)."""
    ahead = sorted(
        (m for m in meetings if m.start >= now and m.state in UPCOMING_STATES | PENDING_STATES),
        key=lambda m: m.start,
    )
    theirs = [m for m in their_meetings if m.start >= now and m.state in UPCOMING_STATES]
    met = {s.email.lower(): now for s in policy.stakeholders if s.email not in unmet}
    notes = introduction_notes(policy, met)
    out: list[ToMeetLine] = []
    for s in policy.stakeholders:
        if s.email not in unmet:
            continue
        via = policy.stakeholder(s.via) if s.via else None
        via_email = via.email if via is not None else (s.via or "")
        status, m = _introduction_state(s.email, via_email, via_email in unmet, ahead, theirs)
        out.append(
            ToMeetLine(
                email=s.email,
                name=s.name,
                via=via_email,
                via_name=via.name if via is not None else via_email,
                status=status,
                meeting_start=m.start if m is not None else None,
                meeting_state=str(m.state) if m is not None else None,
                via_kind=policy.meeting_of(via).kind if via is not None else "coffee",
                note=notes.get(via_email.lower(), "") if status == "note_on_next_coffee" else "",
            )
        )
    return tuple(out)


def _introduction_state(
    email: str,
    via: str,
    via_unmet: bool,
    ahead: Sequence[MeetingLike],
    theirs: Sequence[MeetingLike] = (),
) -> tuple[str, MeetingLike | None]:
    """(status, the meeting it names) for :class:`ToMeetLine`; ``ahead`` is sorted by start."""
    intros = [
        m
        for m in ahead
        if getattr(m, "group_name", None) == INTRODUCTION
        and email in (a.lower() for a in getattr(m, "attendees", ()))
    ]
    for states, status in (
        (UPCOMING_STATES, "introduction_booked"),
        (PENDING_STATES, "introduction_proposed"),
    ):
        found = next((m for m in intros if m.state in states), None)
        if found is not None:
            return status, found
    if via_unmet:
        return "waiting_for_via", None

    def with_via(m: MeetingLike) -> bool:
        return getattr(m, "group_name", None) is None and m.stakeholder_email.lower() == via.lower()

    own = [
        m for m in ahead if with_via(m) and email in str(getattr(m, "owner_note", "") or "").lower()
    ]
    note = min((*own, *filter(with_via, theirs)), key=lambda m: m.start, default=None)
    if note is not None:
        return "note_on_next_coffee", note
    return "waiting_for_coffee", None


def _held(
    held: Sequence[HeldReplyLike], meetings: Sequence[MeetingLike]
) -> tuple[HeldReplyLine, ...]:
    by_id = {getattr(m, "id", None): m for m in meetings}
    lines = []
    for h in sorted(held, key=lambda h: h.id):
        m = by_id.get(h.meeting_id)
        lines.append(
            HeldReplyLine(
                id=h.id,
                meeting_id=h.meeting_id,
                sender=h.sender,
                stakeholder=m.stakeholder_email if m is not None else h.attendee,
                answer=str(h.answer),
                meeting_start=m.start if m is not None else None,
                received_at=h.received_at,
                reason=h.reason,
            )
        )
    return tuple(lines)


def owner_removed(
    user_email: str,
    policy_path: str,
    *,
    since: datetime,
    grace: timedelta,
    now: datetime,
    meetings: Sequence[IdentifiedMeetingLike],
) -> OwnerRemoved:
    """What is left of a user whose policy file was removed: their open meetings still ahead."""
    ahead = sorted(
        (m for m in meetings if m.state in OPEN_STATES and m.start > now),
        key=lambda m: (m.start, m.id),
    )
    return OwnerRemoved(
        user_email=user_email.strip().lower(),
        policy_path=policy_path,
        since=since,
        cancel_after=since + grace,
        meetings=tuple(
            RemovedMeeting(m.id, m.stakeholder_email, m.start, m.end, str(m.state)) for m in ahead
        ),
    )


def _line(
    policy: Policy,
    s: Stakeholder,
    now: datetime,
    contact: datetime | None,
    meetings: Sequence[MeetingLike],
) -> StakeholderLine:
    completed = [m.end for m in meetings if m.state == MeetingState.COMPLETED and m.end <= now]
    last_met = max([*completed, *([contact] if contact else [])], default=None)
    due_at = next_due(policy, s, last_met, now)
    ahead = [m for m in meetings if m.start >= now and not _declined(m, s.email)]
    upcoming = sorted((m for m in ahead if m.state in UPCOMING_STATES), key=lambda m: m.start)
    pending = sorted((m for m in ahead if m.state in PENDING_STATES), key=lambda m: m.start)
    nxt = upcoming[0] if upcoming else (pending[0] if pending else None)
    return StakeholderLine(
        email=s.email,
        name=s.name,
        tier=s.tier,
        department=s.department,
        last_met=last_met,
        due_at=due_at,
        days_overdue=(now - due_at).days,
        next_meeting=nxt.start if nxt else None,
        next_meeting_state=str(nxt.state) if nxt else None,
        kind=policy.meeting_of(s).kind,
        late_at=late_at(policy, s, last_met, now),
    )


def _declined(m: MeetingLike, email: str) -> bool:
    """Whether ``email`` declined the group meeting ``m`` (it is not their next meeting)."""
    answers = dict(getattr(m, "attendee_status", ()) or ())
    return answers.get(email.lower()) == "declined"


def _coverage(pairs: Iterable[tuple[str, bool]], order: Sequence[str] = ()) -> tuple[Coverage, ...]:
    met: dict[str, int] = {}
    total: dict[str, int] = {}
    for group, ok in pairs:
        total[group] = total.get(group, 0) + 1
        met[group] = met.get(group, 0) + int(ok)
    rank = {name: i for i, name in enumerate(order)}
    groups = sorted(total, key=lambda g: (rank.get(g, len(rank)), g))
    return tuple(Coverage(g, met[g], total[g]) for g in groups)


def _rates(meetings: Sequence[MeetingLike]) -> Rates:
    states = [m.state for m in meetings if m.state in SENT_STATES]
    return Rates(
        sent=len(states),
        accepted=sum(s in (MeetingState.ACCEPTED, MeetingState.COMPLETED) for s in states),
        declined=sum(s == MeetingState.DECLINED for s in states),
        awaiting=sum(s in (MeetingState.BOOKED, MeetingState.TENTATIVE) for s in states),
    )


def _pauses(policy: Policy, now: datetime, statuses: Mapping[str, StatusLike]) -> list[Pause]:
    owner_today = now.astimezone(ZoneInfo(policy.owner.timezone)).date()
    pauses: list[Pause] = []
    for s in policy.stakeholders:
        if s.paused_until is not None and s.paused_until > owner_today:
            pauses.append(Pause(s.email, "policy", s.paused_until, "paused in the policy file"))
            continue
        status = statuses.get(s.email)
        if status is None:
            continue
        if status.paused_reason and (status.paused_until is None or status.paused_until > now):
            pauses.append(Pause(s.email, "service", status.paused_until, status.paused_reason))
        elif status.backoff_until is not None and status.backoff_until > now:
            declined = status.last_declined_at
            reason = f"declined on {declined:%Y-%m-%d}; backing off" if declined else "backing off"
            pauses.append(Pause(s.email, "backoff", status.backoff_until, reason))
    return pauses


def _credentials(
    revoked: Sequence[RevokedLike], user_email: str, policy: Policy
) -> tuple[CredentialIssue, ...]:
    email = user_email.strip().lower()
    issues = []
    for r in revoked:
        if r.user_email.strip().lower() != email:
            continue
        fix = f"reconnect: goodwill connect {r.provider} --user {email}"
        if r.provider != policy.calendar.provider:
            fix += f" (the policy now uses {policy.calendar.provider}; or remove the old grant)"
        issues.append(CredentialIssue(r.provider, r.reason, r.updated_at, fix))
    return tuple(sorted(issues, key=lambda i: i.provider))
