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
from collections.abc import Iterable, Mapping
from datetime import date, timedelta
from typing import Annotated, Any, Literal

from pydantic import PlainSerializer, PlainValidator, ValidationInfo, WithJsonSchema

from scheduler.core.durations import (
    LONGEST,
    DurationTooLong,
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
from scheduler.core.policy.limits import MAX_BUFFER, MAX_MEETING, PolicyLimits
from scheduler.core.policy.zones import check_zone

__all__ = [
    "Blackout",
    "BufferLength",
    "Busy",
    "Cadence",
    "Duration",
    "Email",
    "Horizon",
    "Hours",
    "MeetingLength",
    "Mode",
    "Notice",
    "OptionalDelay",
    "TimeZone",
    "Weekdays",
    "Window",
]

Mode = Literal["auto", "propose"]


def _duration(
    value: Any,
    *,
    allow_zero: bool = False,
    int_minutes: bool = False,
    at_most: timedelta = LONGEST,
) -> timedelta:
    if isinstance(value, timedelta):
        if value < timedelta(0) or (value == timedelta(0) and not allow_zero):
            raise SpecError(f"expected a duration greater than zero, got {_shown(value)}")
        if value > at_most:
            raise DurationTooLong(
                f"expected a duration of at most {format_duration(at_most)}, got {_shown(value)}"
            )
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        if int_minutes or (allow_zero and value == 0):  # a bare 0 needs no unit
            if value > at_most // timedelta(minutes=1):  # compared as numbers: no overflow
                raise DurationTooLong(
                    f"expected a duration of at most {format_duration(at_most)}, got {value} "
                    f"minutes"
                )
            if value < 0:
                raise SpecError(f"expected a duration greater than zero, got {value} minutes")
            return _duration(timedelta(minutes=value), allow_zero=allow_zero, at_most=at_most)
        raise SpecError(
            f"expected a duration like 30m, 2d or 4w, got the bare number {value}; add a unit "
            f"(m, h, d or w)"
        )
    return parse_duration(value, allow_zero=allow_zero, at_most=at_most)


def _shown(value: timedelta) -> str:
    try:
        return format_duration(value)
    except ValueError:  # not whole minutes
        return str(value)


_DEFAULT_LIMITS = PolicyLimits()


def policy_limits(info: ValidationInfo | None) -> PolicyLimits:
    """The limits a validation runs under: ``context={"limits": ...}``, else the defaults."""
    context = info.context if info is not None else None
    limits = context.get("limits") if isinstance(context, Mapping) else None
    return limits if isinstance(limits, PolicyLimits) else _DEFAULT_LIMITS


def _ranged(
    value: Any,
    *,
    low: timedelta,
    high: timedelta,
    message: str,
    allow_zero: bool = False,
    int_minutes: bool = False,
) -> timedelta:
    """A duration between ``low`` and ``high``; ``message`` (naming the range) otherwise."""
    try:
        got = _duration(value, allow_zero=allow_zero, int_minutes=int_minutes, at_most=high)
    except DurationTooLong:
        got = None
    if got is None or got < low:
        raise SpecError(f"{message}, got {_given(value)}")
    return got


def _given(value: Any) -> str:
    if isinstance(value, timedelta):
        return _shown(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value} minutes"
    return repr(value)


def _cadence(value: Any, info: ValidationInfo) -> timedelta:
    limits = policy_limits(info)
    return _ranged(
        value,
        low=limits.min_every,
        high=limits.max_every,
        message=f"expected a cadence {limits.every_range()} (like 4w or 90d)",
    )


def _horizon(value: Any, info: ValidationInfo) -> timedelta:
    most = policy_limits(info).max_horizon
    return _ranged(
        value,
        low=timedelta(minutes=1),
        high=most,
        message=f"expected a horizon of at most {format_duration(most)} (like 14d or 4w)",
    )


def _notice(value: Any, info: ValidationInfo) -> timedelta:
    most = policy_limits(info).max_horizon
    return _ranged(
        value,
        low=timedelta(0),
        high=most,
        allow_zero=True,
        message=f"expected a notice of at most {format_duration(most)} (like 1d, or 0)",
    )


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
#: A positive duration; a bare integer means minutes (``duration: 45``). At most a day.
MeetingLength = Annotated[
    timedelta,
    PlainValidator(
        lambda v: _ranged(
            v,
            low=timedelta(minutes=1),
            high=MAX_MEETING,
            int_minutes=True,
            message=f"expected a meeting of at most {format_duration(MAX_MEETING)} (like 30m)",
        )
    ),
    _AS_DURATION_TEXT,
    WithJsonSchema({"type": ["string", "integer"], "examples": ["30m", 45]}),
]
#: A tier's ``every``: between ``min_every`` and ``max_every`` of the :class:`PolicyLimits`.
Cadence = Annotated[timedelta, PlainValidator(_cadence), _AS_DURATION_TEXT, _DURATION_SCHEMA]
#: ``availability.horizon``: positive, at most ``max_horizon``.
Horizon = Annotated[timedelta, PlainValidator(_horizon), _AS_DURATION_TEXT, _DURATION_SCHEMA]
#: ``availability.min_notice``: zero allowed, at most ``max_horizon``.
Notice = Annotated[timedelta, PlainValidator(_notice), _AS_DURATION_TEXT, _DURATION_SCHEMA]
#: ``availability.buffer``: zero allowed, at most a day.
BufferLength = Annotated[
    timedelta,
    PlainValidator(
        lambda v: _ranged(
            v,
            low=timedelta(0),
            high=MAX_BUFFER,
            allow_zero=True,
            message=f"expected a buffer of at most {format_duration(MAX_BUFFER)} (like 10m, or 0)",
        )
    ),
    _AS_DURATION_TEXT,
    _DURATION_SCHEMA,
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


Email = Annotated[str, PlainValidator(lambda v: _email(_text(v, "an e-mail address")))]
#: An IANA region name (``Europe/London``) or ``UTC``; abbreviations, fixed offsets and old
#: aliases are refused with the likely region names (:mod:`scheduler.core.policy.zones`).
TimeZone = Annotated[str, PlainValidator(lambda v: check_zone(_text(v, "an IANA time zone")))]


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
