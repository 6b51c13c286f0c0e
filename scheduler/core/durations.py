"""Parsers for the small text notations used in policy files.

Each parser is pure and raises :class:`~scheduler.core.errors.SpecError` (a
:class:`~scheduler.core.errors.SchedulerError` and a :class:`ValueError`) whose message says what
was expected, so the policy loader can show it to the user unchanged::

    >>> parse_duration("1h30m")
    datetime.timedelta(seconds=5400)
    >>> str(parse_time_range("09:00-17:30"))
    '09:00-17:30'
    >>> parse_weekdays("mon-wed,fri")
    (0, 1, 2, 4)
    >>> format_duration(parse_duration("90m"))
    '1h30m'
"""

from __future__ import annotations

import difflib
import itertools
import re
from collections.abc import Mapping, Sequence
from datetime import date, time, timedelta

from scheduler.core.errors import SpecError, SubPath
from scheduler.core.model import WEEKDAYS, DateRange, TimeRange, WeeklyHours

__all__ = [
    "LONGEST",
    "DurationTooLong",
    "SpecError",
    "SubPath",
    "format_duration",
    "format_time_ranges",
    "format_weekly_hours",
    "parse_date_range",
    "parse_duration",
    "parse_time",
    "parse_time_range",
    "parse_time_ranges",
    "parse_weekdays",
    "parse_weekly_hours",
]

# One or more "<number><unit>" parts. Written so that no two parts can match the same
# characters: the old form (optional groups joined by \s*) backtracked for minutes on
# "1w" + thousands of spaces + "x".
_DURATION_RE = re.compile(r"(?:\d+\s*[wdhm]\s*)+")
_DURATION_PART = re.compile(r"(\d+)\s*([wdhm])")
_UNITS: tuple[tuple[str, timedelta], ...] = (
    ("w", timedelta(weeks=1)),
    ("d", timedelta(days=1)),
    ("h", timedelta(hours=1)),
    ("m", timedelta(minutes=1)),
)
_UNIT_ORDER = "wdhm"  # largest first, each at most once
_UNIT_MINUTES = {unit: size // timedelta(minutes=1) for unit, size in _UNITS}
_TIME_RE = re.compile(r"^(\d{1,2}):(\d{2})$")
# Users paste en and em dashes from documents; treat them as the hyphen they meant.
_DASHES = str.maketrans({"–": "-", "—": "-"})
_FULL_DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_DURATION_HINT = "expected a duration like 30m, 2d or 4w (units w, d, h, m; e.g. 1h30m)"
#: No duration is longer than this (about 100 years): longer text is refused before any
#: arithmetic, so ``99999999999999999999w`` is an error instead of an OverflowError.
LONGEST = timedelta(weeks=5200)


class DurationTooLong(SpecError):
    """A duration longer than the most allowed (``at_most``); callers may name their range."""


def parse_duration(
    text: str, *, allow_zero: bool = False, at_most: timedelta = LONGEST
) -> timedelta:
    """Parse ``30m``, ``2d``, ``4w`` or combinations in unit order (``1h30m``, ``1w2d``).

    Args:
        text: the duration; units are w (weeks), d (days), h (hours) and m (minutes).
        allow_zero: accept ``0m`` (and a bare ``0``) as a zero duration.
        at_most: the longest duration accepted (at most :data:`LONGEST`).

    Returns:
        The duration; whole minutes only.

    Raises:
        SpecError: the text is not a duration, or it is zero and ``allow_zero`` is false.
        DurationTooLong: longer than ``at_most`` (a :class:`SpecError` too).
    """
    if not isinstance(text, str):
        raise SpecError(f"{_DURATION_HINT}, got {text!r}")
    cleaned = text.strip()
    if allow_zero and cleaned == "0":
        return timedelta(0)
    parts = _DURATION_PART.findall(cleaned) if _DURATION_RE.fullmatch(cleaned) else []
    order = [_UNIT_ORDER.index(unit) for _, unit in parts]
    if not parts or any(later <= earlier for earlier, later in itertools.pairwise(order)):
        hint = ""
        if re.search(r"\d\s*(mo|month)", cleaned, re.IGNORECASE):
            hint = " (months vary in length; write 4w or 13w instead)"
        raise SpecError(f"{_DURATION_HINT}, got {text!r}{hint}")
    most = min(at_most, LONGEST) // timedelta(minutes=1)
    minutes = 0
    for amount, unit in parts:
        digits = amount.lstrip("0")
        if len(digits) > len(str(most)):  # far too long; no int() of a huge digit string
            minutes = most + 1
            break
        minutes += int(digits or "0") * _UNIT_MINUTES[unit]
    if minutes > most:
        raise DurationTooLong(
            f"expected a duration of at most {format_duration(timedelta(minutes=most))}, "
            f"got {text!r}"
        )
    if minutes <= 0 and not allow_zero:
        raise SpecError(f"expected a duration greater than zero like 30m or 2d, got {text!r}")
    return timedelta(minutes=minutes)


def format_duration(value: timedelta) -> str:
    """Write ``value`` the way :func:`parse_duration` reads it (``1h30m``; ``0m`` for zero).

    Raises:
        ValueError: ``value`` is negative or not a whole number of minutes.
    """
    if value < timedelta(0) or value % timedelta(minutes=1):
        raise ValueError(f"cannot write {value!r} as whole, non-negative minutes")
    parts: list[str] = []
    rest = value
    for unit, size in _UNITS:
        amount, rest = divmod(rest, size)
        if amount:
            parts.append(f"{amount}{unit}")
    return "".join(parts) or "0m"


def parse_time(text: str) -> time:
    """Parse a 24-hour wall-clock time ``HH:MM`` (``9:00`` is accepted too).

    Raises:
        SpecError: not a time between 00:00 and 23:59.
    """
    match = _TIME_RE.match(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise SpecError(f"expected a 24-hour time like 09:00, got {text!r}")
    hour, minute = int(match.group(1)), int(match.group(2))
    if hour > 23 or minute > 59:
        raise SpecError(f"expected a 24-hour time between 00:00 and 23:59, got {text!r}")
    return time(hour, minute)


def parse_time_range(text: str) -> TimeRange:
    """Parse ``09:00-17:30`` into a :class:`TimeRange` (local wall clock, start before end).

    Raises:
        SpecError: malformed, or the range ends at or before its start.
    """
    expected = "expected a time range like 09:00-17:30"
    if not isinstance(text, str):
        raise SpecError(f"{expected}, got {text!r}")
    pieces = text.translate(_DASHES).split("-")
    if len(pieces) != 2:
        raise SpecError(f"{expected}, got {text!r}")
    try:
        start, end = parse_time(pieces[0]), parse_time(pieces[1])
    except SpecError:
        raise SpecError(f"{expected}, got {text!r}") from None
    if not start < end:
        raise SpecError(
            f"time range {text.strip()!r} ends before it starts; write start-end within one day "
            f"like 09:00-17:30 (ranges cannot cross midnight)"
        )
    return TimeRange(start, end)


def parse_time_ranges(value: str | Sequence[str], *, label: str = "") -> tuple[TimeRange, ...]:
    """Parse ``"09:00-12:00, 13:00-17:00"`` or a list of ranges; sorted, none overlapping.

    Args:
        value: one string (ranges separated by commas) or a list of such strings.
        label: prefix for overlap messages (``mon``), naming the day the ranges belong to.

    Raises:
        SpecError: a range is malformed or two ranges overlap.
    """
    items: list[object]
    if isinstance(value, str):
        items = [value]
    elif isinstance(value, Sequence):
        items = list(value)
    else:
        raise SpecError(f"expected time ranges like '09:00-12:00, 13:00-17:00', got {value!r}")
    texts: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise SpecError(f"expected a time range like 09:00-17:30, got {item!r}")
        texts.extend(part for part in (p.strip() for p in item.split(",")) if part)
    if not texts:
        raise SpecError("expected at least one time range like 09:00-17:30, got none")
    ranges = sorted(parse_time_range(t) for t in texts)
    prefix = f"{label}: " if label else ""
    for before, after in itertools.pairwise(ranges):
        if after.start < before.end:
            raise SpecError(
                f"{prefix}{before} overlaps {after}; merge them or make them not overlap"
            )
    return tuple(ranges)


def format_time_ranges(ranges: Sequence[TimeRange]) -> str:
    """Write ranges the way :func:`parse_time_ranges` reads them (``09:00-12:00, 13:00-17:00``)."""
    return ", ".join(str(r) for r in ranges)


def _weekday(name: str, whole: str) -> int:
    key = name.strip().lower()
    if key in WEEKDAYS:
        return WEEKDAYS.index(key)
    if key in _FULL_DAY_NAMES:
        return _FULL_DAY_NAMES.index(key)
    close = difflib.get_close_matches(key, WEEKDAYS + _FULL_DAY_NAMES, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    raise SpecError(
        f"expected weekdays like mon-thu, fri or mon,wed,fri, got {whole!r} "
        f"('{name.strip()}' is not a day){hint}"
    )


def parse_weekdays(text: str) -> tuple[int, ...]:
    """Parse ``mon-thu``, ``fri``, ``mon,wed,fri`` or mixtures into sorted weekday numbers.

    Returns:
        Weekday indices, 0 = Monday (see :data:`scheduler.core.model.WEEKDAYS`).

    Raises:
        SpecError: an unknown day, a range written backwards, or a day named twice.
    """
    if not isinstance(text, str) or not text.strip():
        raise SpecError(f"expected weekdays like mon-thu, fri or mon,wed,fri, got {text!r}")
    days: list[int] = []
    for part in text.translate(_DASHES).split(","):
        if not part.strip():
            raise SpecError(f"expected weekdays like mon-thu, fri or mon,wed,fri, got {text!r}")
        ends = part.split("-")
        if len(ends) == 1:
            days.append(_weekday(ends[0], text))
        elif len(ends) == 2:
            first, last = _weekday(ends[0], text), _weekday(ends[1], text)
            if last < first:
                raise SpecError(
                    f"weekday range {part.strip()!r} runs backwards; write it Monday-first "
                    f"(like mon-fri) or list the days (like fri,sat,sun)"
                )
            days.extend(range(first, last + 1))
        else:
            raise SpecError(f"expected weekdays like mon-thu, fri or mon,wed,fri, got {text!r}")
    seen: set[int] = set()
    for day in days:
        if day in seen:
            raise SpecError(f"{text.strip()!r} names {WEEKDAYS[day]} twice; list each day once")
        seen.add(day)
    return tuple(sorted(seen))


def _iso_date(text: str, whole: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise SpecError(
            f"expected an ISO date like 2026-12-25 or a range like 2026-12-24..2027-01-03, "
            f"got {whole!r}"
        ) from None


def parse_date_range(value: str | date) -> DateRange:
    """Parse ``2026-12-24..2027-01-03`` (inclusive) or a single day ``2026-12-25``.

    A :class:`datetime.date` (what YAML and TOML give for an unquoted date) is a one-day range.

    Raises:
        SpecError: malformed, or the range ends before it starts.
    """
    if isinstance(value, date):
        return DateRange(value, value)
    if not isinstance(value, str):
        raise SpecError(
            f"expected an ISO date like 2026-12-25 or a range like 2026-12-24..2027-01-03, "
            f"got {value!r}"
        )
    first_text, sep, last_text = value.partition("..")
    first = _iso_date(first_text, value)
    last = _iso_date(last_text, value) if sep else first
    if last < first:
        raise SpecError(
            f"date range {value.strip()!r} ends before it starts; write first..last like "
            f"2026-12-24..2027-01-03"
        )
    return DateRange(first, last)


def parse_weekly_hours(spec: Mapping[str, str | Sequence[str]]) -> WeeklyHours:
    """Parse ``{"mon-thu": "09:00-17:30", "fri": "09:00-15:00"}`` into :class:`WeeklyHours`.

    Values may hold several ranges (``"09:00-12:00, 13:00-17:00"`` or a list). Days not named
    are not worked.

    Raises:
        SpecError: with one problem per bad key (sub-path = the key): unknown days, bad or
            overlapping ranges, a day named under two keys, or no days at all.
    """
    if not isinstance(spec, Mapping):
        raise SpecError(
            f"expected working hours as a mapping like {{mon-thu: '09:00-17:30', "
            f"fri: '09:00-15:00'}}, got {spec!r}"
        )
    if not spec:
        raise SpecError(
            "expected at least one day, like {mon-fri: '09:00-17:00'}; got an empty mapping"
        )
    problems: list[tuple[SubPath, str]] = []
    days: dict[int, tuple[TimeRange, ...]] = {}
    owner_key: dict[int, str] = {}
    for key, value in spec.items():
        if not isinstance(key, str):
            problems.append(((str(key),), f"expected weekdays like mon-fri as key, got {key!r}"))
            continue
        try:
            weekdays = parse_weekdays(key)
        except SpecError as exc:
            problems.append(((key,), f"{key}: {exc}"))
            continue
        try:
            ranges: tuple[TimeRange, ...] | None = parse_time_ranges(value, label=key)
        except SpecError as exc:
            problems.append(((key,), str(exc) if str(exc).startswith(key) else f"{key}: {exc}"))
            ranges = None
        clashes: dict[str, list[str]] = {}
        for day in weekdays:
            if day in owner_key:
                clashes.setdefault(owner_key[day], []).append(WEEKDAYS[day])
                continue
            owner_key[day] = key
            if ranges is not None:
                days[day] = ranges
        for other, names in clashes.items():
            problems.append(
                (
                    (key,),
                    f"{', '.join(names)} listed under both '{other}' and '{key}'; give each day "
                    f"once (several ranges go in one value: '09:00-12:00, 13:00-17:00')",
                )
            )
    if problems:
        raise SpecError(problems)
    return WeeklyHours(dict(sorted(days.items())))


def format_weekly_hours(hours: WeeklyHours) -> dict[str, str]:
    """Write hours the way :func:`parse_weekly_hours` reads them (``{"mon-fri": "09:00-17:00"}``).

    Consecutive days with the same ranges share one key.
    """
    runs: list[tuple[int, int, tuple[TimeRange, ...]]] = []
    for day, ranges in sorted(hours.days.items()):
        if runs and runs[-1][1] == day - 1 and runs[-1][2] == ranges:
            runs[-1] = (runs[-1][0], day, ranges)
        else:
            runs.append((day, day, ranges))
    return {
        (WEEKDAYS[first] if first == last else f"{WEEKDAYS[first]}-{WEEKDAYS[last]}"): (
            format_time_ranges(ranges)
        )
        for first, last, ranges in runs
    }
