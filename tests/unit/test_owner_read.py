"""The held owner read (connectors.owner_read): once per use, per owner, per thread, briefly."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from connectors.owner_read import HOLD_S, OwnerReads
from scheduler.core.intervals import Interval

NOW = datetime(2027, 3, 1, 8, tzinfo=UTC)
HELD = Interval(NOW - timedelta(weeks=26), NOW + timedelta(days=14))
PAST = (HELD.start, NOW)
AHEAD = (NOW, HELD.end)
EVENTS = [{"id": "a"}, {"id": "b"}]


class Ticks:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_history_and_busy_are_served_once_each_then_the_read_is_dropped() -> None:
    reads = OwnerReads()
    reads.hold("Alex@corp.example", HELD, EVENTS)
    assert reads.take("alex@corp.example", *PAST, "history") == EVENTS
    assert reads.take("alex@corp.example", *PAST, "history") is None  # a second history read
    assert reads.holding("alex@corp.example")
    assert reads.take("alex@corp.example", *AHEAD, "busy") == EVENTS
    assert not reads.holding("alex@corp.example")
    assert reads.take("alex@corp.example", *AHEAD, "busy") is None  # a recheck reads fresh


def test_only_windows_inside_the_held_read_are_served() -> None:
    reads = OwnerReads()
    reads.hold("alex@corp.example", HELD, EVENTS)
    assert (
        reads.take("alex@corp.example", HELD.start, HELD.end + timedelta(seconds=1), "busy") is None
    )
    assert (
        reads.take("alex@corp.example", HELD.start - timedelta(seconds=1), NOW, "history") is None
    )
    assert reads.take("alex@corp.example", NOW, NOW - timedelta(days=1), "busy") is None  # inverted
    assert reads.take("alex@corp.example", NOW.replace(tzinfo=None), HELD.end, "busy") is None
    assert reads.take("alex@corp.example", *AHEAD, "busy") == EVENTS  # still there for the round


def test_only_the_rounds_own_reads_are_served_not_a_recheck_inside_the_window() -> None:
    reads = OwnerReads()
    reads.hold("alex@corp.example", HELD, EVENTS)
    slot = (NOW + timedelta(days=2), NOW + timedelta(days=2, minutes=50))
    assert reads.take("alex@corp.example", *slot, "busy") is None  # a booking's recheck
    later_history = (HELD.start + timedelta(days=1), NOW)
    assert reads.take("alex@corp.example", *later_history, "history") is None
    assert reads.take("alex@corp.example", *PAST, "history") == EVENTS
    assert reads.take("alex@corp.example", *AHEAD, "busy") == EVENTS


def test_never_served_to_another_owner() -> None:
    reads = OwnerReads()
    reads.hold("alex@corp.example", HELD, EVENTS)
    assert reads.take("bo@corp.example", *AHEAD, "busy") is None
    assert reads.take("alex@corp.example", *AHEAD, "busy") == EVENTS


def test_never_served_to_another_thread() -> None:
    reads = OwnerReads()
    reads.hold("alex@corp.example", HELD, EVENTS)
    seen: list[object] = []
    worker = threading.Thread(
        target=lambda: seen.append(reads.take("alex@corp.example", *AHEAD, "busy"))
    )
    worker.start()
    worker.join()
    assert seen == [None]
    assert reads.take("alex@corp.example", *AHEAD, "busy") == EVENTS


def test_a_read_left_unused_expires() -> None:
    ticks = Ticks()
    reads = OwnerReads(monotonic=ticks)
    reads.hold("alex@corp.example", HELD, EVENTS)
    ticks.now += HOLD_S - 1
    assert reads.take("alex@corp.example", *PAST, "history") == EVENTS
    ticks.now += 2  # the round failed after its history read: the busy half is never served
    assert reads.take("alex@corp.example", *AHEAD, "busy") is None
    assert not reads.holding("alex@corp.example")


def test_a_new_read_replaces_the_held_one() -> None:
    reads = OwnerReads()
    reads.hold("alex@corp.example", HELD, EVENTS)
    assert reads.take("alex@corp.example", *PAST, "history") == EVENTS
    reads.hold("alex@corp.example", HELD, EVENTS[:1])  # the next round
    assert reads.take("alex@corp.example", *PAST, "history") == EVENTS[:1]


def test_holding_a_read_drops_expired_leftovers_of_other_owners() -> None:
    ticks = Ticks()
    reads = OwnerReads(monotonic=ticks)
    reads.hold("bo@corp.example", HELD, EVENTS)  # a round that failed after its read
    ticks.now += HOLD_S + 1
    reads.hold("alex@corp.example", HELD, EVENTS)
    assert not reads.holding("bo@corp.example")
    assert reads.holding("alex@corp.example")
