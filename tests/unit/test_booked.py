"""scheduler.core.booked: which of goodwill's events on the calendars are a pair's open
one-to-one when there is no store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from scheduler.core.booked import calendar_meetings
from scheduler.core.model import AttendeeStatus, BusyBlock, BusyResult, EventStatus
from scheduler.core.planner_model import ExistingMeeting

NOW = datetime(2026, 12, 1, 9, tzinfo=UTC)
AT = NOW + timedelta(days=3)
END = AT + timedelta(minutes=30)
OWNER, ANA, BEN = "owner@x.example", "ana@x.example", "ben@x.example"


def _block(key: str | None = "gwk", *people: str, **more: object) -> BusyBlock:
    return BusyBlock(AT, END, key=key, participants=frozenset(people), **more)  # type: ignore[arg-type]


def _meetings(blocks: dict[str, list[BusyBlock]]) -> list[ExistingMeeting]:
    return calendar_meetings(BusyResult(blocks=blocks), OWNER, [ANA, BEN], NOW)


def test_the_owners_copy_names_the_pair() -> None:
    assert _meetings({OWNER: [_block("gwk", OWNER, ANA)]}) == [ExistingMeeting(ANA, AT, END)]


def test_the_stakeholders_copy_names_the_pair_or_shares_the_owners_key() -> None:
    assert _meetings({ANA: [_block("gwk", OWNER, ANA)]}) == [ExistingMeeting(ANA, AT, END)]
    keyed_only = {OWNER: [_block("gwk")], ANA: [_block("gwk")], BEN: [_block("gwother")]}
    assert _meetings(keyed_only) == [ExistingMeeting(ANA, AT, END)]


def test_no_meeting_without_goodwills_key_or_for_a_group_or_when_over_or_declined() -> None:
    assert _meetings({OWNER: [_block(None, OWNER, ANA)]}) == []
    assert _meetings({OWNER: [_block("gwk", OWNER, ANA, BEN)]}) == []
    assert _meetings({ANA: [_block("gwk", ANA, BEN)]}) == []  # another owner's coffee
    declined = _block("gwk", OWNER, ANA, response=AttendeeStatus.DECLINED)
    cancelled = _block("gwk", OWNER, ANA, status=EventStatus.CANCELLED)
    assert _meetings({ANA: [declined], OWNER: [cancelled]}) == []
    past = BusyBlock(NOW - timedelta(hours=1), NOW, key="gwk", participants=frozenset({OWNER, ANA}))
    assert _meetings({OWNER: [past]}) == []


def test_one_meeting_per_event_seen_on_both_calendars() -> None:
    both = {OWNER: [_block("gwk", OWNER, ANA)], ANA: [_block("gwk", OWNER, ANA)]}
    assert _meetings(both) == [ExistingMeeting(ANA, AT, END)]
