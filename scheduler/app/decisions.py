"""The owner's decisions on proposals, and the housekeeping around them.

approve / decline a proposal, list what waits, expire what was not approved in time. Each is a
compare-and-set on the meeting's state: deciding twice, or on a proposal that expired meanwhile,
changes nothing and says so (False).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from scheduler.app.booking import other_side_meeting
from scheduler.app.conflicts import apply_move
from scheduler.app.groups import group_backoff_key
from scheduler.app.pipeline import Pipeline, policy_for, with_status
from scheduler.app.records import Meeting
from scheduler.core.policy import Policy
from scheduler.core.states import MeetingState

__all__ = [
    "WITHDRAWN_PAIR",
    "approve",
    "decline",
    "expire_due_proposals",
    "expire_proposals",
    "pending_proposals",
    "withdraw_covered_proposals",
]

_S = MeetingState
#: After the owner declines a proposal, that stakeholder is not proposed again for this long.
DECLINE_BACKOFF = timedelta(days=7)
#: Minimum notice assumed when the owner's policy is not at hand.
_DEFAULT_NOTICE = timedelta(hours=2)


#: Audit detail of a proposal withdrawn because the other side of the pair booked first.
WITHDRAWN_PAIR = "withdrawn: the stakeholder's side booked a meeting with you first"


def approve(p: Pipeline, meeting_id: int, *, actor: str = "user") -> bool:
    """The owner approves a proposal; the tick sends it for booking.

    A proposal whose pair the stakeholder's own side already booked (both use goodwill and list
    each other) is withdrawn instead, and False returned: their meeting is the pair's coffee.
    A proposal made after a conflict (``replaces_id``) moves its meeting's event instead.
    """
    m = p.store.get_meeting(meeting_id)
    if m is None:
        return False
    owner = p.store.get_user(m.user_id)
    if m.state == _S.PROPOSED and m.replaces_id is not None:
        policy = policy_for(p, owner)
        return policy is not None and apply_move(p, m, policy)
    if (
        m.state == _S.PROPOSED
        and owner is not None
        and other_side_meeting(p, owner.email, m) is not None
    ):
        p.store.transition(
            meeting_id, _S.CANCELLED, actor=actor, now=p.clock.now(), expect=_S.PROPOSED,
            detail=WITHDRAWN_PAIR,
        )  # fmt: skip
        return False
    return p.store.transition(
        meeting_id,
        _S.APPROVED,
        actor=actor,
        now=p.clock.now(),
        expect=_S.PROPOSED,
        detail="approved",
    )


def withdraw_covered_proposals(p: Pipeline, user_id: int, *, actor: str = "planner") -> int:
    """Withdraw this owner's pending proposals whose pair the stakeholder's own side already
    booked (what :func:`approve` and the next planning round would do); how many were."""
    owner = p.store.get_user(user_id)
    if owner is None:
        return 0
    known = p.store.open_meetings_as_stakeholder(owner.email)
    withdrawn = 0
    for m in p.store.open_meetings(user_id):
        if m.state == _S.PROPOSED and other_side_meeting(p, owner.email, m, known=known):
            withdrawn += p.store.transition(
                m.id, _S.CANCELLED, actor=actor, now=p.clock.now(), expect=_S.PROPOSED,
                detail=WITHDRAWN_PAIR,
            )  # fmt: skip
    return withdrawn


def decline(p: Pipeline, meeting_id: int, *, actor: str = "user") -> bool:
    """The owner declines a proposal; that stakeholder (for a group meeting: that group, not
    its attendees) is not proposed again for a week."""
    now = p.clock.now()
    m = p.store.get_meeting(meeting_id)
    if m is None:
        return False
    if not p.store.transition(
        meeting_id,
        _S.CANCELLED,
        actor=actor,
        now=now,
        expect=_S.PROPOSED,
        detail="declined by the owner",
    ):
        return False
    # A group is backed off as a whole (its attendees are not): not proposed again before.
    key = group_backoff_key(m.group_name or "") if m.is_group else m.stakeholder_email
    status = p.store.get_stakeholder_status(m.user_id, key)
    p.store.save_stakeholder_status(with_status(status, backoff_until=now + DECLINE_BACKOFF))
    return True


def expire_due_proposals(p: Pipeline, *, limit: int) -> int:
    """The tick's :func:`expire_proposals` for everyone: reads only the proposals whose slot is
    within half the default notice (by the ``(state, start)`` index), at most ``limit``."""
    now = p.clock.now()
    expired = 0
    for m in p.store.proposals_starting_before(now + _DEFAULT_NOTICE / 2, limit):
        if m.start - _DEFAULT_NOTICE / 2 <= now and p.store.transition(
            m.id, _S.EXPIRED, actor="tick", now=now, expect=_S.PROPOSED,
            detail="not approved in time",
        ):  # fmt: skip
            expired += 1
    return expired


def pending_proposals(p: Pipeline, *, user_id: int | None = None) -> list[Meeting]:
    """Proposals waiting for the owner's approval (one user's, or everyone's), oldest first.

    One user's are read by user (an indexed query), not filtered out of everyone's: a planning
    round must not cost more as the organisation grows.
    """
    if user_id is None:
        return p.store.meetings_by_state(_S.PROPOSED)
    mine = [m for m in p.store.open_meetings(user_id) if m.state == _S.PROPOSED]
    return sorted(mine, key=lambda m: m.id)


def expire_proposals(
    p: Pipeline,
    *,
    user_id: int | None = None,
    policy: Policy | None = None,
    pending: Sequence[Meeting] | None = None,
) -> int:
    """Expire proposals not approved in time: half the minimum notice before the slot starts.

    ``pending``: the user's proposals, already read (each expiry is a compare-and-set, so a
    proposal decided meanwhile is left alone).
    """
    now = p.clock.now()
    notice = policy.availability.min_notice if policy else _DEFAULT_NOTICE
    expired = 0
    if pending is None:
        pending = pending_proposals(p, user_id=user_id)
    for m in pending:
        if m.start - notice / 2 <= now and p.store.transition(
            m.id,
            _S.EXPIRED,
            actor="tick",
            now=now,
            expect=_S.PROPOSED,
            detail="not approved in time",
        ):
            expired += 1
    return expired
