"""Small calendar-file helpers shared by the tests."""

from __future__ import annotations

from pathlib import Path

import icalendar


def empty_calendar(path: Path) -> None:
    """Write an empty iCalendar file (a person with nothing booked) at ``path``."""
    cal = icalendar.Calendar()
    cal.add("prodid", "-//goodwill tests//EN")
    cal.add("version", "2.0")
    path.write_bytes(cal.to_ical())
