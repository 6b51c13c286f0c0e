"""Busy rules: every row of the precedence table, every knob both ways, and the merge."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.core.busy import apply_busy_rules, explain_block
from scheduler.core.intervals import Interval, normalise
from scheduler.core.model import (
    AttendeeStatus,
    BusyBlock,
    BusyRule,
    BusyRules,
    EventStatus,
    ShowAs,
)

T0 = datetime(2026, 3, 2, 9, tzinfo=UTC)
BUSY, FREE, RESPECT = BusyRule.BUSY, BusyRule.FREE, BusyRule.RESPECT_TRANSPARENCY


def block(**kw: Any) -> BusyBlock:
    return BusyBlock(T0, T0 + timedelta(hours=1), **kw)


# (block fields, rule overrides, expected busy, expected reason)
TABLE: list[tuple[dict[str, Any], dict[str, BusyRule], bool, str]] = [
    # 10. fall-through: an opaque confirmed event, however answered
    ({}, {}, True, "opaque: busy"),
    ({"response": AttendeeStatus.ACCEPTED}, {}, True, "opaque: busy"),
    # 1. cancelled
    ({"status": EventStatus.CANCELLED}, {}, False, "cancelled: free"),
    ({"status": EventStatus.CANCELLED}, {"cancelled": BUSY}, True, "cancelled: busy"),
    # 2. declined
    ({"response": AttendeeStatus.DECLINED}, {}, False, "declined: free"),
    ({"response": AttendeeStatus.DECLINED}, {"declined": BUSY}, True, "declined: busy"),
    # 3. out of office
    ({"show_as": ShowAs.OOF}, {}, True, "out_of_office: busy"),
    ({"show_as": ShowAs.OOF}, {"out_of_office": FREE}, False, "out_of_office: free"),
    # 4. all-day: respect transparency by default, or forced either way
    ({"all_day": True}, {}, True, "all_day: busy"),
    ({"all_day": True, "show_as": ShowAs.FREE}, {}, False, "all_day: free"),
    ({"all_day": True, "show_as": ShowAs.FREE}, {"all_day": BUSY}, True, "all_day: busy"),
    ({"all_day": True}, {"all_day": FREE}, False, "all_day: free"),
    ({"all_day": True, "show_as": ShowAs.TENTATIVE}, {"all_day": RESPECT}, True, "all_day: busy"),
    # 5. transparent
    ({"show_as": ShowAs.FREE}, {}, False, "transparent: free"),
    ({"show_as": ShowAs.FREE}, {"transparent": BUSY}, True, "transparent: busy"),
    # 6. tentative, via any of the three fields
    ({"show_as": ShowAs.TENTATIVE}, {}, True, "tentative: busy"),
    ({"show_as": ShowAs.TENTATIVE}, {"tentative": FREE}, False, "tentative: free"),
    ({"status": EventStatus.TENTATIVE}, {"tentative": FREE}, False, "tentative: free"),
    ({"response": AttendeeStatus.TENTATIVE}, {"tentative": FREE}, False, "tentative: free"),
    ({"response": AttendeeStatus.TENTATIVE}, {"tentative": RESPECT}, True, "tentative: busy"),
    # 7. unanswered
    ({"response": AttendeeStatus.NEEDS_ACTION}, {}, True, "unanswered: busy"),
    ({"response": AttendeeStatus.NEEDS_ACTION}, {"unanswered": FREE}, False, "unanswered: free"),
    # 8. working elsewhere
    ({"show_as": ShowAs.WORKING_ELSEWHERE}, {}, False, "working_elsewhere: free"),
    (
        {"show_as": ShowAs.WORKING_ELSEWHERE},
        {"working_elsewhere": BUSY},
        True,
        "working_elsewhere: busy",
    ),
    # 9. unknown
    ({"show_as": ShowAs.UNKNOWN}, {}, True, "unknown: busy"),
    ({"show_as": ShowAs.UNKNOWN}, {"unknown": FREE}, False, "unknown: free"),
    # precedence: the earlier row wins
    (
        {"status": EventStatus.CANCELLED, "show_as": ShowAs.OOF},
        {"out_of_office": BUSY},
        False,
        "cancelled: free",
    ),
    (
        {"response": AttendeeStatus.DECLINED, "show_as": ShowAs.TENTATIVE},
        {"tentative": BUSY},
        False,
        "declined: free",
    ),
    ({"show_as": ShowAs.OOF, "all_day": True}, {"all_day": FREE}, True, "out_of_office: busy"),
    (
        {"all_day": True, "response": AttendeeStatus.NEEDS_ACTION},
        {"unanswered": FREE},
        True,
        "all_day: busy",
    ),
    (
        {"show_as": ShowAs.FREE, "response": AttendeeStatus.NEEDS_ACTION},
        {"unanswered": BUSY},
        False,
        "transparent: free",
    ),
    (
        {"status": EventStatus.TENTATIVE, "response": AttendeeStatus.NEEDS_ACTION},
        {"tentative": FREE, "unanswered": BUSY},
        False,
        "tentative: free",
    ),
    (
        {"show_as": ShowAs.WORKING_ELSEWHERE, "response": AttendeeStatus.NEEDS_ACTION},
        {"unanswered": FREE, "working_elsewhere": BUSY},
        False,
        "unanswered: free",
    ),
]


@pytest.mark.parametrize(("fields", "overrides", "busy", "reason"), TABLE)
def test_rule_table(
    fields: dict[str, Any], overrides: dict[str, BusyRule], busy: bool, reason: str
) -> None:
    rules = replace(BusyRules(), **overrides)
    assert explain_block(block(**fields), rules) == (busy, reason)
    # apply_busy_rules must agree with explain_block on the same block.
    assert apply_busy_rules([block(**fields)], rules) == (
        [Interval(T0, T0 + timedelta(hours=1))] if busy else []
    )


def test_every_knob_is_exercised_by_the_table() -> None:
    knobs = {name for _, overrides, _, _ in TABLE for name in overrides}
    assert knobs == set(BusyRules.__dataclass_fields__)


def test_defaults_match_the_design() -> None:
    # DESIGN.md "Busy rules": busy = opaque, tentative, unanswered, OOF, opaque all-day;
    # free = transparent, cancelled, declined, working elsewhere.
    kinds: dict[str, dict[str, Any]] = {
        "opaque": {},
        "tentative": {"show_as": ShowAs.TENTATIVE},
        "unanswered": {"response": AttendeeStatus.NEEDS_ACTION},
        "oof": {"show_as": ShowAs.OOF},
        "opaque all-day": {"all_day": True},
        "transparent all-day": {"all_day": True, "show_as": ShowAs.FREE},
        "transparent": {"show_as": ShowAs.FREE},
        "cancelled": {"status": EventStatus.CANCELLED},
        "declined": {"response": AttendeeStatus.DECLINED},
        "working elsewhere": {"show_as": ShowAs.WORKING_ELSEWHERE},
    }
    verdicts = {name: explain_block(block(**f), BusyRules())[0] for name, f in kinds.items()}
    busy = {name for name, is_busy in verdicts.items() if is_busy}
    assert busy == {"opaque", "tentative", "unanswered", "oof", "opaque all-day"}


def at(hour: float) -> datetime:
    return T0 + timedelta(hours=hour - 9)


def test_merges_overlapping_and_touching_and_drops_free_and_empty() -> None:
    blocks = [
        BusyBlock(at(13), at(14)),
        BusyBlock(at(9), at(10)),
        BusyBlock(at(9.5), at(10.5)),  # overlaps
        BusyBlock(at(10.5), at(11)),  # touches
        BusyBlock(at(11), at(12), show_as=ShowAs.FREE),  # free: does not bridge to 13:00
        BusyBlock(at(12), at(12)),  # empty
        BusyBlock(at(15), at(14)),  # inverted: ignored
    ]
    assert apply_busy_rules(blocks, BusyRules()) == [
        Interval(at(9), at(11)),
        Interval(at(13), at(14)),
    ]


def test_output_is_utc_whatever_the_input_zone() -> None:
    ny = ZoneInfo("America/New_York")
    start = datetime(2026, 3, 9, 9, tzinfo=ny)  # 13:00 UTC (EDT)
    [iv] = apply_busy_rules([BusyBlock(start, start + timedelta(hours=1))], BusyRules())
    assert iv.start == datetime(2026, 3, 9, 13, tzinfo=UTC)
    assert iv.start.tzinfo is UTC
    assert iv.end.tzinfo is UTC


def test_empty_input() -> None:
    assert apply_busy_rules([], BusyRules()) == []
    assert apply_busy_rules(iter([]), BusyRules()) == []


_kinds = st.fixed_dictionaries(
    {
        "show_as": st.sampled_from(list(ShowAs)),
        "status": st.sampled_from(list(EventStatus)),
        "response": st.sampled_from(list(AttendeeStatus)),
        "all_day": st.booleans(),
    }
)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 600), st.integers(0, 120), _kinds, st.sampled_from(["UTC", "NY"])),
        max_size=30,
    ),
    st.fixed_dictionaries(
        {k: st.sampled_from(list(BusyRule)) for k in BusyRules.__dataclass_fields__}
    ),
)
def test_matches_explain_block_then_normalise(
    raw: list[tuple[int, int, dict[str, Any], str]], knobs: dict[str, BusyRule]
) -> None:
    rules = BusyRules(**knobs)
    ny = ZoneInfo("America/New_York")
    blocks = []
    for offset, length, kind, zone in raw:
        start = T0 + timedelta(minutes=offset)
        if zone == "NY":
            start = start.astimezone(ny)
        blocks.append(BusyBlock(start, start + timedelta(minutes=length), **kind))
    expected = normalise(b.interval.to_utc() for b in blocks if explain_block(b, rules)[0])
    got = apply_busy_rules(blocks, rules)
    assert got == expected
    assert all(i.start.tzinfo is UTC for i in got)
