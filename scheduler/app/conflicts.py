"""Conflict watch and rescheduling: a booked coffee stays right after the invite is out.

Every sync pass re-reads free/busy for the owner's booked, tentative and accepted goodwill
meetings still ahead, batched exactly as planning reads (one call for everyone). A meeting a
busy event now overlaps (for either person, our own event never counting) is handled by the
stakeholder's ``reschedule`` rule (:mod:`scheduler.core.policy.reschedule`):

- ``auto``: a new slot under the same rules and caps, then the same provider event is moved;
- ``ask``: a proposal at the new time, linked to the meeting (``replaces_id``); approving it
  moves the event (:func:`apply_move`), until then the original stands;
- ``notify``, or within ``not_within`` of the start: the conflict is recorded for the report.

A move that fails or finds no slot leaves the original in place and flags it: never half-moved.
The event is moved before the store follows, so a worker killed in between leaves one event at
the new time, which the next sync pass follows like any move made at the provider.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from scheduler.app.pipeline import Pipeline, idempotency_key, policy_for
from scheduler.app.records import Meeting, NewMeeting
from scheduler.app.responses import OWNER_LEVEL_ERRORS, sync_responses
from scheduler.core.busy import apply_busy_rules
from scheduler.core.conflicts import (
    Conflict,
    WatchedMeeting,
    counter_misfit,
    find_conflicts,
    without_our_event,
)
from scheduler.core.errors import ConnectorError
from scheduler.core.intervals import Interval
from scheduler.core.model import BusyQuery, BusyResult
from scheduler.core.planner import ExistingMeeting, Proposal, replan_one
from scheduler.core.policy import Policy, Stakeholder
from scheduler.core.policy.reschedule import reschedule_rule
from scheduler.core.ports import CalendarBackend
from scheduler.core.report_model import ConflictLine
from scheduler.core.states import MeetingState

__all__ = [
    "CONFLICT_ASKED",
    "CONFLICT_NOTIFY",
    "MOVED_CONFLICT",
    "apply_move",
    "conflict_lines",
    "receive_counter",
    "sync_pass",
    "watch_conflicts",
]

log = logging.getLogger("goodwill.conflicts")

_S = MeetingState
#: Meetings whose invite is out and that are watched for conflicts.
WATCHED_STATES = frozenset({_S.BOOKED, _S.ACCEPTED, _S.TENTATIVE})
#: Audit and report wording (the report and the owner's page look for these prefixes).
MOVED_CONFLICT = "moved: conflict"
CONFLICT_ASKED = "conflict: waiting for your answer"
CONFLICT_NOTIFY = "conflict: a new event overlaps this meeting"
CONFLICT_STUCK = "conflict: no new slot found; the meeting stays where it is"
CONFLICT_GONE = "conflict resolved: nothing overlaps the meeting any more"


@dataclass(frozen=True, slots=True)
class _Watch:
    p: Pipeline
    user_id: int
    policy: Policy
    backend: CalendarBackend
    now: datetime


def watch_conflicts(p: Pipeline, user_id: int, policy: Policy, backend: CalendarBackend) -> int:
    """One conflict pass for one owner. Returns how many meetings it changed or flagged.

    Raises ConnectorError from the batched busy read (the caller's sync pass decides).
    """
    w = _Watch(p, user_id, policy, backend, p.clock.now())
    mine = p.store.open_meetings(user_id)
    watched = [m for m in mine if m.state in WATCHED_STATES and m.start > w.now]
    if not watched:
        return 0
    busy = _read_busy(w, watched)
    conflicts = find_conflicts(
        [_watched(policy, m) for m in watched], busy, policy.availability.busy
    )
    by_id = {c.meeting.id: c for c in conflicts}
    changed = 0
    for m in watched:
        conflict = by_id.get(m.id)
        if conflict is None:
            if m.conflict_at is not None and _no_pending_move(mine, m):
                changed += p.store.set_conflict(m.id, None, now=w.now, detail=CONFLICT_GONE)
            continue
        changed += _handle(w, m, conflict, mine)
    return changed


def _watched(policy: Policy, m: Meeting) -> WatchedMeeting:
    return WatchedMeeting(
        m.id, policy.owner.email, m.stakeholder_email, m.start, m.end, m.idempotency_key
    )


def _read_busy(w: _Watch, meetings: list[Meeting]) -> BusyResult:
    """One batched read for the owner and every stakeholder of the watched meetings."""
    buffer = w.policy.availability.buffer
    window = Interval(
        min(m.start for m in meetings) - buffer, max(m.end for m in meetings) + buffer
    )
    people = [w.policy.owner.person]
    for email in dict.fromkeys(m.stakeholder_email for m in meetings):
        s = w.policy.stakeholder(email)
        if s is not None:
            people.append(w.policy.person_of(s))
    with w.p.provider_call(w.backend.provider, "conflict_watch"):
        return w.backend.source.busy(BusyQuery(window=window, people=tuple(people)))


def _no_pending_move(mine: list[Meeting], m: Meeting) -> bool:
    return not any(x.replaces_id == m.id and x.state == _S.PROPOSED for x in mine)


def _handle(w: _Watch, m: Meeting, conflict: Conflict, mine: list[Meeting]) -> int:
    s = w.policy.stakeholder(m.stakeholder_email)
    if s is None:
        return 0
    rule = reschedule_rule(w.policy, s)
    busy = conflict.busy
    detail = f"{conflict.side}'s calendar: busy {busy.start:%a %H:%M}-{busy.end:%H:%M} UTC"
    if rule.mode == "notify" or m.start - w.now <= rule.not_within:
        return int(
            w.p.store.set_conflict(m.id, w.now, now=w.now, detail=f"{CONFLICT_NOTIFY} ({detail})")
        )
    if rule.mode == "ask" and not _no_pending_move(mine, m):
        return 0  # already asked: waiting for the owner
    # A meeting flagged earlier (no slot then, or the move failed) is tried again each pass.
    new = _new_slot(w, m, s)
    if new is None:
        return int(
            w.p.store.set_conflict(m.id, w.now, now=w.now, detail=f"{CONFLICT_STUCK} ({detail})")
        )
    if rule.mode == "ask":
        return _ask(w, m, new, detail, mine)
    if _move(w, m, new.start, new.end, why=MOVED_CONFLICT):
        return 1
    return int(
        w.p.store.set_conflict(m.id, w.now, now=w.now, detail=f"{CONFLICT_STUCK}: the move failed")
    )


def _new_slot(w: _Watch, m: Meeting, s: Stakeholder) -> Proposal | None:
    """A new slot under the same rules and caps, with the meeting's own slot left out."""
    av = w.policy.availability
    window = Interval(w.now, w.now + av.horizon)
    people = (w.policy.owner.person, w.policy.person_of(s))
    with w.p.provider_call(w.backend.provider, "read_busy"):
        busy = w.backend.source.busy(BusyQuery(window=window, people=people))
    key = m.idempotency_key
    busy = BusyResult(
        blocks={k: without_our_event(v, key, m.start, m.end) for k, v in busy.blocks.items()},
        unavailable=busy.unavailable,
        working_hours=busy.working_hours,
    )
    existing = [
        ExistingMeeting(x.stakeholder_email, x.start, x.end)
        for x in w.p.store.open_meetings(w.user_id)
        if x.id != m.id and x.replaces_id != m.id
    ]
    found = replan_one(
        w.policy, m.stakeholder_email, now=w.now, busy=busy, existing=existing, why=MOVED_CONFLICT
    )
    return found if isinstance(found, Proposal) else None


def _ask(w: _Watch, m: Meeting, new: Proposal, detail: str, mine: list[Meeting]) -> int:
    if not _no_pending_move(mine, m):
        return 0
    proposal = NewMeeting(
        stakeholder_email=m.stakeholder_email,
        kind=m.kind,
        start=new.start,
        end=new.end,
        mode="propose",
        idempotency_key=idempotency_key(
            w.user_id, m.stakeholder_email, new.start, secret=w.p.key_secret
        )
        + "m",
        provider=m.provider,
        reason=f"{CONFLICT_ASKED}: {new.reason}",
        state=_S.PROPOSED,
        replaces_id=m.id,
    )
    w.p.store.add_meetings(w.user_id, [proposal], now=w.now, actor="sync")
    w.p.store.set_conflict(m.id, w.now, now=w.now, detail=f"{CONFLICT_ASKED} ({detail})")
    return 1


def _move(w: _Watch, m: Meeting, start: datetime, end: datetime, *, why: str) -> bool:
    """Move the same provider event, then follow it in the store. False: nothing moved."""
    writer = w.backend.writer
    if writer is None or not m.provider_event_id:
        return False
    for attempt in (1, 2):
        try:
            with w.p.provider_call(w.backend.provider, "move_event"):
                writer.move_event(w.policy.owner.person, m.provider_event_id, start, end)
            break
        except ConnectorError as exc:
            # A move to the same time is safe to repeat (the update is sent once), and a
            # transient failure may have moved the copy but not told the attendee yet.
            log.warning("meeting %s: moving the event failed: %s", m.id, type(exc).__name__)
            if not exc.transient or attempt == 2:
                return False
    return w.p.store.reschedule(m.id, start, end, now=w.now, actor="sync", why=why)


def apply_move(p: Pipeline, proposal: Meeting, policy: Policy) -> bool:
    """The owner approved an ``ask`` proposal: move the original meeting's event to its time.

    The proposal itself is closed (it never becomes a second invite). False: the original is
    gone or the move failed (the original stands, flagged).
    """
    now = p.clock.now()
    original = p.store.get_meeting(proposal.replaces_id) if proposal.replaces_id else None
    if original is None or original.state not in WATCHED_STATES:
        p.store.transition(
            proposal.id, _S.CANCELLED, actor="user", now=now, expect=_S.PROPOSED,
            detail="the meeting it would move is no longer booked",
        )  # fmt: skip
        return False
    # Closed first, by compare-and-set: of two approvals at once (two tabs, a digest link and
    # the page) exactly one moves the event.
    if not p.store.transition(
        proposal.id, _S.CANCELLED, actor="user", now=now, expect=_S.PROPOSED,
        detail=f"approved: moving meeting {original.id}",
    ):  # fmt: skip
        return False
    w = _Watch(p, proposal.user_id, policy, p.backends(policy), now)
    moved = _move(w, original, proposal.start, proposal.end, why=f"{MOVED_CONFLICT} (approved)")
    p.store.record_event(
        now=now, actor="user", user_id=proposal.user_id, meeting_id=proposal.id,
        detail=f"approved: meeting {original.id} moved" if moved else "approved: the move failed",
    )  # fmt: skip
    if not moved:
        p.store.set_conflict(original.id, now, now=now, detail=f"{CONFLICT_STUCK}: the move failed")
    return moved


def sync_pass(p: Pipeline, user_id: int) -> int:
    """The scheduled sync for one owner: follow the answers, then watch for conflicts.

    Returns how many meetings changed. A transient provider error is raised (the actor's short
    retry, then the next pass); the conflict watch runs only when the answers could be read.
    """
    policy = policy_for(p, p.store.get_user(user_id))
    if policy is None:
        return 0
    backend = p.backends(policy)
    w = _Watch(p, user_id, policy, backend, p.clock.now())

    def on_counter(m: Meeting, start: datetime, end: datetime) -> int:
        return _counter_proposal(w, m, start, end)

    try:
        changed = sync_responses(p, user_id, policy=policy, backend=backend, on_counter=on_counter)
    except OWNER_LEVEL_ERRORS as exc:  # the planning round records a revoked grant
        log.warning("user %s: sync pass stopped: %s", user_id, type(exc).__name__)
        return 0
    return changed + watch_conflicts(p, user_id, policy, backend)


COUNTER_ASKED = "counter-proposal: they proposed a new time, waiting for your answer"
COUNTER_MISFIT = "counter-proposal not applied"


def _counter_proposal(w: _Watch, m: Meeting, start: datetime, end: datetime) -> int:
    """A time the stakeholder proposed becomes an ``ask`` proposal when it fits the owner's
    rules; otherwise it is reported (once) in the meeting's trail and the owner's report."""
    if m.state not in WATCHED_STATES or (start, end) == (m.start, m.end):
        return 0
    mine = w.p.store.open_meetings(w.user_id)
    if any(x.replaces_id == m.id and (x.start, x.end) == (start, end) for x in mine):
        return 0  # already proposed to the owner
    buffer = w.policy.availability.buffer
    with w.p.provider_call(w.backend.provider, "read_busy"):
        busy = w.backend.source.busy(
            BusyQuery(
                window=Interval(start - buffer, end + buffer), people=(w.policy.owner.person,)
            )
        )
    blocks = without_our_event(
        busy.blocks.get(w.policy.owner.email, []), m.idempotency_key, m.start, m.end
    )
    owner_busy = apply_busy_rules(blocks, w.policy.availability.busy)
    misfit = counter_misfit(w.policy, start, end, now=w.now, owner_busy=owner_busy)
    when = f"{start:%a %d %b %H:%M} UTC"
    if misfit is not None:
        detail = f"{COUNTER_MISFIT}: {when} ({misfit})"
        if any(e.detail == detail for e in w.p.store.audit_trail(m.id)):
            return 0
        w.p.store.record_event(
            now=w.now, actor="sync", user_id=w.user_id, meeting_id=m.id, detail=detail
        )
        return 1
    proposal = NewMeeting(
        stakeholder_email=m.stakeholder_email,
        kind=m.kind,
        start=start,
        end=end,
        mode="propose",
        idempotency_key=idempotency_key(
            w.user_id, m.stakeholder_email, start, secret=w.p.key_secret
        )
        + "c",
        provider=m.provider,
        reason=f"{COUNTER_ASKED}: {when}",
        state=_S.PROPOSED,
        replaces_id=m.id,
    )
    w.p.store.add_meetings(w.user_id, [proposal], now=w.now, actor="sync")
    return 1


def receive_counter(p: Pipeline, m: Meeting, policy: Policy, start: datetime, end: datetime) -> str:
    """A counter-proposal that came by e-mail (iMIP COUNTER): as on the sync pass, an ``ask``
    proposal when it fits the owner's rules, else reported. Returns what was done, for the
    command's output."""
    w = _Watch(p, m.user_id, policy, p.backends(policy), p.clock.now())
    if not _counter_proposal(w, m, start, end):
        return "counter-proposal already seen"
    trail = p.store.audit_trail(m.id)
    if trail and trail[-1].detail.startswith(COUNTER_MISFIT):
        return trail[-1].detail
    return f"{COUNTER_ASKED}: approve it with goodwill approve or on your page"


#: How far back the report shows moves made because of a conflict.
_MOVES_SHOWN = timedelta(days=14)
_NOTES = (MOVED_CONFLICT, "conflict", "counter-proposal")


def conflict_lines(p: Pipeline, user_id: int) -> list[ConflictLine]:
    """For the owner's report: meetings still conflicted (the latest note on each) and the
    moves and counter-proposals of the last two weeks, from the audit trail."""
    now = p.clock.now()
    meetings = {m.id: m for m in p.store.open_meetings(user_id)}
    lines: dict[tuple[int, str], ConflictLine] = {}
    for e in p.store.user_events(user_id, since=now - _MOVES_SHOWN):
        m = meetings.get(e.meeting_id) if e.meeting_id is not None else None
        if m is None or not e.detail.startswith(_NOTES) or e.detail.startswith(CONFLICT_GONE):
            continue
        note = e.detail.split(" (", 1)[0].split("; moved from", 1)[0]
        lines[(m.id, note)] = ConflictLine(m.id, m.stakeholder_email, m.start, note, e.at)
    still = {m.id for m in meetings.values() if m.conflict_at is not None}
    return [
        c
        for c in lines.values()
        if c.note.startswith((MOVED_CONFLICT, "counter-proposal")) or c.meeting_id in still
    ]
