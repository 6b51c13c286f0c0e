"""A removed owner's meetings: cancelled at the provider (so the stakeholder gets the provider's
cancellation), then ended with detail :data:`OWNER_REMOVED`. Re-exported by
:mod:`scheduler.app.registration` (and :mod:`scheduler.app.planning`).
"""

from __future__ import annotations

import logging
from datetime import datetime

from scheduler.app.pipeline import Pipeline, revoke
from scheduler.app.records import Meeting, User
from scheduler.core.errors import (
    AuthorizationRevoked,
    ConfigurationError,
    ConnectorError,
    ResourceGone,
)
from scheduler.core.policy import Policy
from scheduler.core.ports import CalendarBackend
from scheduler.core.states import MeetingState

__all__ = ["AT_PROVIDER", "OWNER_REMOVED", "cancel_at_provider", "cancel_removed_owner_meetings"]

log = logging.getLogger("goodwill.booking")

_S = MeetingState
#: The detail of a meeting cancelled because its owner's policy file was removed.
OWNER_REMOVED = "owner removed"

#: Meetings whose event is on the provider's calendar.
AT_PROVIDER = frozenset({_S.BOOKED, _S.ACCEPTED, _S.TENTATIVE})


def cancel_removed_owner_meetings(p: Pipeline, user: User, now: datetime) -> int:
    """Cancel the open future meetings of an owner whose policy file was removed.

    Proposed and approved meetings are cancelled; booked, accepted and tentative ones are first
    cancelled at the provider through the owner's writer (``cancel_event`` with the meeting's
    event id, or ``cancel_by_key`` when a create was attempted but its id never came back), so
    the stakeholder gets the provider's cancellation. Each meeting ends with detail
    ``owner removed``. The writer is built from the last good policy this process holds, else
    (a fresh process) from the owner's e-mail and the provider stored on the meeting.

    Returns:
        How many are left for a later round: being booked right now, or the provider failed.
    """
    left = 0
    for m in p.store.open_meetings(user.id):
        if m.start <= now:
            continue  # already under way (or past): it completes, or is followed as usual
        if m.state == _S.BOOKING and m.lease_until is not None and m.lease_until > now:
            left += 1  # a worker holds it; it lands in booked or approved, then is cancelled
            continue
        try:
            at_provider = m.state in AT_PROVIDER or m.create_attempted_at is not None
            if at_provider and not cancel_at_provider(p, user, m, now, why=OWNER_REMOVED):
                left += 1
                continue
            if not p.store.transition(
                m.id, _S.CANCELLED, actor="planner", now=now, expect=m.state,
                detail=OWNER_REMOVED,
            ):  # fmt: skip
                left += 1  # it changed meanwhile: the next round looks again
        except Exception:  # one meeting never stops the others
            log.exception("meeting %s: cancelling for a removed owner failed", m.id)
            left += 1
    return left


def _owner_backend(p: Pipeline, user: User, provider: str) -> tuple[Policy, CalendarBackend]:
    """The writer's policy and backend for an event at ``provider``: the last good policy held
    in memory when its backend is that provider, else a stand-in with what the writer needs.
    Raises ConfigurationError or ValueError."""
    try:
        policy = p.policies.load(user.policy_path).policy
    except Exception:  # the path now holds something the loader cannot take
        policy = None
    if policy is not None and policy.calendar.provider == provider:
        return policy, p.backends(policy)
    if policy is not None:
        backend = p.backends(policy)
        if backend.provider == provider:
            return policy, backend
    name = user.email.split("@", 1)[0]
    stand_in = Policy.model_validate(
        {
            "owner": {"email": user.email, "name": name, "timezone": "UTC"},
            "calendar": {"provider": provider},
        }
    )
    return stand_in, p.backends(stand_in)


def cancel_at_provider(
    p: Pipeline, user: User, m: Meeting, now: datetime, *, why: str, actor: str = "planner"
) -> bool:
    """Take the meeting's event back at the provider, so the stakeholder gets the provider's
    cancellation: ``cancel_event`` with its event id, else ``cancel_by_key`` (a create was
    attempted but its id never came back). An event already gone counts as done.

    Problems are audited on the meeting, prefixed with ``why``. False: the calendar could not
    be reached (not configured, revoked, a transient failure): try again later.
    """
    try:
        policy, backend = _owner_backend(p, user, m.provider)
    except (ConfigurationError, ValueError) as exc:
        p.store.record_event(
            now=now, actor=actor, user_id=user.id, meeting_id=m.id,
            detail=f"{why}: cannot reach the calendar to cancel: {exc}"[:1000],
        )  # fmt: skip
        return False
    writer = backend.writer
    if writer is None:
        return True  # a read-only calendar holds no event of ours
    organizer = policy.owner.person
    try:
        if m.provider_event_id:
            with p.provider_call(backend.provider, "cancel_event"):
                writer.cancel_event(organizer, m.provider_event_id)
        else:
            with p.provider_call(backend.provider, "cancel_by_key"):
                writer.cancel_by_key(organizer, m.idempotency_key)
    except AuthorizationRevoked as exc:
        revoke(p, user.email, backend.provider, str(exc), now)
        p.store.record_event(
            now=now, actor=actor, user_id=user.id, meeting_id=m.id,
            detail=f"{why}: credential revoked, the event is cancelled once the "
            "calendar is reconnected",
        )  # fmt: skip
        return False
    except ResourceGone:
        pass  # already gone at the provider: done
    except ConnectorError as exc:
        if exc.transient:
            return False
        p.store.record_event(
            now=now, actor=actor, user_id=user.id, meeting_id=m.id,
            detail=f"{why}: the provider refused the cancel ({type(exc).__name__}); "
            "the event may still be on the calendars: remove it by hand",
        )  # fmt: skip
    return True
