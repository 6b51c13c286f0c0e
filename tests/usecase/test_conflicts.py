"""Conflict watch and rescheduling, as use cases (fake calendar; fake, SQLite and PostgreSQL).

A booked coffee that a new busy event overlaps is moved (auto), proposed again (ask) or only
flagged (notify, or close to the start); the same provider event is moved, never cancelled and
re-created, and a move that cannot happen leaves the original in place.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

from scheduler.app import conflicts, decisions, responses
from scheduler.app.booking import BookOutcome
from scheduler.core.errors import ProviderUnavailable
from scheduler.core.model import AttendeeStatus
from scheduler.core.states import MeetingState as S
from tests.concurrency import run_together
from tests.usecase.world import ALEX, JO, KIM, NOW, SAM, World, alex_policy

#: Wednesday 10:00 London (UTC in March), inside Alex's preferred window.
SLOT = datetime(2027, 3, 3, 10, 0, tzinfo=NOW.tzinfo)


def _booked(world: World, stakeholder: str = KIM, start: datetime = SLOT) -> int:
    world.register()
    mid = world.add_meeting(ALEX, stakeholder, start)
    assert world.book(mid).outcome == BookOutcome.BOOKED
    return mid


def _watch(world: World) -> int:
    policy = world.policy()
    return conflicts.watch_conflicts(world.p, world.user_id(), policy, world.calendar.backend())


def _trail(world: World, mid: int) -> list[str]:
    return [e.detail for e in world.store.audit_trail(mid)]


def test_auto_moves_the_same_event_once_and_creates_nothing(world: World) -> None:
    mid = _booked(world)
    creates = world.calendar.calls["create_event"]
    # Given Kim's calendar now has a busy event over the coffee
    world.calendar.add_busy(KIM, SLOT - timedelta(minutes=15), SLOT + timedelta(minutes=45))
    # When the sync pass watches for conflicts
    assert _watch(world) == 1
    # Then the same event moved (one move, no create, no cancel) to a free slot
    m = world.meeting(mid)
    assert m.state == S.BOOKED
    assert m.start != SLOT
    assert m.conflict_at is None
    assert world.calendar.calls["move_event"] == 1
    assert world.calendar.calls["create_event"] == creates
    assert world.calendar.calls["cancel_event"] == 0
    (event,) = world.calendar.events(attendee=KIM)
    assert (event.start, event.end) == (m.start, m.end)
    assert event.sequence == 1
    assert any(d.startswith(conflicts.MOVED_CONFLICT) for d in _trail(world, mid))
    # A second pass finds nothing more to do
    assert _watch(world) == 0
    assert world.calendar.calls["move_event"] == 1


def test_our_own_event_is_never_a_conflict(world: World) -> None:
    _booked(world)
    assert _watch(world) == 0
    assert world.calendar.calls["move_event"] == 0


def test_a_conflict_on_the_owners_calendar_moves_it_too(world: World) -> None:
    mid = _booked(world)
    world.calendar.add_busy(ALEX, SLOT, SLOT + timedelta(hours=1))
    assert _watch(world) == 1
    assert world.meeting(mid).start != SLOT


def test_ask_proposes_a_linked_new_time_and_approving_moves_the_event(world: World) -> None:
    # Sam is senior: his coffee is not moved without asking
    mid = _booked(world, SAM, SLOT + timedelta(hours=4))
    original = world.meeting(mid)
    world.calendar.add_busy(SAM, original.start, original.end + timedelta(minutes=30))
    assert _watch(world) == 1
    # The original stands, flagged; a proposal linked to it waits for Alex
    assert world.meeting(mid).start == original.start
    assert world.meeting(mid).conflict_at is not None
    (proposal,) = [m for m in world.store.open_meetings(world.user_id()) if m.replaces_id == mid]
    assert proposal.state == S.PROPOSED
    assert world.calendar.calls["move_event"] == 0
    assert any(d.startswith(conflicts.CONFLICT_ASKED) for d in _trail(world, mid))
    # Watching again makes no second proposal
    _watch(world)
    assert [m.id for m in world.store.open_meetings(world.user_id()) if m.replaces_id] == [
        proposal.id
    ]
    # When Alex approves it, the same event moves to the proposal's time; nothing is created
    creates = world.calendar.calls["create_event"]
    assert decisions.approve(world.p, proposal.id)
    moved = world.meeting(mid)
    assert (moved.start, moved.end) == (proposal.start, proposal.end)
    assert moved.conflict_at is None
    assert world.meeting(proposal.id).state == S.CANCELLED
    assert world.calendar.calls["move_event"] == 1
    assert world.calendar.calls["create_event"] == creates
    assert world.store.approved_needing_send(world.clock.now(), 10) == []


def test_two_approvals_of_one_move_proposal_move_the_event_once(world: World) -> None:
    mid = _booked(world, SAM, SLOT + timedelta(hours=4))
    original = world.meeting(mid)
    world.calendar.add_busy(SAM, original.start, original.end + timedelta(minutes=30))
    assert _watch(world) == 1
    (proposal,) = [m for m in world.store.open_meetings(world.user_id()) if m.replaces_id == mid]
    results: list[bool] = []
    lock = threading.Lock()

    def work(i: int, barrier: threading.Barrier) -> None:
        barrier.wait()
        ok = decisions.approve(world.p, proposal.id)
        with lock:
            results.append(ok)

    run_together(3, work)
    assert sorted(results) == [False, False, True]
    assert world.calendar.calls["move_event"] == 1
    assert (world.meeting(mid).start, world.meeting(mid).end) == (proposal.start, proposal.end)


def test_within_not_within_of_the_start_only_notifies(world: World) -> None:
    mid = _booked(world)
    world.advance_past(SLOT - timedelta(hours=10))  # 10 h before: inside the default 20 h
    world.calendar.add_busy(KIM, SLOT, SLOT + timedelta(hours=1))
    assert _watch(world) == 1
    m = world.meeting(mid)
    assert m.start == SLOT
    assert m.conflict_at is not None
    assert world.calendar.calls["move_event"] == 0
    assert any(d.startswith(conflicts.CONFLICT_NOTIFY) for d in _trail(world, mid))
    # Flagged once, not on every pass
    assert _watch(world) == 0


def test_notify_mode_never_moves(world: World) -> None:
    world.write_policy(ALEX, alex_policy(extra="reschedule: {mode: notify}\n"))
    mid = _booked(world)
    world.calendar.add_busy(KIM, SLOT, SLOT + timedelta(hours=1))
    assert _watch(world) == 1
    assert world.meeting(mid).start == SLOT
    assert world.calendar.calls["move_event"] == 0


def test_no_free_slot_leaves_the_original_and_flags_it(world: World) -> None:
    mid = _booked(world)
    # Kim is busy for the whole horizon
    world.calendar.add_busy(KIM, NOW, NOW + timedelta(days=30))
    assert _watch(world) == 1
    m = world.meeting(mid)
    assert (m.start, m.state) == (SLOT, S.BOOKED)
    assert m.conflict_at is not None
    assert world.calendar.calls["move_event"] == 0
    assert world.calendar.events(attendee=KIM)[0].start == SLOT


def test_a_move_that_fails_leaves_exactly_one_event_at_the_old_time(world: World) -> None:
    mid = _booked(world)
    world.calendar.add_busy(KIM, SLOT, SLOT + timedelta(hours=1))
    # (a transient failure is tried once more at once: both fail here)
    world.calendar.fail_next("move_event", ProviderUnavailable("503", provider="fake"), times=2)
    assert _watch(world) == 1
    m = world.meeting(mid)
    assert m.start == SLOT
    assert m.conflict_at is not None
    (event,) = world.calendar.events(attendee=KIM)
    assert event.start == SLOT


def test_a_move_the_store_did_not_record_is_followed_by_the_next_sync(world: World) -> None:
    """Killed between the provider's move and the store: the event is at the new time, once,
    and following the answers brings the meeting there (the same path as any provider move)."""
    mid = _booked(world)
    m = world.meeting(mid)
    assert m.provider_event_id is not None
    new_start = SLOT + timedelta(days=1)
    world.calendar.move(m.provider_event_id, new_start, new_start + timedelta(minutes=30))
    responses.sync_responses(world.p, world.user_id())
    assert world.meeting(mid).start == new_start
    assert len(world.calendar.events(attendee=KIM)) == 1


def test_a_decline_while_conflicted_does_not_back_the_cadence_off(world: World) -> None:
    world.write_policy(ALEX, alex_policy(extra="reschedule: {mode: notify}\n"))
    mid = _booked(world)
    world.calendar.add_busy(KIM, SLOT, SLOT + timedelta(hours=1))
    _watch(world)
    m = world.meeting(mid)
    assert m.provider_event_id is not None
    world.calendar.respond(m.provider_event_id, AttendeeStatus.DECLINED)
    responses.sync_responses(world.p, world.user_id())
    assert world.meeting(mid).state == S.DECLINED
    status = world.store.get_stakeholder_status(world.user_id(), KIM)
    assert status.backoff_until is None
    # While a decline without a conflict does back off
    other = _booked(world, JO, SLOT + timedelta(days=2))
    om = world.meeting(other)
    assert om.provider_event_id is not None
    world.calendar.respond(om.provider_event_id, AttendeeStatus.DECLINED)
    responses.sync_responses(world.p, world.user_id())
    assert world.store.get_stakeholder_status(world.user_id(), JO).backoff_until is not None


def test_a_conflict_that_goes_away_is_cleared(world: World) -> None:
    world.write_policy(ALEX, alex_policy(extra="reschedule: {mode: notify}\n"))
    mid = _booked(world)
    world.calendar.add_busy(KIM, SLOT, SLOT + timedelta(hours=1))
    _watch(world)
    assert world.meeting(mid).conflict_at is not None
    world.calendar._busy.clear()  # the other event was deleted
    assert _watch(world) == 1
    assert world.meeting(mid).conflict_at is None


def test_the_sync_pass_follows_answers_then_watches(world: World) -> None:
    mid = _booked(world)
    world.calendar.add_busy(KIM, SLOT, SLOT + timedelta(hours=1))
    assert conflicts.sync_pass(world.p, world.user_id()) >= 1
    assert world.meeting(mid).start != SLOT
    # One batched busy read for the watch (plus the new-slot read for the move)
    assert world.calendar.calls["busy"] >= 2


def test_a_counter_proposal_that_fits_becomes_a_proposal_that_moves_the_event(
    world: World,
) -> None:
    mid = _booked(world)
    m = world.meeting(mid)
    assert m.provider_event_id is not None
    # Kim proposes Thursday 14:00 instead (inside Alex's hours, Alex is free)
    new = datetime(2027, 3, 4, 14, 0, tzinfo=NOW.tzinfo)
    world.calendar.propose(m.provider_event_id, new, new + timedelta(minutes=30))
    assert conflicts.sync_pass(world.p, world.user_id()) >= 1
    (proposal,) = [x for x in world.store.open_meetings(world.user_id()) if x.replaces_id == mid]
    assert (proposal.state, proposal.start) == (S.PROPOSED, new)
    assert proposal.reason.startswith(conflicts.COUNTER_ASKED)
    # Not proposed twice
    conflicts.sync_pass(world.p, world.user_id())
    assert len([x for x in world.store.open_meetings(world.user_id()) if x.replaces_id]) == 1
    # Approving moves the same event there
    assert decisions.approve(world.p, proposal.id)
    assert world.meeting(mid).start == new
    (event,) = world.calendar.events(attendee=KIM)
    assert event.start == new


def test_a_counter_proposal_outside_the_owners_rules_is_reported_not_proposed(
    world: World,
) -> None:
    mid = _booked(world)
    m = world.meeting(mid)
    assert m.provider_event_id is not None
    late = datetime(2027, 3, 4, 19, 0, tzinfo=NOW.tzinfo)  # 19:00 London: after hours
    world.calendar.propose(m.provider_event_id, late, late + timedelta(minutes=30))
    conflicts.sync_pass(world.p, world.user_id())
    conflicts.sync_pass(world.p, world.user_id())
    assert not [x for x in world.store.open_meetings(world.user_id()) if x.replaces_id]
    notes = [d for d in _trail(world, mid) if d.startswith(conflicts.COUNTER_MISFIT)]
    assert len(notes) == 1
    assert "outside your working hours" in notes[0]


def test_the_report_lists_moves_and_conflicts_waiting_for_the_owner(world: World) -> None:
    moved = _booked(world)
    asked = _booked(world, SAM, SLOT + timedelta(hours=4))
    world.calendar.add_busy(KIM, SLOT, SLOT + timedelta(hours=1))
    sam_start = world.meeting(asked).start
    world.calendar.add_busy(SAM, sam_start, sam_start + timedelta(hours=1))
    _watch(world)
    lines = {(c.meeting_id, c.note) for c in conflicts.conflict_lines(world.p, world.user_id())}
    assert (moved, conflicts.MOVED_CONFLICT) in lines
    assert (asked, conflicts.CONFLICT_ASKED) in lines
    assert all("@" not in note for _, note in lines)
