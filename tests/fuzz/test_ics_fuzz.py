"""Fuzzing the ICS reader: real calendars (the test files shipped in the icalendar and
recurring-ical-events wheels, and the sample organisation's) with lines deleted, repeated,
swapped, cut, replaced by hostile ones or sprinkled with stray bytes, and generated recurrence
rules. Whatever the input, ``parse_busy_blocks`` gives valid busy blocks or one
:class:`CalendarDataError` — never another exception, never a hang (the read's step budget
bounds the work) — and every message or logged problem is one printable line.

Bounded for ``make test`` (a few seconds each); ``GOODWILL_FUZZ=long`` runs many more examples.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import icalendar
import recurring_ical_events
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.ics_read import parse_busy_blocks
from scheduler.core.errors import CalendarDataError
from scheduler.core.intervals import Interval
from scheduler.core.model import BusyBlock
from scheduler.settings import Limits

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "calendars"
CORPUS = sorted(
    p
    for p in [
        *(Path(icalendar.__file__).parent / "tests").rglob("*.ics"),
        *(Path(recurring_ical_events.__file__).parent / "test" / "calendars").glob("*.ics"),
        *EXAMPLES.glob("*.ics"),
    ]
    if p.stat().st_size <= 16_384  # keeps each example fast; the big ones add nothing new
)
SEEDS = [p.read_bytes() for p in CORPUS]
WINDOW = Interval(datetime(2019, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
#: Small limits so that every example is cheap; the budget is what makes a hang impossible.
LIMITS = Limits(
    max_instances=2_000,
    ics_max_components=2_000,
    ics_max_lines=20_000,
    ics_max_dates=2_000,
    ics_max_steps=200_000,
    ics_read_budget_s=30.0,
)

HOSTILE_LINES = [
    b"garbage without a colon",
    b"\x00\x01\x02\x1b[31m\xff\xfe",
    b"BEGIN:VEVENT",
    b"END:VEVENT",
    b"BEGIN:VALARM",
    b"END:VCALENDAR",
    b"END:VTODO",
    b"BEGIN:",
    b"DTSTART:notadate",
    b"DTSTART;TZID=Nowhere/Zone:20190101T100000",
    b"DTSTART;VALUE=DATE:20190101",
    b"DTEND:20180101T000000Z",
    b"DURATION:-P1D",
    b"DURATION:P99999W",
    b"RRULE:FREQ=SECONDLY",
    b"RRULE:FREQ=HOURLY;BYMONTH=2;BYMONTHDAY=30;BYSECOND=0,1,2,3,4,5,6,7,8,9",
    b"RRULE:FREQ=YEARLY;BYWEEKNO=53;BYMONTH=6",
    b"RRULE:FREQ=DAILY;COUNT=-1",
    b"RRULE:FREQ=WEEKLY;UNTIL=notadate",
    b"RRULE:FREQ=MONTHLY;BYSETPOS=-1,1,400;BYDAY=MO,TU",
    b"RDATE:20190101T000000Z,20190102T000000Z,garbage",
    b"RDATE;VALUE=PERIOD:20190101T000000Z/PT1H",
    b"EXDATE:",
    b"RECURRENCE-ID;RANGE=THISANDFUTURE:20190105T100000Z",
    b"X-WR-TIMEZONE:Not/AZone",
    b'ATTENDEE;PARTSTAT="unterminated:mailto:a@b',
    b"ORGANIZER;CN=\x1b]0;title\x07:mailto:a@b",
    b"TRANSP:TRANSPARENT",
    b"UID:" + b"x" * 300,
    b" folded continuation with no line before",
    b"X-LONG:" + b"y" * 2_000,
]


def _examples(count: int) -> int:
    """``count`` examples, or the loaded profile's when it asks for more (``GOODWILL_FUZZ``)."""
    return max(count, settings.default.max_examples)


def _lines(data: bytes) -> list[bytes]:
    return data.replace(b"\r\n", b"\n").split(b"\n")


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A corpus file with a few line-level edits."""
    lines = _lines(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["delete", "repeat", "swap", "insert", "replace", "cut"]))
        at = draw(st.integers(0, max(len(lines) - 1, 0)))
        if kind == "delete" and lines:
            del lines[at]
        elif kind == "repeat" and lines:
            lines[at:at] = [lines[at]] * draw(st.integers(1, 3))
        elif kind == "swap" and lines:
            other = draw(st.integers(0, len(lines) - 1))
            lines[at], lines[other] = lines[other], lines[at]
        elif kind == "insert":
            lines.insert(at, draw(st.sampled_from(HOSTILE_LINES)))
        elif kind == "replace" and lines:
            name = lines[at].split(b":", 1)[0]
            lines[at] = name + b":" + draw(st.binary(max_size=40))
        elif kind == "cut":
            lines = lines[:at]
    newline = draw(st.sampled_from([b"\r\n", b"\n"]))
    return newline.join(lines)


@st.composite
def byte_edits(draw: st.DrawFn) -> bytes:
    """A corpus file with bytes replaced, inserted or deleted."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 10))):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        kind = draw(st.sampled_from("rid"))
        if kind == "r":
            data[at] = draw(st.integers(0, 255))
        elif kind == "i":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        else:
            del data[at]
    return bytes(data)


_FREQ = ["SECONDLY", "MINUTELY", "HOURLY", "DAILY", "WEEKLY", "MONTHLY", "YEARLY"]
_PARTS = {
    "BYSECOND": st.lists(st.integers(0, 59), min_size=1, max_size=60, unique=True),
    "BYMINUTE": st.lists(st.integers(0, 59), min_size=1, max_size=60, unique=True),
    "BYHOUR": st.lists(st.integers(0, 23), min_size=1, max_size=24, unique=True),
    "BYMONTHDAY": st.lists(st.integers(-31, 31).filter(bool), min_size=1, max_size=5),
    "BYMONTH": st.lists(st.integers(1, 12), min_size=1, max_size=3, unique=True),
    "BYYEARDAY": st.lists(st.integers(-366, 366).filter(bool), min_size=1, max_size=3),
    "BYWEEKNO": st.lists(st.integers(-53, 53).filter(bool), min_size=1, max_size=3),
    "BYSETPOS": st.lists(st.integers(-10, 10).filter(bool), min_size=1, max_size=3),
}


@st.composite
def rules(draw: st.DrawFn) -> bytes:
    """One event with a generated RRULE starting up to 30 years before the window."""
    parts = [f"FREQ={draw(st.sampled_from(_FREQ))}"]
    if draw(st.booleans()):
        parts.append(f"INTERVAL={draw(st.integers(1, 1000))}")
    for name in draw(st.lists(st.sampled_from(sorted(_PARTS)), max_size=4, unique=True)):
        parts.append(f"{name}={','.join(map(str, draw(_PARTS[name])))}")
    if draw(st.booleans()):
        days = st.lists(st.sampled_from(["MO", "TU", "1FR", "-1SU"]), min_size=1, max_size=4)
        parts.append("BYDAY=" + ",".join(draw(days)))
    end = draw(st.sampled_from(["", ";COUNT=5", ";COUNT=100000", ";UNTIL=20300101T000000Z"]))
    year = draw(st.integers(1990, 2026))
    event = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//fuzz//EN\r\nBEGIN:VEVENT\r\nUID:rule\r\n"
        f"DTSTAMP:20190101T000000Z\r\nDTSTART:{year}0131T235959Z\r\nDURATION:PT1S\r\n"
        f"RRULE:{';'.join(parts)}{end}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    return event.encode()


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextmanager
def _problems() -> Iterator[list[str]]:
    handler = _Collect()
    logger = logging.getLogger("goodwill.ics")
    logger.addHandler(handler)
    try:
        yield handler.messages
    finally:
        logger.removeHandler(handler)


def _one_line(text: str) -> bool:
    return all(char.isprintable() for char in text)


def _read(data: bytes) -> list[BusyBlock] | CalendarDataError:
    with _problems() as problems, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # icalendar warns about guessed TZIDs; not our concern
        try:
            result: list[BusyBlock] | CalendarDataError = parse_busy_blocks(
                data,
                source="fuzz.ics",
                owner_email="someone@example.com",
                zone="Europe/London",
                window=WINDOW,
                max_instances=LIMITS.max_instances,
                limits=LIMITS,
            )
        except CalendarDataError as exc:
            result = exc
    for problem in problems:
        assert problem.startswith("fuzz.ics"), problem
        assert _one_line(problem), repr(problem)
    if isinstance(result, CalendarDataError):
        message = str(result)
        assert result.source == "fuzz.ics"
        assert message.startswith("fuzz.ics")
        assert _one_line(message), repr(message)
        assert len(message) < 600, message
        return result
    for block in result:
        assert block.start.tzinfo is UTC
        assert block.end.tzinfo is UTC
        assert WINDOW.start <= block.start < block.end <= WINDOW.end
    assert result == sorted(result, key=lambda b: (b.start, b.end))
    return result


def test_the_seeds_are_there() -> None:
    assert len(SEEDS) > 150


@settings(max_examples=_examples(150))
@given(mutated())
def test_mutated_real_calendars_read_or_refuse_cleanly(data: bytes) -> None:
    _read(data)


@settings(max_examples=_examples(100))
@given(byte_edits())
def test_real_calendars_with_stray_bytes_read_or_refuse_cleanly(data: bytes) -> None:
    _read(data)


@settings(max_examples=_examples(100))
@given(st.binary(max_size=2_048))
def test_arbitrary_bytes_read_or_refuse_cleanly(data: bytes) -> None:
    _read(data)


@settings(max_examples=_examples(150))
@given(rules())
def test_generated_recurrence_rules_stay_within_the_budget(data: bytes) -> None:
    _read(data)
