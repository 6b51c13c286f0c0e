"""Conflict watch, pure: which booked coffees does a new busy event overlap?"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from scheduler.core.conflicts import WatchedMeeting, find_conflicts, without_our_event
from scheduler.core.model import AttendeeStatus, BusyBlock, BusyResult, BusyRules, ShowAs

T = datetime(2027, 3, 3, 10, 0, tzinfo=UTC)
M = WatchedMeeting(1, "alex@corp.example", "sam@corp.example", T, T + timedelta(minutes=30), "k1")
RULES = BusyRules()


def _block(start: datetime, minutes: int = 30, **kw: object) -> BusyBlock:
    return BusyBlock(start=start, end=start + timedelta(minutes=minutes), **kw)  # type: ignore[arg-type]


def test_our_own_event_never_counts_by_key_or_by_exact_slot() -> None:
    busy = BusyResult(
        blocks={
            "alex@corp.example": [_block(T, key="k1")],
            "sam@corp.example": [_block(T)],  # opaque free/busy: exactly the slot, no key
        }
    )
    assert find_conflicts([M], busy, RULES) == []


def test_a_new_event_overlapping_for_either_side_is_a_conflict() -> None:
    owner_side = BusyResult(
        blocks={"alex@corp.example": [_block(T, key="k1"), _block(T + timedelta(minutes=15))]}
    )
    (c,) = find_conflicts([M], owner_side, RULES)
    assert (c.side, c.busy.start) == ("owner", T + timedelta(minutes=15))
    # A stakeholder's busy time over part of the slot is a conflict too (ours is not in it)
    their_side = BusyResult(blocks={"sam@corp.example": [_block(T - timedelta(hours=1), 75)]})
    (c,) = find_conflicts([M], their_side, RULES)
    assert c.side == "stakeholder"


def test_events_that_are_free_under_the_busy_rules_do_not_conflict() -> None:
    busy = BusyResult(
        blocks={
            "alex@corp.example": [
                _block(T, show_as=ShowAs.FREE, key="other"),
                _block(T, response=AttendeeStatus.DECLINED, key="x"),
            ]
        }
    )
    assert find_conflicts([M], busy, RULES) == []


def test_another_goodwill_event_at_the_same_time_is_a_conflict() -> None:
    busy = BusyResult(blocks={"alex@corp.example": [_block(T, key="k2")]})
    (c,) = find_conflicts([M], busy, RULES)
    assert c.meeting.id == 1


def test_an_unreadable_calendar_is_unknown_and_never_a_conflict() -> None:
    busy = BusyResult(
        blocks={"alex@corp.example": []},
        unavailable={"sam@corp.example": "calendar unavailable: 403"},
    )
    assert find_conflicts([M], busy, RULES) == []


def test_merged_free_busy_with_a_meeting_right_after_ours_is_not_a_conflict() -> None:
    # Google freeBusy merges our coffee (10:00-10:30) with a meeting at 10:30-11:00
    busy = BusyResult(blocks={"sam@corp.example": [_block(T, 60)]})
    assert find_conflicts([M], busy, RULES) == []


def test_a_keyless_block_over_part_of_the_slot_is_a_conflict() -> None:
    # Our event is not in this busy time (it would have been merged in), so this overlaps it
    busy = BusyResult(blocks={"sam@corp.example": [_block(T + timedelta(minutes=20), 30)]})
    (c,) = find_conflicts([M], busy, RULES)
    assert c.side == "stakeholder"


def test_taking_our_event_out_of_merged_busy_keeps_the_meeting_next_to_it() -> None:
    merged = _block(T - timedelta(minutes=30), 90)  # 09:30-11:00 with our 10:00-10:30 inside
    rest = without_our_event([merged, _block(T, key="k9")], "k1", T, M.end)
    spans = [(b.start, b.end, b.key) for b in rest]
    assert spans == [
        (T - timedelta(minutes=30), T, None),
        (M.end, T + timedelta(hours=1), None),
        (T, T + timedelta(minutes=30), "k9"),
    ]
