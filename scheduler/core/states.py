"""The meeting state machine: which state may follow which, and nothing else (pure).

::

    proposed ──► approved ──► booking ──► booked ──► accepted / tentative / declined ──► completed
        │            │  ▲         │          │
        │            │  └─────────┤ transient failure or lease expiry: back to approved (retry)
        ▼            ▼            ▼          ▼
    expired / cancelled / failed  (terminal)

Slot taken while booking: the re-check finds the slot busy, so the meeting goes
``booking -> cancelled`` (detail ``slot_taken``). We end the row instead of moving it back to
``proposed`` because a proposal names a concrete slot that no longer exists; the stakeholder is
still due (no contact was recorded), so the next planning round proposes a fresh slot with a fresh
idempotency key. That keeps one row = one slot = one provider event, which is what makes the
idempotency key safe.

An attendee may change their mind after answering: ``declined -> accepted`` and
``accepted -> tentative/declined`` are legal. ``completed``, ``expired``, ``failed`` and
``cancelled`` are terminal.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from scheduler.core.errors import IllegalTransition

__all__ = [
    "FOLLOWED_STATES",
    "INITIAL_STATES",
    "OPEN_STATES",
    "TERMINAL_STATES",
    "IllegalTransition",
    "MeetingState",
    "allowed_targets",
    "is_terminal",
    "transition",
]


class MeetingState(StrEnum):
    """Where one proposed one-to-one is in its life. Values are stored in the database."""

    PROPOSED = "proposed"  # written by the planner; waits for approval in "propose" mode
    APPROVED = "approved"  # may be booked; the tick sends book_meeting(id)
    BOOKING = "booking"  # a worker holds a lease and is talking to the provider
    BOOKED = "booked"  # the provider created the event and sent the invite
    ACCEPTED = "accepted"
    DECLINED = "declined"
    TENTATIVE = "tentative"
    CANCELLED = "cancelled"  # by the owner, the attendee, or because the slot was taken
    COMPLETED = "completed"  # the end time passed with the meeting still on; counts as contact
    EXPIRED = "expired"  # never approved/booked before its slot (or approval window) passed
    FAILED = "failed"  # a permanent error; a human must look


_S = MeetingState

_LEGAL: Mapping[MeetingState, frozenset[MeetingState]] = {
    _S.PROPOSED: frozenset({_S.APPROVED, _S.EXPIRED, _S.CANCELLED, _S.FAILED}),
    _S.APPROVED: frozenset({_S.BOOKING, _S.CANCELLED, _S.EXPIRED, _S.FAILED}),
    # -> approved: transient failure or an expired lease, retried later (next_attempt_at).
    # -> cancelled: the slot was taken meanwhile (see the module docstring).
    _S.BOOKING: frozenset({_S.BOOKED, _S.APPROVED, _S.FAILED, _S.CANCELLED}),
    _S.BOOKED: frozenset({_S.ACCEPTED, _S.DECLINED, _S.TENTATIVE, _S.CANCELLED, _S.COMPLETED}),
    _S.TENTATIVE: frozenset({_S.ACCEPTED, _S.DECLINED, _S.CANCELLED, _S.COMPLETED}),
    _S.ACCEPTED: frozenset({_S.DECLINED, _S.CANCELLED, _S.COMPLETED, _S.TENTATIVE}),
    _S.DECLINED: frozenset({_S.ACCEPTED, _S.CANCELLED}),
    _S.COMPLETED: frozenset(),
    _S.EXPIRED: frozenset(),
    _S.FAILED: frozenset(),
    _S.CANCELLED: frozenset(),
}

#: States a meeting row may be created in (``approved`` directly for auto-booking tiers).
INITIAL_STATES: frozenset[MeetingState] = frozenset({_S.PROPOSED, _S.APPROVED})

#: No transition leaves these.
TERMINAL_STATES: frozenset[MeetingState] = frozenset(s for s, nxt in _LEGAL.items() if not nxt)

#: Meetings that are still "on" and count against per-stakeholder and per-week caps.
OPEN_STATES: frozenset[MeetingState] = frozenset(
    {_S.PROPOSED, _S.APPROVED, _S.BOOKING, _S.BOOKED, _S.ACCEPTED, _S.TENTATIVE}
)
#: States whose invite is out and whose answer is followed (the sync pass, the tick's pace).
FOLLOWED_STATES: tuple[MeetingState, ...] = (_S.BOOKED, _S.ACCEPTED, _S.TENTATIVE, _S.DECLINED)


def allowed_targets(current: MeetingState) -> frozenset[MeetingState]:
    """The states that may follow ``current``.

    >>> sorted(state.value for state in allowed_targets(MeetingState.DECLINED))
    ['accepted', 'cancelled']
    """
    return _LEGAL[MeetingState(current)]


def is_terminal(state: MeetingState) -> bool:
    """True when no transition leaves ``state``.

    >>> is_terminal(MeetingState.COMPLETED), is_terminal(MeetingState.BOOKED)
    (True, False)
    """
    return MeetingState(state) in TERMINAL_STATES


def transition(current: MeetingState, target: MeetingState) -> MeetingState:
    """Check one state change and return the new state.

    Args:
        current: the meeting's state now.
        target: the requested state.

    Returns:
        ``target``, as a :class:`MeetingState`.

    Raises:
        IllegalTransition: the machine does not allow ``current -> target`` (staying in the
            same state is not a transition either).
        ValueError: either value is not a meeting state.

    >>> transition(MeetingState.APPROVED, MeetingState.BOOKING)
    <MeetingState.BOOKING: 'booking'>
    """
    current, target = MeetingState(current), MeetingState(target)
    if target not in _LEGAL[current]:
        raise IllegalTransition(current, target, _LEGAL[current])
    return target
