"""The owner's digest e-mail and immediate notices (``notify:`` in the policy).

In ``propose`` mode a proposal waits for the owner; the digest tells them what waits (proposals
with one-click approve/decline links, conflicts waiting for an answer, answers held for them)
and what happened since the last digest, with a sign-in link to their page. ``notify.on`` also
sends one short notice per matching event as it happens.

Exactly once per period: before anything is sent, a row in ``owner_mails`` (user, kind, period)
is claimed (:meth:`StorePort.claim_owner_mail`), so two tick replicas, a retry or a crash never
send one digest period (or one event's notice) twice. A failed send keeps the claim as
``failed`` and is retried once its lease runs out; a sent digest moves ``next_digest_at`` in
the same transaction. An SMTP failure is logged (by user id, never an address) and never
escapes to the tick.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Protocol

from scheduler.app.digest_text import (
    DigestContent,
    Happening,
    HeldAnswer,
    Notice,
    WaitingConflict,
    WaitingProposal,
    below_quorum_line,
    cancel_reason,
    local_time,
    render_digest,
    render_notice,
)
from scheduler.app.groups import PRESENTER_DECLINED
from scheduler.app.owner_groups import (
    BELOW_QUORUM,
    group_label,
    plain_group_line,
    presenter_declined_text,
)
from scheduler.app.pipeline import Pipeline, policy_for
from scheduler.app.records import AuditEntry, Meeting, OwnerMailKind, User
from scheduler.core.policy import Policy
from scheduler.core.policy.notify import next_digest_at, on_schedule
from scheduler.core.states import MeetingState

__all__ = [
    "DigestLinks",
    "Mailer",
    "OwnerMailer",
    "SentMail",
    "compose_digest",
    "describe_event",
    "notice_kind",
    "schedule_digest",
    "send_digest_now",
    "send_due_digests",
    "send_notices",
    "send_owner_mails",
]

log = logging.getLogger("goodwill.digest")

_S = MeetingState
#: Audit details of a conflict the owner is told about start with this
#: (:data:`scheduler.app.conflicts.CONFLICT_ASKED`, ``CONFLICT_NOTIFY``, ``CONFLICT_STUCK``).
CONFLICT_PREFIX = "conflict: "
_WATCHED = frozenset({_S.BOOKED, _S.ACCEPTED, _S.TENTATIVE})
_MAX_RETRY_S = 6 * 3600.0
_ERROR_MAX = 300


class DigestLinks(Protocol):
    """Signed links in the owner's e-mails (``scheduler.entrypoints.web`` ``LinkTokens``)."""

    def page(self) -> str: ...  # a plain link to the page (it asks to sign in); never expires

    def action(self, email: str, meeting_id: int, action: str) -> str: ...  # approve|decline


class Mailer(Protocol):
    """Sends one e-mail (the SMTP adapter in ``connectors``)."""

    def send(self, message: EmailMessage) -> None: ...


@dataclass
class OwnerMailer:
    """What sending the owners' e-mails needs, built once by the composition root.

    Attributes:
        sender: the From address (``GOODWILL_SMTP__SENDER``).
        lease_s: how long a claim holds while one mail is sent (a crashed sender's claim is
            taken over after it).
        retry_s: the first retry after a failed send; doubled per attempt, at most 6 hours.
        batch: digests sent per round at most (the rest are due in the next round).
        notice_window: how far back events are looked at for notices (older: digest only).
        notice_every: notices are looked for at most this often.
        notice_batch: audit rows read per notice pass at most.
    """

    links: DigestLinks
    mailer: Mailer
    sender: str
    lease_s: float = 300.0
    retry_s: float = 300.0
    batch: int = 100
    notice_window: timedelta = timedelta(days=1)
    notice_every: timedelta = timedelta(minutes=1)
    #: audit rows read per notice pass at most (the rest in the next pass).
    notice_batch: int = 1000
    _notices_at: datetime | None = field(default=None, init=False, repr=False)
    _notice_cursor: int = field(default=0, init=False, repr=False)
    _notice_retry: dict[int, AuditEntry] = field(default_factory=dict, init=False, repr=False)


@dataclass(frozen=True, slots=True)
class SentMail:
    """One e-mail this process tried to send (``ok``: the SMTP server took it)."""

    user_id: int
    email: str
    kind: OwnerMailKind
    subject: str
    ok: bool
    error: str | None = None


# -- when ------------------------------------------------------------------------------------


def schedule_digest(
    p: Pipeline, user_id: int, current: datetime | None, policy: Policy, now: datetime
) -> None:
    """Keep ``users.next_digest_at`` in step with the policy (on registration).

    No digest in the policy: cleared. A stored time still on the policy's schedule (even one
    already due) is kept; otherwise (new owner, a changed day, time or zone) the next moment
    after ``now`` is stored.
    """
    schedule = policy.notify.digest
    if schedule is None:
        if current is not None:
            p.store.set_next_digest(user_id, None)
        return
    zone = policy.owner.timezone
    if current is not None and on_schedule(schedule, zone, current):
        return
    p.store.set_next_digest(user_id, next_digest_at(schedule, zone, now))


# -- sending ---------------------------------------------------------------------------------


def send_owner_mails(p: Pipeline, post: OwnerMailer) -> list[SentMail]:
    """One tick round's owner e-mails: the due digests, then new notices. Never raises."""
    sent: list[SentMail] = []
    for step in (send_due_digests, send_notices):
        try:
            sent += step(p, post)
        except Exception:  # the store failing: the next round tries again
            log.exception("sending the owners' e-mails failed this round; retried next round")
    return sent


def send_due_digests(p: Pipeline, post: OwnerMailer) -> list[SentMail]:
    """Send every digest that is due (at most ``post.batch``), each claimed first."""
    now = p.clock.now()
    out: list[SentMail] = []
    for user in p.store.due_digest_users(now, post.batch):
        try:
            sent = _scheduled_digest(p, post, user, now)
        except Exception:  # one owner's digest never stops the others'
            log.exception("the digest of user %d failed; retried next round", user.id)
            continue
        if sent is not None:
            out.append(sent)
    return out


def _scheduled_digest(p: Pipeline, post: OwnerMailer, user: User, now: datetime) -> SentMail | None:
    policy = policy_for(p, user)
    schedule = policy.notify.digest if policy is not None else None
    if policy is None or schedule is None or user.next_digest_at is None:
        p.store.set_next_digest(user.id, None)  # registration sets it again when it is back
        return None
    following = next_digest_at(schedule, policy.owner.timezone, now)
    return _deliver(
        p,
        post,
        user,
        OwnerMailKind.DIGEST,
        user.next_digest_at.isoformat(),
        lambda at: compose_digest(p, post, user, policy, at),
        next_digest=following,
    )


def send_digest_now(p: Pipeline, post: OwnerMailer, user: User) -> SentMail | None:
    """Send ``user`` a digest now (``goodwill digest``), whatever their schedule; the schedule
    is left as it is. None: their policy does not load."""
    policy = policy_for(p, user)
    if policy is None:
        return None
    key = f"now:{p.clock.now().isoformat()}"
    compose = lambda at: compose_digest(p, post, user, policy, at)  # noqa: E731
    return _deliver(p, post, user, OwnerMailKind.DIGEST, key, compose)


def send_notices(p: Pipeline, post: OwnerMailer) -> list[SentMail]:
    """One short notice per new event an owner's ``notify.on`` names (the audit row id is the
    period: never twice). Looked for at most every ``post.notice_every``.

    Only audit rows newer than the last pass are read (by id, the table's primary key; the first
    pass of a process reads the last ``notice_window`` by time), and only their owners' policies
    are loaded: a pass costs the number of new events, not the number of users. A notice whose
    send failed is tried again on later passes while it is inside ``notice_window``.
    """
    now = p.clock.now()
    if post._notices_at is not None and now - post._notices_at < post.notice_every:
        return []
    post._notices_at = now
    since = now - post.notice_window
    entries = p.store.events_after(post._notice_cursor, since=since, limit=post.notice_batch)
    if entries:
        post._notice_cursor = max(post._notice_cursor, entries[-1].id)
    todo = {e.id: e for e in post._notice_retry.values() if e.at >= since}
    todo.update((e.id, e) for e in entries if e.user_id is not None and notice_kind(e))
    post._notice_retry = {}
    by_user: dict[int, list[AuditEntry]] = {}
    for entry in sorted(todo.values(), key=lambda e: e.id):
        by_user.setdefault(entry.user_id or 0, []).append(entry)
    out: list[SentMail] = []
    for user_id, mine in by_user.items():
        try:
            sent, again = _user_notices(p, post, user_id, mine)
        except Exception:  # one owner's notices never stop the others'
            log.exception("the notices of user %d failed; tried again next pass", user_id)
            sent, again = [], mine
        out += sent
        post._notice_retry.update((e.id, e) for e in again)
    return out


def _user_notices(
    p: Pipeline, post: OwnerMailer, user_id: int, entries: list[AuditEntry]
) -> tuple[list[SentMail], list[AuditEntry]]:
    """The notices sent for ``entries`` of one owner, and the entries to try again."""
    user = p.store.get_user(user_id)
    if user is None or user.policy_missing_since is not None:
        return [], []
    policy = policy_for(p, user)
    if policy is None or not policy.notify.on:
        return [], []
    wanted = set(policy.notify.on)
    out: list[SentMail] = []
    again: list[AuditEntry] = []
    for entry in entries:
        if notice_kind(entry) not in wanted or entry.meeting_id is None:
            continue
        meeting = p.store.get_meeting(entry.meeting_id)
        if meeting is None:
            continue
        compose = _notice_composer(post, user, policy, entry, meeting)
        sent = _deliver(p, post, user, OwnerMailKind.NOTICE, str(entry.id), compose)
        if sent is not None:
            out.append(sent)
        if sent is None or not sent.ok:  # failed, or its retry is not due yet
            again.append(entry)
    return out, again


def _deliver(
    p: Pipeline,
    post: OwnerMailer,
    user: User,
    kind: OwnerMailKind,
    period_key: str,
    compose: Callable[[datetime], EmailMessage],
    *,
    next_digest: datetime | None = None,
) -> SentMail | None:
    """Claim, compose, send, finish. None: claimed by someone else, sent already, or its retry
    is not due yet."""
    now = p.clock.now()
    mail = p.store.claim_owner_mail(user.id, kind, period_key, now=now, lease_s=post.lease_s)
    if mail is None:
        return None
    subject = ""
    try:
        message = compose(now)
        subject = str(message["Subject"])
        post.mailer.send(message)
    except Exception as exc:  # SMTP down, refused, a bad record: retried, never fatal
        first = (str(exc).strip().splitlines() or [""])[0]
        error = (f"{type(exc).__name__}: {first}" if first else type(exc).__name__)[:_ERROR_MAX]
        wait = min(post.retry_s * 2 ** (mail.attempts - 1), _MAX_RETRY_S)
        retry_at = now + timedelta(seconds=wait)
        p.store.finish_owner_mail(
            mail.id, attempt=mail.attempts, now=p.clock.now(), error=error, retry_at=retry_at
        )
        log.warning(
            "the %s e-mail to user %d failed (attempt %d, retried after %s): %s",
            kind.value, user.id, mail.attempts, retry_at.isoformat(), type(exc).__name__,
        )  # fmt: skip
        return SentMail(user.id, user.email, kind, subject, ok=False, error=error)
    p.store.finish_owner_mail(
        mail.id, attempt=mail.attempts, now=p.clock.now(), next_digest_at=next_digest
    )
    log.info("sent the %s e-mail to user %d (attempt %d)", kind.value, user.id, mail.attempts)
    return SentMail(user.id, user.email, kind, subject, ok=True)


# -- what goes in ----------------------------------------------------------------------------


def _name(policy: Policy, email: str) -> str:
    s = policy.stakeholder(email)
    return s.name if s is not None else email


def _with(policy: Policy, m: Meeting) -> str:
    """Who a meeting is with: the stakeholder, or the group and its attendees."""
    return group_label(policy, m) if m.is_group else _name(policy, m.stakeholder_email)


def compose_digest(
    p: Pipeline, post: OwnerMailer, user: User, policy: Policy, now: datetime
) -> EmailMessage:
    """The digest for ``user`` as of ``now``: what waits, and what happened since the last one."""
    zone, email = policy.owner.timezone, policy.owner.email
    last = p.store.last_owner_mail(user.id, OwnerMailKind.DIGEST)
    since = last.sent_at if last is not None else None
    daily = policy.notify.digest is not None and policy.notify.digest.weekday is None
    events_since = since or now - timedelta(days=1 if daily else 7)
    open_ = p.store.open_meetings(user.id)
    proposals = sorted((m for m in open_ if m.state is _S.PROPOSED), key=lambda m: m.start)
    moving = {m.replaces_id for m in proposals if m.replaces_id is not None}
    content = DigestContent(
        owner_email=email,
        owner_name=policy.owner.name,
        zone=zone,
        page_url=post.links.page(),
        proposals=tuple(
            WaitingProposal(
                meeting_id=m.id,
                name=_with(policy, m),
                when=local_time(m.start, zone),
                reason=m.reason,
                approve_url=post.links.action(email, m.id, "approve"),
                decline_url=post.links.action(email, m.id, "decline"),
                is_move=m.replaces_id is not None,
                group_line=plain_group_line(policy, m) if m.is_group else "",
                owner_note=m.owner_note,
            )
            for m in proposals
        ),
        conflicts=tuple(
            WaitingConflict(
                name=_with(policy, m),
                when=local_time(m.start, zone),
                note=(
                    "a new time is proposed above"
                    if m.id in moving
                    else "a new event overlaps it; it stays where it is until you decide"
                ),
            )
            for m in sorted(open_, key=lambda m: m.start)
            if m.conflict_at is not None and m.state in _WATCHED
        ),
        held=_held(p, user, policy),
        happened=_happened(p, user, policy, events_since),
        since=since,
    )
    return render_digest(content, sender=post.sender, now=now)


def _held(p: Pipeline, user: User, policy: Policy) -> tuple[HeldAnswer, ...]:
    out: list[HeldAnswer] = []
    for h in p.store.held_replies(user.id):
        meeting = p.store.get_meeting(h.meeting_id) if h.meeting_id is not None else None
        out.append(
            HeldAnswer(
                held_id=h.id,
                name=_name(policy, meeting.stakeholder_email if meeting else h.attendee),
                when=local_time(meeting.start, policy.owner.timezone) if meeting else "",
                answer=str(h.answer.value),
                sender=h.sender,
            )
        )
    return tuple(out)


def _happened(p: Pipeline, user: User, policy: Policy, since: datetime) -> tuple[Happening, ...]:
    out: list[Happening] = []
    meetings: dict[int, Meeting | None] = {}
    for entry in p.store.user_events(user.id, since=since):
        if entry.meeting_id is None:
            continue
        if entry.meeting_id not in meetings:
            meetings[entry.meeting_id] = p.store.get_meeting(entry.meeting_id)
        meeting = meetings[entry.meeting_id]
        if meeting is None:
            continue
        text = describe_event(entry, meeting, _with(policy, meeting), policy)
        if text is not None:
            out.append(Happening(text))
    return tuple(out)


def describe_event(entry: AuditEntry, m: Meeting, name: str, policy: Policy) -> str | None:
    """One audit row in plain words for the owner (None: not worth telling)."""
    when = local_time(m.start, policy.owner.timezone)
    kind, to, detail = m.kind, entry.to_state, entry.detail
    words = {
        _S.BOOKED.value: f"Invite sent to {name} for the {kind} on {when}",
        _S.ACCEPTED.value: f"{name} accepted the {kind} on {when}",
        _S.TENTATIVE.value: f"{name} answered maybe to the {kind} on {when}",
        _S.DECLINED.value: f"{name} declined the {kind} on {when}",
        _S.CANCELLED.value: f"The {kind} with {name} on {when} was cancelled"
        + (f": {why}" if (why := cancel_reason(detail)) else ""),
        _S.EXPIRED.value: f"The proposal to meet {name} on {when} expired: not approved in time",
        _S.COMPLETED.value: f"You met {name} ({when})",
        _S.FAILED.value: f"The {kind} with {name} on {when} could not be booked; see your page",
    }
    if to == _S.PROPOSED.value and entry.from_state is None:
        return f"goodwill proposed a {kind} with {name} on {when}"
    if to == _S.APPROVED.value and entry.from_state == _S.PROPOSED.value:
        return f"The {kind} with {name} on {when} was approved"
    if to is not None:
        return words.get(to)
    if "moved from " in detail:
        return f"The {kind} with {name} moved; it is now on {when}"
    if detail.startswith(CONFLICT_PREFIX):
        return f"A new event overlaps the {kind} with {name} on {when}"
    if detail.startswith(BELOW_QUORUM):
        return below_quorum_line(kind, m.group_name or name, when, detail)
    if detail.startswith(PRESENTER_DECLINED):
        return presenter_declined_text(policy, m) or None
    return None


def notice_kind(entry: AuditEntry) -> str | None:
    """Which ``notify.on`` event an audit row is (None: none of them)."""
    if entry.meeting_id is None:
        return None
    if entry.to_state == _S.PROPOSED.value and entry.from_state is None:
        return "proposal"
    if entry.to_state in (_S.DECLINED.value, _S.EXPIRED.value):
        return entry.to_state
    if entry.to_state is None and entry.detail.startswith(CONFLICT_PREFIX):
        return "conflict"
    if entry.to_state is None and entry.detail.startswith(BELOW_QUORUM):
        return "declined"  # declines took a group meeting below its quorum
    return None


def _notice_composer(
    post: OwnerMailer, user: User, policy: Policy, entry: AuditEntry, m: Meeting
) -> Callable[[datetime], EmailMessage]:
    def compose(now: datetime) -> EmailMessage:
        email = policy.owner.email
        name = _with(policy, m)
        line = describe_event(entry, m, name, policy) or f"Something changed for {name}"
        actions: tuple[tuple[str, str], ...] = ()
        subject = f"goodwill: {line}"
        if notice_kind(entry) == "proposal":
            subject = f"goodwill: a {m.kind} with {name} waits for your approval"
            if m.state is _S.PROPOSED:
                actions = (
                    ("Approve", post.links.action(email, m.id, "approve")),
                    ("Decline", post.links.action(email, m.id, "decline")),
                )
        notice = Notice(
            owner_email=email,
            owner_name=policy.owner.name,
            subject=subject,
            line=line,
            page_url=post.links.page(),
            actions=actions,
        )
        return render_notice(notice, sender=post.sender, now=now)

    return compose
