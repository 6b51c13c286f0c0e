"""Field types of the policy file and the parsers behind them.

Each type (:data:`Duration`, :data:`Hours`, :data:`TimeZone`, …) is an ``Annotated`` alias that
pydantic validates with a plain parser from :mod:`scheduler.core.durations` and writes back in
the file's own notation (``30m``, ``09:00-17:30``). Parsers raise
:class:`~scheduler.core.durations.SpecError`, whose problems may point below the field
(``[2]``, ``[tentative]``). Also here: the small checks and messages the models share
(templates, e-mail domains, "did you mean" for unknown keys).
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import string
import zoneinfo
from collections.abc import Iterable, Mapping
from datetime import date, timedelta
from typing import Annotated, Any, Literal

from pydantic import PlainSerializer, PlainValidator, WithJsonSchema

from scheduler.core.durations import (
    SpecError,
    SubPath,
    format_duration,
    format_weekly_hours,
    parse_date_range,
    parse_duration,
    parse_time_range,
    parse_weekdays,
    parse_weekly_hours,
)
from scheduler.core.model import WEEKDAYS, BusyRule, BusyRules, DateRange, TimeRange, WeeklyHours

__all__ = [
    "Blackout",
    "Busy",
    "Duration",
    "Email",
    "Hours",
    "MeetingLength",
    "Mode",
    "OptionalDelay",
    "TimeZone",
    "Weekdays",
    "Window",
]

Mode = Literal["auto", "propose"]


def _duration(value: Any, *, allow_zero: bool = False, int_minutes: bool = False) -> timedelta:
    if isinstance(value, timedelta):
        if value < timedelta(0) or (value == timedelta(0) and not allow_zero):
            raise SpecError(f"expected a duration greater than zero, got {format_duration(value)}")
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        if int_minutes or (allow_zero and value == 0):  # a bare 0 needs no unit
            return _duration(timedelta(minutes=value), allow_zero=allow_zero)
        raise SpecError(
            f"expected a duration like 30m, 2d or 4w, got the bare number {value}; add a unit "
            f"(m, h, d or w)"
        )
    return parse_duration(value, allow_zero=allow_zero)


_DURATION_SCHEMA = WithJsonSchema(
    {"type": "string", "pattern": r"^(\d+w)?(\d+d)?(\d+h)?(\d+m)?$", "examples": ["30m", "4w"]}
)
_AS_DURATION_TEXT = PlainSerializer(format_duration, return_type=str, when_used="json")

#: A positive duration written ``30m``, ``2d``, ``4w``.
Duration = Annotated[timedelta, PlainValidator(_duration), _AS_DURATION_TEXT, _DURATION_SCHEMA]
#: A duration that may be zero (``0m``).
OptionalDelay = Annotated[
    timedelta,
    PlainValidator(lambda v: _duration(v, allow_zero=True)),
    _AS_DURATION_TEXT,
    _DURATION_SCHEMA,
]
#: A positive duration; a bare integer means minutes (``duration: 45``).
MeetingLength = Annotated[
    timedelta,
    PlainValidator(lambda v: _duration(v, int_minutes=True)),
    _AS_DURATION_TEXT,
    WithJsonSchema({"type": ["string", "integer"], "examples": ["30m", 45]}),
]


def _time_range(value: Any) -> TimeRange:
    return value if isinstance(value, TimeRange) else parse_time_range(value)


Window = Annotated[
    TimeRange,
    PlainValidator(_time_range),
    PlainSerializer(str, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "examples": ["09:00-17:30"]}),
]


def _weekly_hours(value: Any) -> WeeklyHours:
    return value if isinstance(value, WeeklyHours) else parse_weekly_hours(value)


Hours = Annotated[
    WeeklyHours,
    PlainValidator(_weekly_hours),
    PlainSerializer(format_weekly_hours, when_used="json"),
    WithJsonSchema(
        {
            "type": "object",
            "additionalProperties": {"type": ["string", "array"]},
            "examples": [{"mon-thu": "09:00-17:30", "fri": "09:00-15:00"}],
        }
    ),
]


def _date_range(value: Any) -> DateRange:
    return value if isinstance(value, DateRange) else parse_date_range(value)


def _format_date_range(value: DateRange) -> str:
    return str(value.first) if value.first == value.last else f"{value.first}..{value.last}"


Blackout = Annotated[
    DateRange,
    PlainValidator(_date_range),
    PlainSerializer(_format_date_range, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "examples": ["2026-12-24..2027-01-03", "2026-12-25"]}),
]


def _weekday_set(value: Any) -> frozenset[int]:
    if isinstance(value, frozenset | set) and all(isinstance(d, int) for d in value):
        return frozenset(value)
    items: list[Any] = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise SpecError(f"expected a list of weekdays like [fri] or [sat, sun], got {value!r}")
    days: set[int] = set()
    problems: list[tuple[SubPath, str]] = []
    for index, item in enumerate(items):
        try:
            days.update(parse_weekdays(item))
        except SpecError as exc:
            problems.append(((index,) if isinstance(value, list | tuple) else (), str(exc)))
    if problems:
        raise SpecError(problems)
    return frozenset(days)


Weekdays = Annotated[
    frozenset[int],
    PlainValidator(_weekday_set),
    PlainSerializer(lambda v: [WEEKDAYS[d] for d in sorted(v)], when_used="json"),
    WithJsonSchema({"type": "array", "items": {"type": "string"}, "examples": [["fri"]]}),
]

_BUSY_KEYS = tuple(f.name for f in dataclasses.fields(BusyRules))


def _busy_rules(value: Any) -> BusyRules:
    if isinstance(value, BusyRules):
        return value
    if not isinstance(value, Mapping):
        raise SpecError(
            f"expected a mapping like {{tentative: busy, all_day: free}}, got {value!r}"
        )
    rules: dict[str, BusyRule] = {}
    problems: list[tuple[SubPath, str]] = []
    for key, text in value.items():
        if key not in _BUSY_KEYS:
            problems.append(((str(key),), _unknown_field(str(key), _BUSY_KEYS)))
            continue
        try:
            rule = BusyRule(text)
        except ValueError:
            problems.append(((key,), f"expected busy, free or respect_transparency, got {text!r}"))
            continue
        if rule is BusyRule.RESPECT_TRANSPARENCY and key != "all_day":
            problems.append(
                (
                    (key,),
                    f"respect_transparency applies only to all_day; use busy or free for {key}",
                )
            )
            continue
        rules[key] = rule
    if problems:
        raise SpecError(problems)
    return dataclasses.replace(BusyRules(), **rules)


Busy = Annotated[
    BusyRules,
    PlainValidator(_busy_rules),
    PlainSerializer(lambda r: {k: getattr(r, k).value for k in _BUSY_KEYS}, when_used="json"),
    WithJsonSchema(
        {
            "type": "object",
            "properties": {
                k: {"enum": ["busy", "free", "respect_transparency"]} for k in _BUSY_KEYS
            },
            "additionalProperties": False,
        }
    ),
]

_EMAIL_RE = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+$")


def _email(value: str) -> str:
    cleaned = value.strip()
    if not _EMAIL_RE.match(cleaned):
        raise SpecError(f"expected an e-mail address like sam@corp.example, got {value!r}")
    # Lower-cased so look-ups, duplicate checks and provider results agree on one spelling.
    return cleaned.lower()


def _timezone(value: str) -> str:
    name = value.strip()
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        zones = sorted(zoneinfo.available_timezones())
        by_lower = {z.lower(): z for z in zones}
        close = [by_lower[name.lower()]] if name.lower() in by_lower else []
        close = close or difflib.get_close_matches(name, zones, n=1, cutoff=0.6)
        hint = f"did you mean '{close[0]}'?" if close else "use a name like Europe/London"
        raise SpecError(f"{value!r} is not an IANA time zone; {hint}") from None
    return name


Email = Annotated[str, PlainValidator(lambda v: _email(_text(v, "an e-mail address")))]
TimeZone = Annotated[str, PlainValidator(lambda v: _timezone(_text(v, "an IANA time zone")))]


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise SpecError(f"expected {what} as text, got {value!r}")
    return value


def _unknown_field(key: str, known: Iterable[str]) -> str:
    names = sorted(known)
    close = difflib.get_close_matches(key, names, n=1)
    if close:
        return f"unknown field '{key}'; did you mean '{close[0]}'?"
    return f"unknown field '{key}'; expected one of: {', '.join(names)}"


_TITLE_PLACEHOLDERS = frozenset(
    {"owner.first_name", "owner.name", "stakeholder.first_name", "stakeholder.name", "kind"}
)


def _check_template(text: str, allowed: frozenset[str]) -> str:
    choices = ", ".join("{" + p + "}" for p in sorted(allowed))
    try:
        parts = list(string.Formatter().parse(text))
    except ValueError:
        raise SpecError(
            f"unbalanced brace in {text!r}; placeholders look like {{owner.first_name}}, and a "
            f"literal brace is written {{{{ or }}}}"
        ) from None
    for _, field, spec, conversion in parts:
        if field is None:
            continue
        if field not in allowed or spec or conversion:
            raise SpecError(f"unknown placeholder {{{field}}} in {text!r}; use one of {choices}")
    return text


# --------------------------------------------------------------------------- shared by the models


def _as_list(value: Any) -> Any:
    """Let a single value stand for a one-item list (``windows: "10:00-11:30"``)."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, date):
        return [value]
    return value


def _as_tuple_of_text(value: Any) -> Any:
    return (value,) if isinstance(value, str) else value


def _fits(duration: timedelta, ranges: Iterable[TimeRange]) -> bool:
    return any(r.duration >= duration for r in ranges)


def _all_ranges(hours: WeeklyHours) -> list[TimeRange]:
    return [r for ranges in hours.days.values() for r in ranges]


def _domain(email: str) -> str:
    return email.rsplit("@", 1)[-1].lower()


def _outside(email: str, domains: list[str], fix: str) -> str:
    return (
        f"{email} is outside allowed_domains ({', '.join(domains)}); {fix} or add "
        f"'{_domain(email)}' to allowed_domains"
    )
