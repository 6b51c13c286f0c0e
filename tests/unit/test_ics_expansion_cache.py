"""Expanded instances kept with a parsed calendar (issue 13): counted calls to the expander.

The expander is ``recurring_ical_events.of`` (one call per VCALENDAR expanded); the tests wrap
the real function to count its calls, they never replace what it does.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import connectors.ics_read as ics_read
from connectors.ics import IcsDirectory
from connectors.ics_input import MEMOS_PER_FILE, CalendarCache
from scheduler.core.intervals import Interval
from scheduler.core.model import BusyQuery, Person
from scheduler.settings import Limits

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "calendars"
NOW = datetime(2026, 12, 1, 9, tzinfo=UTC)
ALEX = Person("alex@corp.example", "Alex", "Europe/London")


def _ics(*events: str) -> bytes:
    body = "\n".join(events)
    return f"BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//t//t//EN\n{body}\nEND:VCALENDAR\n".encode()


def _weekly(uid: str, hour: int) -> str:
    return "\n".join(
        [
            "BEGIN:VEVENT",
            f"UID:{uid}",
            "DTSTAMP:20260901T000000Z",
            f"DTSTART:20261102T{hour:02d}0000Z",
            f"DTEND:20261102T{hour:02d}3000Z",
            "RRULE:FREQ=WEEKLY;BYDAY=MO,WE",
            "END:VEVENT",
        ]
    )


@pytest.fixture
def expansions(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts calls to the real expander (``recurring_ical_events.of``)."""
    calls: list[int] = []
    real: Callable[..., Any] = ics_read.recurring_ical_events.of

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(ics_read.recurring_ical_events, "of", counted)
    return calls


def _round(directory: IcsDirectory, now: datetime, people: tuple[Person, ...]) -> object:
    """What a planning round reads: the owner's contact history, then everyone's busy time."""
    contacts = directory.last_contacts(
        people[0], [p.email for p in people[1:]], now - timedelta(weeks=26), now
    )
    busy = directory.busy(BusyQuery(Interval(now, now + timedelta(days=14)), people))
    return contacts, busy


def test_an_unchanged_file_is_expanded_once_across_rounds(
    tmp_path: Path, expansions: list[int]
) -> None:
    (tmp_path / "alex@corp.example.ics").write_bytes(_ics(_weekly("a", 10)))
    directory = IcsDirectory(tmp_path, cache=CalendarCache())
    query = BusyQuery(Interval(NOW, NOW + timedelta(days=14)), (ALEX,))
    first = directory.busy(query)
    assert len(expansions) == 1
    # A second round, later the same day: the same blocks, and no expansion.
    later = BusyQuery(
        Interval(NOW + timedelta(hours=5), NOW + timedelta(days=14, hours=5)), (ALEX,)
    )
    second = directory.busy(query)
    shifted = directory.busy(later)
    assert second == first
    assert len(expansions) == 1
    # The same as reading without any cache.
    uncached = IcsDirectory(tmp_path, limits=Limits(ics_cache_entries=0))
    assert shifted == uncached.busy(later)
    assert len(shifted.blocks[ALEX.email]) == 4


def test_a_changed_file_gives_new_blocks(tmp_path: Path, expansions: list[int]) -> None:
    path = tmp_path / "alex@corp.example.ics"
    path.write_bytes(_ics(_weekly("a", 10)))
    directory = IcsDirectory(tmp_path, cache=CalendarCache())
    query = BusyQuery(Interval(NOW, NOW + timedelta(days=14)), (ALEX,))
    before = directory.busy(query).blocks[ALEX.email]
    # Same size, within the same second: the content decides, and the expansion goes with it.
    path.write_bytes(_ics(_weekly("a", 11)))
    after = directory.busy(query).blocks[ALEX.email]
    assert [b.start.hour for b in before] == [10] * 4
    assert [b.start.hour for b in after] == [11] * 4
    assert len(expansions) == 2
    assert directory.busy(query).blocks[ALEX.email] == after
    assert len(expansions) == 2


def test_a_round_over_the_examples_expands_each_file_once_per_window(
    expansions: list[int],
) -> None:
    people = tuple(Person(p.stem, p.stem, "Europe/London") for p in sorted(EXAMPLES.glob("*.ics")))
    cache = CalendarCache()
    directory = IcsDirectory(EXAMPLES, cache=cache)
    first = _round(directory, NOW, people)
    once = len(expansions)
    # The owner's file twice (contact history, busy time), every other file once.
    assert once == len(people) + 1
    assert _round(directory, NOW + timedelta(hours=3), people) is not None
    assert _round(directory, NOW, people) == first
    assert len(expansions) == once
    assert cache.memo_hits >= 2 * once
    expansions.clear()
    assert _round(IcsDirectory(EXAMPLES, limits=Limits(ics_cache_entries=0)), NOW, people) == first
    assert len(expansions) == once


def test_expansions_are_bounded_by_the_cache_limits(tmp_path: Path, expansions: list[int]) -> None:
    (tmp_path / "alex@corp.example.ics").write_bytes(_ics(_weekly("a", 10)))
    query = BusyQuery(Interval(NOW, NOW + timedelta(days=14)), (ALEX,))
    # No entries: nothing kept, every read expands.
    none = IcsDirectory(tmp_path, limits=Limits(ics_cache_entries=0))
    none.busy(query)
    none.busy(query)
    assert len(expansions) == 2
    # Room for the file but not for its instances: kept parse, expanded every time.
    size = (tmp_path / "alex@corp.example.ics").stat().st_size
    tight = CalendarCache(max_bytes=size + 100)
    directory = IcsDirectory(tmp_path, cache=tight)
    directory.busy(query)
    directory.busy(query)
    assert (tight.parses, tight.memo_puts, len(expansions)) == (1, 0, 4)
    # At most MEMOS_PER_FILE windows per file; the oldest goes first.
    roomy = CalendarCache()
    directory = IcsDirectory(tmp_path, cache=roomy)
    days = [NOW + timedelta(days=d) for d in range(MEMOS_PER_FILE + 1)]
    for day in days:
        directory.busy(BusyQuery(Interval(day, day + timedelta(days=14)), (ALEX,)))
    expansions.clear()
    directory.busy(BusyQuery(Interval(days[-1], days[-1] + timedelta(days=14)), (ALEX,)))
    assert expansions == []
    directory.busy(BusyQuery(Interval(days[0], days[0] + timedelta(days=14)), (ALEX,)))
    assert len(expansions) == 1


def test_a_calendar_over_the_instance_limit_is_refused_as_before(
    tmp_path: Path, expansions: list[int]
) -> None:
    daily = _ics(
        "\n".join(
            [
                "BEGIN:VEVENT",
                "UID:d",
                "DTSTAMP:20260901T000000Z",
                "DTSTART:20261101T100000Z",
                "DTEND:20261101T103000Z",
                "RRULE:FREQ=DAILY",
                "END:VEVENT",
            ]
        )
    )
    (tmp_path / "alex@corp.example.ics").write_bytes(daily)
    # 14 instances in the window, 15 or 16 in the widened one: the window itself decides.
    limits = Limits(max_instances=14)
    query = BusyQuery(Interval(NOW, NOW + timedelta(days=14)), (ALEX,))
    cached = IcsDirectory(tmp_path, limits=limits, cache=CalendarCache())
    plain = IcsDirectory(tmp_path, limits=Limits(max_instances=14, ics_cache_entries=0))
    assert cached.busy(query) == plain.busy(query)
    assert len(cached.busy(query).blocks[ALEX.email]) == 14
    tighter = BusyQuery(Interval(NOW, NOW + timedelta(days=15)), (ALEX,))
    refused = cached.busy(tighter)
    assert refused == plain.busy(tighter)
    assert "limits.max_instances" in refused.unavailable[ALEX.email]
