"""The meeting state machine: the whole transition matrix, written out independently of the code."""

from __future__ import annotations

import itertools

import pytest

from scheduler.core.errors import SchedulerError
from scheduler.core.states import (
    INITIAL_STATES,
    OPEN_STATES,
    TERMINAL_STATES,
    IllegalTransition,
    MeetingState,
    allowed_targets,
    is_terminal,
    transition,
)

S = MeetingState

# The brief's table, restated here so a change in states.py has to be made twice on purpose.
EXPECTED: dict[MeetingState, set[MeetingState]] = {
    S.PROPOSED: {S.APPROVED, S.EXPIRED, S.CANCELLED, S.FAILED},
    S.APPROVED: {S.BOOKING, S.CANCELLED, S.EXPIRED, S.FAILED},
    S.BOOKING: {S.BOOKED, S.APPROVED, S.FAILED, S.CANCELLED},
    S.BOOKED: {S.ACCEPTED, S.DECLINED, S.TENTATIVE, S.CANCELLED, S.COMPLETED},
    S.TENTATIVE: {S.ACCEPTED, S.DECLINED, S.CANCELLED, S.COMPLETED},
    S.ACCEPTED: {S.DECLINED, S.CANCELLED, S.COMPLETED, S.TENTATIVE},
    S.DECLINED: {S.ACCEPTED, S.CANCELLED},
    S.COMPLETED: set(),
    S.EXPIRED: set(),
    S.FAILED: set(),
    S.CANCELLED: set(),
}
LEGAL = [(a, b) for a, targets in EXPECTED.items() for b in sorted(targets)]
ILLEGAL = [(a, b) for a, b in itertools.product(S, S) if b not in EXPECTED[a]]


def test_the_eleven_states_have_their_stored_values() -> None:
    assert [s.value for s in S] == [
        "proposed", "approved", "booking", "booked", "accepted", "declined",
        "tentative", "cancelled", "completed", "expired", "failed",
    ]  # fmt: skip


@pytest.mark.parametrize(("current", "target"), LEGAL, ids=[f"{a}->{b}" for a, b in LEGAL])
def test_every_legal_transition_returns_the_target(current: S, target: S) -> None:
    assert transition(current, target) is target
    assert target in allowed_targets(current)


@pytest.mark.parametrize(("current", "target"), ILLEGAL, ids=[f"{a}->{b}" for a, b in ILLEGAL])
def test_every_other_pair_is_illegal(current: S, target: S) -> None:
    with pytest.raises(IllegalTransition) as caught:
        transition(current, target)
    assert (caught.value.current, caught.value.target) == (current, target)


def test_matrix_covers_every_pair() -> None:
    assert len(LEGAL) + len(ILLEGAL) == len(S) ** 2
    assert len(LEGAL) == sum(len(t) for t in EXPECTED.values()) == 27


def test_illegal_transition_message_names_both_states_and_the_way_out() -> None:
    with pytest.raises(IllegalTransition, match=r"from booked to proposed") as caught:
        transition(S.BOOKED, S.PROPOSED)
    assert "accepted, cancelled, completed, declined, tentative" in str(caught.value)
    with pytest.raises(IllegalTransition, match="terminal"):
        transition(S.COMPLETED, S.BOOKED)


def test_illegal_transition_is_a_scheduler_error() -> None:
    assert issubclass(IllegalTransition, SchedulerError)


def test_staying_put_is_not_a_transition() -> None:
    for state in S:
        with pytest.raises(IllegalTransition):
            transition(state, state)


def test_string_values_are_accepted_and_unknown_ones_rejected() -> None:
    assert transition("approved", "booking") is S.BOOKING  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="nonsense"):
        transition(S.PROPOSED, "nonsense")  # type: ignore[arg-type]


def test_terminal_states_are_exactly_those_without_exits() -> None:
    assert {s for s in S if is_terminal(s)} == {S.COMPLETED, S.EXPIRED, S.FAILED, S.CANCELLED}
    assert {S.COMPLETED, S.EXPIRED, S.FAILED, S.CANCELLED} == TERMINAL_STATES


def test_open_states_count_against_caps() -> None:
    assert {S.PROPOSED, S.APPROVED, S.BOOKING, S.BOOKED, S.ACCEPTED, S.TENTATIVE} == OPEN_STATES
    assert not OPEN_STATES & TERMINAL_STATES
    assert S.DECLINED not in OPEN_STATES


def test_meetings_are_created_proposed_or_approved() -> None:
    assert {S.PROPOSED, S.APPROVED} == INITIAL_STATES


def test_every_non_terminal_state_can_still_end() -> None:
    # Walk the graph: from every state some terminal state is reachable (no trap cycles).
    for start in S:
        seen, todo = {start}, [start]
        while todo:
            for nxt in allowed_targets(todo.pop()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        assert seen & TERMINAL_STATES, start
