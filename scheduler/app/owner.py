"""What one owner can see and do about their own meetings: the use cases behind the owner's web
page and the ``goodwill cancel/pause/resume/approve/decline --user`` commands.

Every function takes the owner's ``user_id`` and touches that owner's meetings only: a meeting
id that is not theirs behaves exactly as one that does not exist (``Outcome.NOT_FOUND``), so
neither the page nor the CLI can tell another owner's meeting from a missing one.

CONTRACT (shared by the web page, the CLI and the digest; keep these names and shapes):
the bodies are filled in by the owner-actions work; the signatures are fixed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from scheduler.app import decisions
from scheduler.app.groups import group_slot_taken
from scheduler.app.owner_groups import group_headline
from scheduler.app.owner_model import (
    ActionResult,
    Alternative,
    Outcome,
    OwnerView,
    ProposalView,
    UpcomingView,
)
from scheduler.app.owner_text import (
    CANCELLABLE,
    day_text,
    decided_text,
    name_of,
    pause_end,
    read_policy,
    refuse_cancel,
    when_text,
    zone_of,
)
from scheduler.app.owner_view import build_owner_view
from scheduler.app.pipeline import Pipeline, with_status
from scheduler.app.recheck import calendars_busy
from scheduler.app.records import Meeting, User
from scheduler.app.registration import AT_PROVIDER, cancel_at_provider
from scheduler.core.errors import ConfigurationError, ConnectorError
from scheduler.core.planner import paused_until_text
from scheduler.core.policy import Policy, Stakeholder
from scheduler.core.states import MeetingState

__all__ = [
    "SNOOZED",
    "SNOOZE_WEEKS",
    "ActionResult",
    "Alternative",
    "Outcome",
    "OwnerView",
    "ProposalView",
    "UpcomingView",
    "approve",
    "cancel",
    "cancel_all",
    "choose_alternative",
    "decline",
    "meeting_for_owner",
    "owner_view",
    "pause",
    "resume",
    "snooze",
    "to_cancel",
]

_S = MeetingState
#: What "pause, also cancel everything goodwill booked" cancels: booked, or about to be.
_BOOKED_AHEAD = frozenset({_S.APPROVED, _S.BOOKED, _S.ACCEPTED, _S.TENTATIVE})
#: How long an owner may snooze a stakeholder, in weeks.
SNOOZE_WEEKS = (2, 4, 8)
#: The reason recorded on a stakeholder the owner snoozed.
SNOOZED = "snoozed by you"
#: Minimum notice assumed when the owner's policy is not at hand (as decisions.py does).
_DEFAULT_NOTICE = timedelta(hours=2)


# -- loading what an action works on -------------------------------------------------------


def meeting_for_owner(p: Pipeline, user_id: int, meeting_id: int) -> Meeting | None:
    """The meeting if it is this owner's, else None (never tells the two apart)."""
    m = p.store.get_meeting(meeting_id)
    return m if m is not None and m.user_id == user_id else None


def _result(outcome: Outcome, message: str, m: Meeting | None = None) -> ActionResult:
    return ActionResult(outcome, message, m.id if m is not None else None)


def _who(policy: Policy | None, m: Meeting) -> str:
    """Who a meeting is with, for a message: the stakeholder, or the group's headline."""
    return group_headline(policy, m) if m.is_group else name_of(policy, m.stakeholder_email)


def _not_found(meeting_id: int) -> ActionResult:
    return ActionResult(Outcome.NOT_FOUND, "There is no such meeting.", meeting_id)


@dataclass(frozen=True, slots=True)
class _Open:
    """An open proposal of this owner, with what acting on it needs."""

    user: User
    m: Meeting
    policy: Policy | None
    zone: ZoneInfo


def _open_proposal(p: Pipeline, user_id: int, meeting_id: int) -> _Open | ActionResult:
    """The owner's proposal if it may still be decided, else the result that says why not.

    A proposal past its approval deadline (half the notice before its start) is expired here,
    as the next planning round would.
    """
    m = meeting_for_owner(p, user_id, meeting_id)
    user = p.store.get_user(user_id)
    if m is None or user is None:
        return _not_found(meeting_id)
    policy = read_policy(p, user)
    zone = zone_of(policy)
    if m.state != _S.PROPOSED:
        return _result(Outcome.CONFLICT, decided_text(p, m, zone), m)
    now = p.clock.now()
    notice = policy.availability.min_notice if policy is not None else _DEFAULT_NOTICE
    if m.start - notice / 2 <= now:
        p.store.transition(
            m.id, _S.EXPIRED, actor="tick", now=now, expect=_S.PROPOSED,
            detail="not approved in time",
        )  # fmt: skip
        found = p.store.get_meeting(m.id) or m
        return _result(Outcome.CONFLICT, decided_text(p, found, zone), m)
    return _Open(user, m, policy, zone)


# -- re-checking a slot ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Check:
    policy: Policy
    stakeholder: Stakeholder


def _checker(o: _Open) -> _Check | ActionResult:
    if o.policy is None:
        return _result(Outcome.CONFLICT, "Your policy file cannot be read; fix it first.", o.m)
    s = o.policy.stakeholder(o.m.stakeholder_email)
    if s is None:
        return _result(Outcome.CONFLICT, f"{o.m.stakeholder_email} is no longer in your policy.")
    return _Check(o.policy, s)


def _clashes(p: Pipeline, o: _Open, start: datetime, end: datetime) -> bool:
    """Whether another open goodwill meeting of this owner holds [start, end)."""
    return any(
        c.id != o.m.id and c.start < end and start < c.end for c in p.store.open_meetings(o.user.id)
    )


def _slot_busy(p: Pipeline, o: _Open, c: _Check, start: datetime, end: datetime) -> bool:
    """Both calendars re-read for the slot, as booking does. Raises ConfigurationError and
    ConnectorError."""
    if _clashes(p, o, start, end):
        return True
    return calendars_busy(p, c.policy, p.backends(c.policy), c.stakeholder, start, end)


def _still_free(p: Pipeline, o: _Open, c: _Check, skip: int | None) -> tuple[Alternative, ...]:
    """The proposal's alternatives that are still free now (calendars re-read)."""
    earliest = p.clock.now() + c.policy.availability.min_notice
    free: list[Alternative] = []
    for i, (start, end) in enumerate(o.m.alternatives):
        if i == skip or start < earliest:
            continue
        try:
            if not _slot_busy(p, o, c, start, end):
                free.append(Alternative(i, start, end))
        except (ConfigurationError, ConnectorError):
            return tuple(free)
    return tuple(free)


def _group_recheck(p: Pipeline, o: _Open, start: datetime, end: datetime) -> ActionResult | None:
    """A group meeting's slot re-read for the owner and every attendee in one busy read (as
    booking does): None while the owner and the quorum are free, else SLOT_GONE or CONFLICT."""
    if o.policy is None:
        return _result(Outcome.CONFLICT, "Your policy file cannot be read; fix it first.", o.m)
    try:
        taken = _clashes(p, o, start, end) or group_slot_taken(
            p, o.policy, p.backends(o.policy), replace(o.m, start=start, end=end)
        )
    except ConfigurationError:
        return _result(Outcome.CONFLICT, "Your calendar is not connected; connect it first.", o.m)
    except ConnectorError:
        message = "The calendars could not be checked just now; try again in a few minutes."
        return _result(Outcome.CONFLICT, message, o.m)
    if not taken:
        return None
    return ActionResult(
        Outcome.SLOT_GONE,
        f"{when_text(start, o.zone)} is no longer free for you and enough of them.",
        o.m.id,
    )


def _recheck(
    p: Pipeline, o: _Open, start: datetime, end: datetime, *, skip: int | None = None
) -> ActionResult | None:
    """None when the slot is still free for both; else SLOT_GONE (with the free alternatives)
    or CONFLICT (the calendars cannot be read now). A group meeting is re-read for everyone."""
    if o.m.is_group:
        return _group_recheck(p, o, start, end)
    c = _checker(o)
    if isinstance(c, ActionResult):
        return c
    try:
        busy = _slot_busy(p, o, c, start, end)
    except ConfigurationError:
        return _result(Outcome.CONFLICT, "Your calendar is not connected; connect it first.", o.m)
    except ConnectorError:
        message = "The calendars could not be checked just now; try again in a few minutes."
        return _result(Outcome.CONFLICT, message, o.m)
    if not busy:
        return None
    return ActionResult(
        Outcome.SLOT_GONE,
        f"{when_text(start, o.zone)} is no longer free for both of you.",
        o.m.id,
        _still_free(p, o, c, skip),
    )


# -- the owner's decisions -------------------------------------------------------------------


def _approve_checked(p: Pipeline, o: _Open, actor: str) -> ActionResult:
    """Approve through :func:`decisions.approve` (pair withdrawal, move proposals)."""
    name = _who(o.policy, o.m)
    if decisions.approve(p, o.m.id, actor=actor):
        m = p.store.get_meeting(o.m.id) or o.m
        if o.m.replaces_id is not None:
            message = f"Approved: your meeting with {name} moves to {when_text(m.start, o.zone)}."
        else:
            message = (
                f"Approved: the invite to {name} for {when_text(m.start, o.zone)} goes out soon."
            )
        user = p.store.get_user(o.user.id)
        if user is not None and user.paused_at(p.clock.now()):
            message += " You paused goodwill: it is sent when the pause ends."
        return _result(Outcome.DONE, message, o.m)
    found = p.store.get_meeting(o.m.id) or o.m
    if o.m.replaces_id is not None and found.state == _S.CANCELLED:
        trail = p.store.audit_trail(o.m.id)
        if trail and trail[-1].detail.startswith("approved"):  # the move was tried, and failed
            return _result(Outcome.CONFLICT, "The meeting could not be moved; it stays.", o.m)
        return _result(Outcome.CONFLICT, "The meeting it would move is no longer booked.", o.m)
    return _result(Outcome.CONFLICT, decided_text(p, found, o.zone), o.m)


def approve(p: Pipeline, user_id: int, meeting_id: int, *, actor: str = "owner") -> ActionResult:
    """Approve one of this owner's proposals, after re-checking both calendars for the slot."""
    o = _open_proposal(p, user_id, meeting_id)
    if isinstance(o, ActionResult):
        return o
    gone = _recheck(p, o, o.m.start, o.m.end)
    return gone if gone is not None else _approve_checked(p, o, actor)


def decline(p: Pipeline, user_id: int, meeting_id: int, *, actor: str = "owner") -> ActionResult:
    o = _open_proposal(p, user_id, meeting_id)
    if isinstance(o, ActionResult):
        return o
    if decisions.decline(p, o.m.id, actor=actor):
        if o.m.is_group:
            return _result(Outcome.DONE, f"Declined: {group_headline(o.policy, o.m)}.", o.m)
        name = name_of(o.policy, o.m.stakeholder_email)
        return _result(Outcome.DONE, f"Declined: {name} is not proposed again for a week.", o.m)
    found = p.store.get_meeting(o.m.id) or o.m
    return _result(Outcome.CONFLICT, decided_text(p, found, o.zone), o.m)


def choose_alternative(
    p: Pipeline, user_id: int, meeting_id: int, index: int, *, actor: str = "owner"
) -> ActionResult:
    """Move the proposal to alternative ``index`` and approve it there (calendars re-checked)."""
    o = _open_proposal(p, user_id, meeting_id)
    if isinstance(o, ActionResult):
        return o
    if not 0 <= index < len(o.m.alternatives):
        return ActionResult(Outcome.NOT_FOUND, "This proposal has no such alternative.", o.m.id)
    start, end = o.m.alternatives[index]
    gone = _recheck(p, o, start, end, skip=index)
    if gone is not None:
        return gone
    now = p.clock.now()
    if not p.store.reschedule(o.m.id, start, end, now=now, actor=actor, why="another time chosen"):
        found = p.store.get_meeting(o.m.id) or o.m
        return _result(Outcome.CONFLICT, decided_text(p, found, o.zone), o.m)
    moved = p.store.get_meeting(o.m.id) or o.m
    return _approve_checked(p, _Open(o.user, moved, o.policy, o.zone), actor)


def snooze(
    p: Pipeline, user_id: int, stakeholder_email: str, weeks: int, *, actor: str = "owner"
) -> ActionResult:
    """Propose nothing to this stakeholder for ``weeks`` (2, 4 or 8); open proposals to them are
    declined.

    Raises:
        ValueError: ``weeks`` is not 2, 4 or 8 (the page and the CLI offer only those).
    """
    if weeks not in SNOOZE_WEEKS:
        raise ValueError(f"a snooze lasts 2, 4 or 8 weeks, not {weeks}")
    user = p.store.get_user(user_id)
    if user is None:
        return ActionResult(Outcome.NOT_FOUND, "There is no such owner.")
    policy, email = read_policy(p, user), stakeholder_email.strip().lower()
    if policy is None or policy.stakeholder(email) is None:
        return ActionResult(Outcome.NOT_FOUND, f"{email} is not in your policy.")
    now = p.clock.now()
    for m in decisions.pending_proposals(p, user_id=user_id):
        if m.stakeholder_email == email:
            decisions.decline(p, m.id, actor=actor)
    until = now + timedelta(weeks=weeks)
    status = p.store.get_stakeholder_status(user_id, email)
    p.store.save_stakeholder_status(with_status(status, paused_until=until, paused_reason=SNOOZED))
    p.store.record_event(
        now=now, actor=actor, user_id=user_id, detail=f"snoozed {email} for {weeks} weeks"
    )
    day = day_text(until, zone_of(policy))
    message = f"{name_of(policy, email)} is snoozed until {day}: nothing is proposed to them."
    return ActionResult(Outcome.DONE, message)


# -- cancelling ------------------------------------------------------------------------------

#: The audit detail of a meeting the owner cancelled.
CANCELLED_BY_OWNER = "cancelled by the owner"


def cancel(p: Pipeline, user_id: int, meeting_id: int, *, actor: str = "owner") -> ActionResult:
    """Cancel one meeting: its provider event (and so the invite) by its key, then the row."""
    m = meeting_for_owner(p, user_id, meeting_id)
    user = p.store.get_user(user_id)
    if m is None or user is None:
        return _not_found(meeting_id)
    now, policy = p.clock.now(), read_policy(p, user)
    refused = refuse_cancel(m, now)
    if refused is not None:
        return _result(Outcome.CONFLICT, refused, m)
    at_provider = m.state in AT_PROVIDER or m.create_attempted_at is not None
    if at_provider and not cancel_at_provider(p, user, m, now, why=CANCELLED_BY_OWNER, actor=actor):
        message = "The calendar could not be reached to cancel it; try again in a few minutes."
        return _result(Outcome.CONFLICT, message, m)
    if not p.store.transition(
        m.id, _S.CANCELLED, actor=actor, now=now, expect=m.state, detail=CANCELLED_BY_OWNER
    ):
        found = p.store.get_meeting(m.id) or m
        refused = refuse_cancel(found, now) or "This meeting changed meanwhile; look again."
        return _result(Outcome.CONFLICT, refused, m)
    name, zone = _who(policy, m), zone_of(policy)
    message = f"Cancelled: {name}, {when_text(m.start, zone)}."
    if at_provider:
        message += " They get the calendar's cancellation."
    return _result(Outcome.DONE, message, m)


def to_cancel(p: Pipeline, user_id: int) -> list[Meeting]:
    """What ``cancel_all`` would cancel now: every open meeting of this owner still ahead."""
    now = p.clock.now()
    return [m for m in p.store.open_meetings(user_id) if m.state in CANCELLABLE and m.start > now]


def cancel_all(
    p: Pipeline, user_id: int, *, actor: str = "owner", booked_only: bool = False
) -> list[ActionResult]:
    """Cancel what :func:`to_cancel` lists; ``booked_only``: only what was booked or is about
    to be (approved, booked, accepted, tentative), proposals stay."""
    return [
        cancel(p, user_id, m.id, actor=actor)
        for m in to_cancel(p, user_id)
        if not booked_only or m.state in _BOOKED_AHEAD
    ]


# -- pausing ---------------------------------------------------------------------------------


def pause(
    p: Pipeline,
    user_id: int,
    until: date,
    *,
    cancel_booked: bool = False,
    actor: str = "owner",
) -> ActionResult:
    """Nothing new is proposed or booked for this owner until ``until`` (in the owner's zone,
    inclusive); booked meetings stay unless ``cancel_booked`` (then what was booked or approved
    is cancelled; proposals stay, waiting)."""
    user = p.store.get_user(user_id)
    if user is None:
        return ActionResult(Outcome.NOT_FOUND, "There is no such owner.")
    policy = read_policy(p, user)
    zone = policy.owner.timezone if policy is not None else "UTC"
    now, ends = p.clock.now(), pause_end(until, zone)
    if ends <= now:
        return ActionResult(Outcome.CONFLICT, "That day is over already: pick today or later.")
    p.store.set_owner_pause(user_id, ends, now=now)
    text = paused_until_text(ends, zone).split(":", 1)[0]
    message = text[0].upper() + text[1:]
    message += ": nothing new is proposed or booked."
    if not cancel_booked:
        return ActionResult(Outcome.DONE, message + " Booked meetings stay.")
    results = cancel_all(p, user_id, actor=actor, booked_only=True)
    done = sum(r.outcome == Outcome.DONE for r in results)
    message += f" {done} booked meeting{'s' if done != 1 else ''} cancelled."
    if done < len(results):
        message += f" {len(results) - done} could not be cancelled yet; try again shortly."
    message += " Proposals stay and wait for you; none is booked while paused."
    return ActionResult(Outcome.DONE, message)


def resume(p: Pipeline, user_id: int, *, actor: str = "owner") -> ActionResult:
    user = p.store.get_user(user_id)
    if user is None:
        return ActionResult(Outcome.NOT_FOUND, "There is no such owner.")
    now = p.clock.now()
    if not user.paused_at(now):
        return ActionResult(Outcome.DONE, "goodwill was not paused.")
    p.store.set_owner_pause(user_id, None, now=now)
    p.store.set_next_plan(user_id, now)
    return ActionResult(Outcome.DONE, "Resumed: planning and booking start again now.")


# -- the page --------------------------------------------------------------------------------


def owner_view(p: Pipeline, user_id: int) -> OwnerView | None:
    """The main page's data for this owner (None: no such user)."""
    return build_owner_view(p, user_id)
