"""``notify:`` in the policy: when the owner gets the digest e-mail, and which events also send
an immediate short notice.

``notify: {digest: "mon 08:30", on: [proposal, declined, conflict, expired]}``

``digest`` is a weekday (``mon`` … ``sun``) or ``daily``, then ``HH:MM`` on the owner's clock;
absent or null means no digest. :func:`next_digest_at` turns it into the next moment in UTC,
DST-correct: 08:30 local stays 08:30 local on both sides of a change; a local time that does not
exist that day (in the spring-forward gap) moves forward by the gap; an ambiguous one (in the
autumn overlap) is the first of the two.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import Field, PlainSerializer, PlainValidator, WithJsonSchema, model_validator

from scheduler.core.durations import SpecError
from scheduler.core.model import WEEKDAYS
from scheduler.core.policy.people import Section

__all__ = [
    "NOTICE_EVENTS",
    "DigestSchedule",
    "DigestTime",
    "NoticeEvent",
    "Notify",
    "next_digest_at",
    "on_schedule",
    "parse_digest_time",
]

#: The events ``notify.on`` may name: each sends one short notice e-mail when it happens.
NoticeEvent = Literal["proposal", "declined", "conflict", "expired"]
NOTICE_EVENTS: tuple[str, ...] = ("proposal", "declined", "conflict", "expired")


@dataclass(frozen=True, slots=True)
class DigestTime:
    """A digest schedule: ``weekday`` 0 = Monday (None: every day) at ``at``, wall clock."""

    weekday: int | None
    at: time

    def __str__(self) -> str:
        day = "daily" if self.weekday is None else WEEKDAYS[self.weekday]
        return f"{day} {self.at:%H:%M}"


_DIGEST_RE = re.compile(r"^\s*([A-Za-z]+)\s+(\d{1,2}):(\d{2})\s*$")


def parse_digest_time(value: Any) -> DigestTime:
    """``"mon 08:30"`` or ``"daily 07:00"`` -> :class:`DigestTime`."""
    if isinstance(value, DigestTime):
        return value
    example = 'like "mon 08:30" or "daily 07:45" (a weekday mon..sun or daily, then HH:MM)'
    if not isinstance(value, str):
        raise SpecError(f"expected a digest time {example}, got {value!r}")
    match = _DIGEST_RE.match(value)
    if match is None:
        raise SpecError(f"expected a digest time {example}, got {value!r}")
    day, hour, minute = match.group(1).lower(), int(match.group(2)), int(match.group(3))
    if day != "daily" and day not in WEEKDAYS:
        raise SpecError(
            f"unknown day {match.group(1)!r} in {value!r}; use one of "
            f"{', '.join(WEEKDAYS)} or daily"
        )
    if hour > 23 or minute > 59:
        raise SpecError(
            f"{hour:02d}:{minute:02d} is not a time of day in {value!r}; use 00:00-23:59"
        )
    return DigestTime(None if day == "daily" else WEEKDAYS.index(day), time(hour, minute))


#: ``notify.digest``: ``mon 08:30`` / ``daily 07:00``, written back the same way.
DigestSchedule = Annotated[
    DigestTime,
    PlainValidator(parse_digest_time),
    PlainSerializer(str, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "examples": ["mon 08:30", "daily 07:45"]}),
]


def _notice_list(value: Any) -> Any:
    if isinstance(value, str):  # a single event stands for a one-item list
        return [value]
    return value


class Notify(Section):
    """``notify: {digest: "mon 08:30", on: [proposal, declined]}``: what the owner is e-mailed."""

    digest: DigestSchedule | None = None
    on: tuple[NoticeEvent, ...] = Field(default=())

    @model_validator(mode="before")
    @classmethod
    def _yaml_on_key(cls, data: Any) -> Any:
        # YAML 1.1 reads a bare ``on`` key as the boolean true: take it back as the field name.
        if isinstance(data, dict) and True in data and "on" not in data:
            data = {("on" if key is True else key): value for key, value in data.items()}
        if isinstance(data, dict) and "on" in data:
            data = {**data, "on": _notice_list(data["on"])}
        return data

    @model_validator(mode="after")
    def _no_repeats(self) -> Notify:
        seen: set[str] = set()
        for index, event in enumerate(self.on):
            if event in seen:
                raise SpecError([(("on", index), f"{event} is listed twice; list it once")])
            seen.add(event)
        return self


def next_digest_at(schedule: DigestTime, zone: str, after: datetime) -> datetime:
    """The first scheduled moment strictly after ``after``, in UTC.

    The local wall time is taken on each candidate day in ``zone`` (``fold=0``): an ambiguous
    time is its first occurrence, a nonexistent one lands after the gap (02:30 on a
    spring-forward night at 02:00 is 03:30).
    """
    tz = ZoneInfo(zone)
    day = after.astimezone(tz).date() - timedelta(days=1)
    for offset in range(10):
        candidate_day = day + timedelta(days=offset)
        if schedule.weekday is not None and candidate_day.weekday() != schedule.weekday:
            continue
        local = datetime.combine(candidate_day, schedule.at, tzinfo=tz)
        moment = local.astimezone(UTC)
        if moment > after:
            return moment
    raise AssertionError("unreachable: a weekly schedule recurs within 8 days")  # pragma: no cover


def on_schedule(schedule: DigestTime, zone: str, moment: datetime) -> bool:
    """Whether ``moment`` is one of the schedule's moments (a stored next digest still valid)."""
    return next_digest_at(schedule, zone, moment - timedelta(seconds=1)) == moment
