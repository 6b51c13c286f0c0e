"""The Google connector's held owner read gives what reading the provider gives (issue 13).

``read_owner`` parses each event's times once and holds them with the events; the round's
history and busy reads then filter and read the held events without parsing them again. Here
the same events answer both ways (no HTTP: the listing is a list), and the results must be the
same: organic contacts, busy blocks, and the error an unreadable event raises. The times are
parsed in the owner's zone (all-day dates, offset-less times): asked for the same owner in
another zone, the held read parses them again in that one.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from connectors.google import GoogleCalendar
from connectors.google_events import event_bounds
from scheduler.core.errors import CalendarDataError
from scheduler.core.intervals import Interval
from scheduler.core.model import BusyQuery, Person
from scheduler.settings import GoogleSettings

NOW = datetime(2027, 3, 1, 8, tzinfo=UTC)
OWNER = Person("alex@corp.example", "Alex Doe", "Europe/London")
SAM = "sam@corp.example"
ROUND = Interval(NOW - timedelta(weeks=26), NOW + timedelta(days=14))
AHEAD = Interval(NOW, ROUND.end)


def _z(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _timed(start: datetime, minutes: int = 30, **extra: Any) -> dict[str, Any]:
    end = start + timedelta(minutes=minutes)
    return {"start": {"dateTime": _z(start)}, "end": {"dateTime": _z(end)}, **extra}


def _all_day(day: datetime, **extra: Any) -> dict[str, Any]:
    first, after = day.date(), (day + timedelta(days=1)).date()
    return {"start": {"date": str(first)}, "end": {"date": str(after)}, **extra}


def _met(start: datetime, **extra: Any) -> dict[str, Any]:
    return _timed(start, attendees=[{"email": SAM, "responseStatus": "accepted"}], **extra)


class _Listed(GoogleCalendar):
    """The connector over a fixed list of events: ``events.list`` filters it by window."""

    def __init__(self, events: list[dict[str, Any]]) -> None:
        super().__init__(GoogleSettings(), lambda _email: None)  # type: ignore[arg-type,return-value]
        self.events = events
        self.listings = 0

    def _service(self, owner_email: str) -> Any:
        return None

    def _list_events(self, service: Any, start: datetime, end: datetime) -> Iterator[Any]:
        self.listings += 1
        for event in self.events:
            try:
                ev_start, ev_end, _ = event_bounds(event, "Europe/London")  # the calendar's zone
            except CalendarDataError:
                yield event
                continue
            if ev_start < end and ev_end > start:
                yield event

    def round(self, owner: Person, *, held: bool) -> tuple[Mapping[str, datetime], Any]:
        if held:
            self.read_owner(OWNER, ROUND)  # held as the round's owner (London)
        found = self.last_contacts(owner, [SAM], ROUND.start, NOW)
        busy = self.busy(BusyQuery(AHEAD, (owner,)))
        return found, busy


def _events() -> list[dict[str, Any]]:
    local = {"dateTime": "2027-01-10T10:00:00", "timeZone": "America/New_York"}
    return [
        _met(NOW - timedelta(weeks=6)),
        _met(NOW - timedelta(weeks=3), status="cancelled"),
        _all_day(NOW - timedelta(weeks=2), attendees=[{"email": SAM}]),  # ends at local midnight
        {
            "start": local,
            "end": {**local, "dateTime": "2027-01-10T11:00:00"},
            "organizer": {"email": SAM},
        },
        _timed(NOW - timedelta(hours=1), 120, attendees=[{"email": SAM}]),  # still going on
        _timed(NOW + timedelta(days=1, hours=2), 60),
        _timed(NOW + timedelta(days=2, hours=2), 60, transparency="transparent"),
        _all_day(NOW + timedelta(days=3)),
        _timed(ROUND.start - timedelta(days=1), 60 * 30),  # starts before the window
    ]


@pytest.mark.parametrize("zone", ["Europe/London", "Asia/Tokyo", "America/Los_Angeles"])
def test_the_held_read_answers_as_the_provider_does(zone: str) -> None:
    owner = replace(OWNER, timezone=zone)
    google = _Listed(_events())
    held = google.round(owner, held=True)
    assert google.listings == 1  # both served from the one read
    listed = google.round(owner, held=False)
    assert google.listings == 3
    assert held == listed
    found, busy = held
    tz = ZoneInfo(zone)
    day_off = (NOW - timedelta(weeks=2)).date()
    after = datetime(day_off.year, day_off.month, day_off.day, tzinfo=tz) + timedelta(days=1)
    assert found == {SAM: after.astimezone(UTC)}  # the all-day one, ending at *their* midnight
    assert len(busy.blocks[OWNER.email]) == 4


def test_an_unreadable_event_raises_the_same_error_from_the_held_read() -> None:
    garbled = _timed(NOW - timedelta(weeks=5))
    garbled["end"] = {"dateTime": "not a time"}
    gone = {**garbled, "status": "cancelled"}  # history skips it unread; busy reads it
    outcomes = []
    for held in (True, False):
        google = _Listed([*_events(), garbled])
        if held:
            google.read_owner(OWNER, ROUND)
        with pytest.raises(CalendarDataError) as history:
            google.last_contacts(OWNER, [SAM], ROUND.start, NOW)
        google = _Listed([*_events(), gone])
        if held:
            google.read_owner(OWNER, ROUND)
        found = google.last_contacts(OWNER, [SAM], ROUND.start, NOW)
        with pytest.raises(CalendarDataError) as busy:
            google.busy(BusyQuery(AHEAD, (OWNER,)))
        outcomes.append((str(history.value), found, str(busy.value)))
    assert outcomes[0] == outcomes[1]
