"""The readers' records of expanded instances, made without the library's copy of each event.

``connectors.ics_read`` makes each occurrence into a ``_Seen`` record from the occurrence's
times and its source VEVENT (read once per VEVENT) instead of ``Occurrence.as_component``,
which copies the event for every instance (issue 13, cold start). The records must be the
very ones the copying way gives, whatever the calendar holds: checked here on the corpora the
icalendar and recurring-ical-events wheels ship and on the sample organisation's calendars.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import recurring_ical_events

from connectors import ics_read
from connectors.ics_input import ReadBudget, parse_calendar
from scheduler.core.errors import CalendarDataError
from scheduler.core.intervals import Interval
from scheduler.settings import Limits
from tests.unit.test_ics_corpus import EXAMPLES, ICALENDAR_CORPUS, RIE_CORPUS, _name

SAMPLE = sorted((EXAMPLES / "calendars").glob("*.ics"))
NOW = datetime(2026, 12, 1, 9, tzinfo=UTC)
#: The windows `goodwill plan` reads (the horizon, the contact history) and a long one.
WINDOWS = [
    Interval(NOW, NOW + timedelta(days=15)),
    Interval(NOW - timedelta(weeks=26), NOW),
    Interval(datetime(2015, 1, 1, tzinfo=UTC), datetime(2025, 1, 1, tzinfo=UTC)),
]


def _records(path: Path, window: Interval, zone: str, *, copying: bool) -> object:
    """The records of ``path`` in ``window`` (sorted: recurring-ical-events yields the
    modifications of a series from a set, in no set order), or the refusal as (reason, line)."""
    limits = Limits()
    tz = ics_read.resolve_zone(zone)
    try:
        parsed = parse_calendar(path.read_bytes(), source=path.name, limits=limits)
        make: Any = (lambda o: _copied(o, tz)) if copying else ics_read._seen_maker(tz)
        return sorted(
            ics_read._expand(
                parsed.calendars,
                source=path.name,
                zone=tz,
                window=window,
                max_instances=50_000,
                budget=ReadBudget.of(path.name, limits),
                lines=parsed.event_lines,
                strict=False,
                make=make,
            ),
            key=repr,
        )
    except CalendarDataError as exc:
        return (exc.reason, exc.line)


def _copied(occurrence: Any, zone: Any) -> Any:
    """The record the copying way gives (the library's ``as_component``, then the reader)."""
    instance = ics_read._instance_of(occurrence, zone=zone)
    return None if instance is None else ics_read._Seen.of(instance)


@pytest.mark.filterwarnings("ignore::icalendar.error.GloballyUniqueTZIDGuessed")
@pytest.mark.parametrize("path", ICALENDAR_CORPUS + RIE_CORPUS + SAMPLE, ids=_name)
def test_records_are_those_of_the_librarys_copies(path: Path) -> None:
    # Given any calendar, in the windows a plan reads and a long one, and in two zones …
    for window in WINDOWS:
        for zone in ("Europe/London", "Pacific/Auckland"):
            # … then the records made from the source events are those made from the copies.
            fast = _records(path, window, zone, copying=False)
            assert fast == _records(path, window, zone, copying=True), (window, zone)


def test_the_sample_calendars_are_read_without_copying_events(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given the sample organisation's calendars, when every occurrence's copy is refused …
    def refuse(*args: object, **kwargs: object) -> object:
        raise AssertionError("Occurrence.as_component was called")

    monkeypatch.setattr(recurring_ical_events.Occurrence, "as_component", refuse)
    read = partial(_records, zone="Europe/London", copying=False)
    # … then each calendar still gives its records (a release of recurring-ical-events that no
    # longer shows an occurrence's source would take the copying way and fail here).
    for path in SAMPLE:
        for window in WINDOWS[:2]:
            records = read(path, window)
            assert isinstance(records, list)
            assert records, (path.name, window)
