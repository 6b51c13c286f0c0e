"""The policy file: who a user's stakeholders are, how often to meet them, and when.

A policy is a YAML (``.yaml``/``.yml``) or TOML (``.toml``) file validated into :class:`Policy`.
Unknown keys are errors. :func:`load_policy` reads one file and raises
:class:`~scheduler.core.errors.PolicyError` carrying *every* problem found, each with the file, the
line, the field path (``stakeholders[2].tier``) and a message that says how to fix it.

Validation runs in one pydantic pass: every field error is collected. Checks that span fields
(tier defined, e-mail domain allowed, duplicates, meeting fits the hours) run as soon as the fields
they depend on are valid, so a file with many mistakes reports nearly all of them at once.

Wall-clock values (hours, windows, blackout dates) stay local; :mod:`scheduler.core.availability`
expands them in each person's IANA zone.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import itertools
import re
import string
import tomllib
import types
import typing
import zoneinfo
from bisect import bisect_right
from collections.abc import Iterable, Mapping
from datetime import date, time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails

from scheduler.core.durations import (
    SpecError,
    SubPath,
    format_duration,
    format_time_ranges,
    format_weekly_hours,
    parse_date_range,
    parse_duration,
    parse_time_range,
    parse_weekdays,
    parse_weekly_hours,
)
from scheduler.core.errors import PolicyError, PolicyIssue
from scheduler.core.model import (
    WEEKDAYS,
    BusyRule,
    BusyRules,
    DateRange,
    Person,
    TimeRange,
    WeeklyHours,
)

__all__ = [
    "Availability",
    "CalendarRef",
    "Etiquette",
    "LineIndex",
    "MeetingDefaults",
    "Owner",
    "Policy",
    "Stakeholder",
    "StakeholderDefaults",
    "Tier",
    "line_index",
    "load_policy",
    "load_policy_text",
    "policy_to_data",
    "validate_policy_files",
]

Mode = Literal["auto", "propose"]
PolicyFormat = Literal["yaml", "toml"]
#: A location in the policy document: mapping keys and list indices, e.g. ``("stakeholders", 2)``.
DocPath = tuple[str | int, ...]

# --------------------------------------------------------------------------- field types


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


# --------------------------------------------------------------------------- the models


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Owner(_Section):
    """The user whose calendar books the meetings."""

    email: Email
    name: str
    timezone: TimeZone

    @property
    def person(self) -> Person:
        return Person(self.email, self.name, self.timezone)

    @property
    def first_name(self) -> str:
        return self.person.first_name


class CalendarRef(_Section):
    """Where the owner's calendar lives. ``url`` is the ICS feed or CalDAV collection."""

    provider: Literal["google", "microsoft", "caldav", "ics"] = "ics"
    url: str | None = None
    calendar_id: str | None = None


class MeetingDefaults(_Section):
    """What gets booked. Templates may use {owner.first_name}, {stakeholder.name}, {kind}…

    ``description`` also accepts ``{reason}``. Neither ever carries notes, tiers or power: invites
    are visible to the stakeholder.
    """

    kind: Literal["coffee", "lunch"] = "coffee"
    duration: MeetingLength = timedelta(minutes=30)
    location: str | None = None
    video: Literal["meet", "teams", "none"] = "none"
    title: str = "Coffee: {owner.first_name} / {stakeholder.first_name}"
    description: str | None = None

    @field_validator("title")
    @classmethod
    def _title(cls, value: str) -> str:
        if not value.strip():
            raise SpecError("expected a non-empty title like 'Coffee: {owner.first_name}'")
        return _check_template(value, _TITLE_PLACEHOLDERS)

    @field_validator("description")
    @classmethod
    def _description(cls, value: str | None) -> str | None:
        return None if value is None else _check_template(value, _TITLE_PLACEHOLDERS | {"reason"})

    def render_title(self, owner: Person, stakeholder: Person) -> str:
        """The invite title with placeholders filled in."""
        return self.title.format(owner=owner, stakeholder=stakeholder, kind=self.kind)

    def render_description(self, owner: Person, stakeholder: Person, reason: str = "") -> str:
        """The invite body with placeholders filled in; empty when no template is set."""
        if self.description is None:
            return ""
        return self.description.format(
            owner=owner, stakeholder=stakeholder, kind=self.kind, reason=reason
        )


def _default_hours() -> WeeklyHours:
    return WeeklyHours({day: (TimeRange(time(9), time(17)),) for day in range(5)})


def _as_list(value: Any) -> Any:
    """Let a single value stand for a one-item list (``windows: "10:00-11:30"``)."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, date):
        return [value]
    return value


class Availability(_Section):
    """When the owner is willing to meet. Times are wall clock in the owner's zone.

    Attributes:
        min_notice: earliest start after planning (zero allowed).
        horizon: how far ahead to look for a slot.
        buffer: free time kept before and after each meeting (zero allowed).
    """

    working_hours: Hours = Field(default_factory=_default_hours)
    windows: tuple[Window, ...] = ()
    lunch_window: Window = TimeRange(time(11, 30), time(14, 0))
    min_notice: OptionalDelay = timedelta(days=1)
    horizon: Duration = timedelta(days=14)
    buffer: OptionalDelay = timedelta(minutes=10)
    max_per_day: int = Field(1, ge=1)
    max_per_week: int = Field(3, ge=1)
    no_meeting_days: Weekdays = frozenset()
    blackout: tuple[Blackout, ...] = ()
    busy: Busy = BusyRules()

    _single_to_list = field_validator("windows", "blackout", mode="before")(_as_list)

    @field_validator("windows")
    @classmethod
    def _windows_apart(cls, value: tuple[TimeRange, ...]) -> tuple[TimeRange, ...]:
        ordered = sorted(value)
        for before, after in itertools.pairwise(ordered):
            if after.start < before.end:
                raise SpecError(f"window {before} overlaps {after}; merge them or separate them")
        return tuple(ordered)

    @model_validator(mode="after")
    def _consistent(self) -> Availability:
        problems: list[tuple[SubPath, str]] = []
        if self.horizon <= self.min_notice:
            problems.append(
                (
                    ("horizon",),
                    f"horizon ({format_duration(self.horizon)}) must be longer than min_notice "
                    f"({format_duration(self.min_notice)}), or no slot can ever be found",
                )
            )
        meeting_days = set(self.working_hours.days) - self.no_meeting_days
        if not meeting_days:
            problems.append(
                (
                    ("no_meeting_days",),
                    "no_meeting_days covers every working day; leave at least one day to meet",
                )
            )
        if problems:
            raise SpecError(problems)
        return self


class StakeholderDefaults(_Section):
    """Fallbacks for stakeholders whose entry does not say."""

    timezone: TimeZone | None = None
    working_hours: Hours | None = None


class Tier(_Section):
    """How often to meet everyone in the tier, and whether booking needs approval."""

    every: Duration
    mode: Mode = "propose"


def _as_tuple_of_text(value: Any) -> Any:
    return (value,) if isinstance(value, str) else value


class Stakeholder(_Section):
    """One person the owner wants to keep in touch with.

    ``notes``, ``tier`` and ``power`` are private to the owner and never go into invites.
    """

    email: Email
    name: str
    tier: str
    timezone: TimeZone | None = None
    working_hours: Hours | None = None
    department: str | None = None
    power: tuple[str, ...] = ()
    senior: bool = False
    paused_until: date | None = None
    mode: Mode | None = None
    notes: str | None = None

    _power_list = field_validator("power", mode="before")(_as_tuple_of_text)


class Etiquette(_Section):
    """Limits that keep outreach polite.

    Attributes:
        decline_backoff: after a decline, wait this fraction of the tier interval before retrying.
        max_unanswered: stop inviting someone after this many unanswered invites in a row.
        max_per_stakeholder_per_week: invitations to one person per week, at most.
    """

    decline_backoff: float = Field(0.5, gt=0)
    max_unanswered: int = Field(3, ge=1)
    max_per_stakeholder_per_week: int = Field(1, ge=1)


def _fits(duration: timedelta, ranges: Iterable[TimeRange]) -> bool:
    return any(r.duration >= duration for r in ranges)


def _all_ranges(hours: WeeklyHours) -> list[TimeRange]:
    return [r for ranges in hours.days.values() for r in ranges]


class Policy(_Section):
    """One user's policy file. ``tiers`` are in priority order (first = most important).

    Fields are validated in declaration order; cross-field checks in a field's validator see the
    fields declared before it (``info.data``), which is why ``allowed_domains`` comes first.
    """

    allowed_domains: list[str] = Field(default_factory=list)
    owner: Owner
    calendar: CalendarRef = CalendarRef()
    availability: Availability = Availability()
    meeting: MeetingDefaults = MeetingDefaults()
    stakeholder_defaults: StakeholderDefaults = StakeholderDefaults()
    tiers: dict[str, Tier] = Field(default_factory=dict)
    stakeholders: list[Stakeholder] = Field(default_factory=list)
    etiquette: Etiquette = Etiquette()

    _source: str = PrivateAttr("<memory>")
    _content_hash: str = PrivateAttr("")

    @model_validator(mode="before")
    @classmethod
    def _owner_domain_by_default(cls, data: Any) -> Any:
        # Without allowed_domains, only the owner's own domain may be invited: the safe default.
        if isinstance(data, Mapping) and "allowed_domains" not in data:
            owner = data.get("owner")
            email = owner.get("email") if isinstance(owner, Mapping) else getattr(owner, "email", 0)
            if isinstance(email, str) and _EMAIL_RE.match(email.strip()):
                return {**data, "allowed_domains": [email.rsplit("@", 1)[1]]}
        return data

    @field_validator("allowed_domains")
    @classmethod
    def _domains(cls, value: list[str]) -> list[str]:
        if not value:
            raise SpecError(
                "list at least one domain like [corp.example], or leave allowed_domains out to "
                "allow only the owner's domain"
            )
        problems: list[tuple[SubPath, str]] = []
        cleaned: list[str] = []
        for index, domain in enumerate(value):
            name = domain.strip().lstrip("@").lower()
            if not re.fullmatch(r"[a-z0-9-]+(\.[a-z0-9-]+)+", name):
                problems.append(((index,), f"expected a domain like corp.example, got {domain!r}"))
            cleaned.append(name)
        if problems:
            raise SpecError(problems)
        return cleaned

    @field_validator("owner")
    @classmethod
    def _owner_in_domain(cls, value: Owner, info: ValidationInfo) -> Owner:
        domains = info.data.get("allowed_domains")
        if domains and _domain(value.email) not in domains:
            raise SpecError(
                [(("email",), _outside(value.email, domains, "the owner must be in one of them"))]
            )
        return value

    @field_validator("meeting")
    @classmethod
    def _meeting_fits(cls, value: MeetingDefaults, info: ValidationInfo) -> MeetingDefaults:
        availability = info.data.get("availability")
        if availability is None:
            return value
        length = format_duration(value.duration)
        problems: list[tuple[SubPath, str]] = []
        if availability.windows and not _fits(value.duration, availability.windows):
            problems.append(
                (
                    ("duration",),
                    f"a {length} meeting is longer than every preferred window "
                    f"({format_time_ranges(availability.windows)}); shorten meeting.duration or "
                    f"widen availability.windows",
                )
            )
        if not _fits(value.duration, _all_ranges(availability.working_hours)):
            problems.append(
                (
                    ("duration",),
                    f"a {length} meeting is longer than every working-hours range; shorten "
                    f"meeting.duration or lengthen availability.working_hours",
                )
            )
        if value.kind == "lunch" and value.duration > availability.lunch_window.duration:
            problems.append(
                (
                    ("duration",),
                    f"a {length} lunch does not fit the lunch window "
                    f"{availability.lunch_window}; shorten meeting.duration or widen "
                    f"availability.lunch_window",
                )
            )
        if problems:
            raise SpecError(problems)
        return value

    @field_validator("stakeholders", mode="wrap")
    @classmethod
    def _stakeholders_consistent(
        cls, value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo
    ) -> list[Stakeholder]:
        try:
            people: list[Stakeholder] = handler(value)
        except ValidationError as exc:
            # One bad entry must not hide cross-field problems in the others (an undefined tier
            # in entry 3 while entry 5 has a bad zone): check the entries that are valid alone.
            if not isinstance(value, list):
                raise
            alone = [(i, _valid_stakeholder(raw)) for i, raw in enumerate(value)]
            found = _stakeholder_problems([(i, s) for i, s in alone if s is not None], info.data)
            if not found:
                raise
            details: list[InitErrorDetails] = [
                InitErrorDetails(type=e["type"], loc=e["loc"], input=e["input"], ctx=e["ctx"])
                if "ctx" in e
                else InitErrorDetails(type=e["type"], loc=e["loc"], input=e["input"])
                for e in exc.errors()
            ]
            details.append(
                InitErrorDetails(type="value_error", loc=(), input=value, ctx={"error": found})
            )
            raise ValidationError.from_exception_data(exc.title, details) from None
        found = _stakeholder_problems(list(enumerate(people)), info.data)
        if found:
            raise found
        return people

    # -- what the planner asks ------------------------------------------------------------

    @property
    def source(self) -> str:
        """The file the policy was loaded from (``<memory>`` when built in code)."""
        return self._source

    @property
    def content_hash(self) -> str:
        """SHA-256 (hex) of the file's bytes; changes whenever the file does."""
        return self._content_hash

    def person_of(self, s: Stakeholder) -> Person:
        """The stakeholder as a Person; zone: their own, the defaults', else the owner's."""
        zone = s.timezone or self.stakeholder_defaults.timezone or self.owner.timezone
        return Person(s.email, s.name, zone)

    def hours_explicit(self, s: Stakeholder) -> bool:
        """Whether the policy gives ``s`` working hours (otherwise provider hours may be used)."""
        return s.working_hours is not None or self.stakeholder_defaults.working_hours is not None

    def hours_of(self, s: Stakeholder) -> WeeklyHours:
        """The stakeholder's working hours: their own, the defaults', else the owner's."""
        if s.working_hours is not None:
            return s.working_hours
        if self.stakeholder_defaults.working_hours is not None:
            return self.stakeholder_defaults.working_hours
        return self.availability.working_hours

    def tier_of(self, s: Stakeholder) -> Tier:
        return self.tiers[s.tier]

    def mode_of(self, s: Stakeholder) -> Mode:
        """Explicit ``mode`` wins; senior people default to ``propose``; else the tier's mode."""
        if s.mode is not None:
            return s.mode
        if s.senior:
            return "propose"
        return self.tier_of(s).mode

    def tier_rank(self, name: str) -> int:
        """Priority of a tier, 0 = first defined = most important.

        Raises:
            KeyError: no tier of that name.
        """
        for rank, tier_name in enumerate(self.tiers):
            if tier_name == name:
                return rank
        raise KeyError(name)

    def stakeholder(self, email: str) -> Stakeholder | None:
        """The stakeholder with this e-mail (case-insensitive), if listed."""
        wanted = email.strip().lower()
        return next((s for s in self.stakeholders if s.email == wanted), None)


def _valid_stakeholder(raw: Any) -> Stakeholder | None:
    try:
        return Stakeholder.model_validate(raw)
    except ValidationError:
        return None


def _stakeholder_problems(
    people: list[tuple[int, Stakeholder]], data: Mapping[str, Any]
) -> SpecError | None:
    """Checks across fields, given the policy fields validated so far (``info.data``)."""
    tiers: dict[str, Tier] | None = data.get("tiers")
    domains: list[str] | None = data.get("allowed_domains")
    owner: Owner | None = data.get("owner")
    meeting: MeetingDefaults | None = data.get("meeting")
    problems: list[tuple[SubPath, str]] = []
    first_seen: dict[str, int] = {}
    for index, person in people:
        if tiers is not None and person.tier not in tiers:
            problems.append(((index, "tier"), _undefined_tier(person.tier, tiers)))
        if domains and _domain(person.email) not in domains:
            problems.append(((index, "email"), _outside(person.email, domains, "fix the address")))
        if owner is not None and person.email == owner.email:
            message = f"{person.email} is the owner's own address; remove this stakeholder"
            problems.append(((index, "email"), message))
        if person.email in first_seen:
            message = (
                f"{person.email} is listed twice (first as "
                f"stakeholders[{first_seen[person.email]}]); keep one entry"
            )
            problems.append(((index, "email"), message))
        else:
            first_seen[person.email] = index
        if (
            meeting is not None
            and person.working_hours is not None
            and not _fits(meeting.duration, _all_ranges(person.working_hours))
        ):
            message = (
                f"a {format_duration(meeting.duration)} meeting fits in none of these "
                f"working-hours ranges; lengthen them or shorten meeting.duration"
            )
            problems.append(((index, "working_hours"), message))
    return SpecError(problems) if problems else None


def _domain(email: str) -> str:
    return email.rsplit("@", 1)[-1].lower()


def _outside(email: str, domains: list[str], fix: str) -> str:
    return (
        f"{email} is outside allowed_domains ({', '.join(domains)}); {fix} or add "
        f"'{_domain(email)}' to allowed_domains"
    )


def _undefined_tier(name: str, tiers: Mapping[str, Tier]) -> str:
    if not tiers:
        return (
            f"unknown tier '{name}'; no tiers are defined — add a tiers: section like "
            f"{{peer: {{every: 8w}}}}"
        )
    close = difflib.get_close_matches(name, list(tiers), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"unknown tier '{name}'; defined tiers: {', '.join(tiers)}{hint}"


def policy_to_data(policy: Policy) -> dict[str, Any]:
    """The policy as plain file-shaped data (durations as ``30m``…), ready for YAML or JSON."""
    return policy.model_dump(mode="json", exclude_none=True)


# --------------------------------------------------------------------------- line numbers


class LineIndex(Protocol):
    """Maps a document path to a 1-based line; missing paths fall back to their nearest parent."""

    def line_of(self, path: DocPath) -> int: ...


class _Lines:
    """Shared look-up: the nearest recorded ancestor of a path."""

    def __init__(self) -> None:
        self.lines: dict[DocPath, int] = {(): 1}

    def record(self, path: DocPath, line: int) -> None:
        self.lines.setdefault(path, line)

    def line_of(self, path: DocPath) -> int:
        while path not in self.lines:
            path = path[:-1]
        return self.lines[path]


class _YamlLines(_Lines):
    """Line numbers from PyYAML's node tree; also notes duplicate keys YAML silently merges."""

    def __init__(self, root: yaml.Node | None) -> None:
        super().__init__()
        self.duplicates: list[tuple[DocPath, str]] = []
        if root is not None:
            self.lines[()] = root.start_mark.line + 1
            self._walk(root, ())

    def _walk(self, node: yaml.Node, path: DocPath) -> None:
        if isinstance(node, yaml.MappingNode):
            seen: dict[str, int] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    continue
                key, line = str(key_node.value), key_node.start_mark.line + 1
                if key in seen and key != "<<":
                    self.duplicates.append(
                        (
                            (*path, key),
                            f"duplicate key '{key}' (first at line {seen[key]}); YAML would keep "
                            f"only the last one — remove or merge one of them",
                        )
                    )
                    self.lines[(*path, key)] = line
                seen.setdefault(key, line)
                self.record((*path, key), line)
                self._walk(value_node, (*path, key))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self.record((*path, index), item.start_mark.line + 1)
                self._walk(item, (*path, index))


class _TomlLines(_Lines):
    """Line numbers for TOML, which :mod:`tomllib` does not report.

    A small structural scanner over text that tomllib has already accepted: it follows table
    headers (``[[stakeholders]]`` counted per array), ``key = value`` lines, inline tables and
    arrays. Anything it cannot follow just leaves that path to fall back to its parent.
    """

    _BARE = re.compile(r"[A-Za-z0-9_-]+")
    _SCALAR = re.compile(r"[^,\]}\n#]*")  # numbers, booleans, dates: up to a delimiter

    def __init__(self, text: str) -> None:
        super().__init__()
        self._text = text
        self._i = 0
        self._newlines = [m.start() for m in re.finditer("\n", text)]
        self._counts: dict[DocPath, int] = {}
        try:
            self._document()
        except (IndexError, ValueError):
            pass  # best effort: recorded lines stay, the rest fall back to parents

    def _line(self) -> int:
        return bisect_right(self._newlines, self._i - 1) + 1

    def _peek(self, n: int = 1) -> str:
        return self._text[self._i : self._i + n]

    def _skip(self, newlines: bool) -> None:
        while self._i < len(self._text):
            c = self._text[self._i]
            if c in " \t\r" or (newlines and c == "\n"):
                self._i += 1
            elif c == "#":
                end = self._text.find("\n", self._i)
                self._i = len(self._text) if end < 0 else end
            else:
                return

    def _expect(self, token: str) -> None:
        self._skip(newlines=False)
        if not self._text.startswith(token, self._i):
            raise ValueError(f"expected {token!r} at {self._i}")
        self._i += len(token)

    def _key(self) -> tuple[str, ...]:
        parts: list[str] = []
        while True:
            self._skip(newlines=False)
            c = self._peek()
            if c in ('"', "'"):
                end = self._text.index(c, self._i + 1)
                while c == '"' and self._text[end - 1] == "\\":
                    end = self._text.index(c, end + 1)
                parts.append(self._text[self._i + 1 : end])
                self._i = end + 1
            else:
                match = self._BARE.match(self._text, self._i)
                if match is None:
                    raise ValueError(f"no key at {self._i}")
                parts.append(match.group())
                self._i = match.end()
            self._skip(newlines=False)
            if self._peek() != ".":
                return tuple(parts)
            self._i += 1

    def _resolve(self, key: tuple[str, ...]) -> DocPath:
        # A header below an array of tables refers to that array's latest element.
        out: DocPath = ()
        for part in key:
            out = (*out, part)
            if out in self._counts:
                out = (*out, self._counts[out])
        return out

    def _document(self) -> None:
        table: DocPath = ()
        while True:
            self._skip(newlines=True)
            if self._i >= len(self._text):
                return
            line = self._line()
            if self._peek(2) == "[[":
                self._i += 2
                key = self._key()
                self._expect("]]")
                array = (*self._resolve(key[:-1]), key[-1])
                self._counts[array] = self._counts.get(array, -1) + 1
                table = (*array, self._counts[array])
                self.record(array, line)
                self.record(table, line)
            elif self._peek() == "[":
                self._i += 1
                key = self._key()
                self._expect("]")
                table = self._resolve(key)
                for depth in range(1, len(table) + 1):
                    self.record(table[:depth], line)
            else:
                self._pair(table)

    def _pair(self, table: DocPath) -> None:
        line = self._line()
        key = self._key()
        self._expect("=")
        path = (*table, *key)
        for depth in range(len(table) + 1, len(path) + 1):
            self.record(path[:depth], line)
        self._value(path)

    def _value(self, path: DocPath) -> None:
        self._skip(newlines=False)
        c = self._peek()
        if c == "{":
            self._i += 1
            while True:
                self._skip(newlines=True)
                if self._peek() == "}":
                    self._i += 1
                    return
                self._pair(path)
                self._skip(newlines=True)
                if self._peek() == ",":
                    self._i += 1
        elif c == "[":
            self._i += 1
            index = 0
            while True:
                self._skip(newlines=True)
                if self._peek() == "]":
                    self._i += 1
                    return
                self.record((*path, index), self._line())
                self._value((*path, index))
                index += 1
                self._skip(newlines=True)
                if self._peek() == ",":
                    self._i += 1
        elif c in ('"', "'"):
            quote = c * 3 if self._peek(3) == c * 3 else c
            end = self._i + len(quote)
            while True:
                end = self._text.index(quote, end)
                if c == '"' and self._text[end - 1] == "\\" and self._text[end - 2] != "\\":
                    end += 1
                    continue
                break
            self._i = end + len(quote)
        else:
            match = self._SCALAR.match(self._text, self._i)
            self._i = match.end() if match else self._i + 1


def line_index(text: str, fmt: PolicyFormat) -> LineIndex:
    """Where each path of a policy document is written (1-based lines), for either format.

    Text that does not parse gets an index that answers line 1 for every path.
    """
    if fmt == "toml":
        return _TomlLines(text)
    try:
        return _YamlLines(yaml.compose(text, Loader=yaml.SafeLoader))
    except yaml.YAMLError:
        return _Lines()


# --------------------------------------------------------------------------- errors → issues


def _unwrap(annotation: Any) -> Any:
    """Strip ``Annotated`` and ``X | None`` down to the type pydantic walks into."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            rest = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(rest) != 1:
                return annotation
            annotation = rest[0]
        else:
            return annotation


def _doc_path(loc: tuple[int | str, ...]) -> tuple[DocPath, type[BaseModel] | None]:
    """Turn a pydantic ``loc`` into a document path; also the model holding its last key.

    Pydantic adds type tags to locs (``str``, ``function-plain[...]``); they are not keys in
    the document, so walking the declared types drops them.
    """
    path: list[str | int] = []
    current: Any = Policy
    holder: type[BaseModel] | None = None
    for part in loc:
        current = _unwrap(current)
        origin = typing.get_origin(current)
        if part == "[key]":  # pydantic's marker for "the key itself", e.g. a non-text key
            continue
        if isinstance(current, type) and issubclass(current, BaseModel):
            holder = current
            path.append(part)
            field = current.model_fields.get(part) if isinstance(part, str) else None
            current = field.annotation if field is not None else None
        elif origin in (list, tuple) and isinstance(part, int):
            path.append(part)
            current = typing.get_args(current)[0]
        elif origin is dict:
            path.append(part)
            current = typing.get_args(current)[1]
        else:
            current = None
    return tuple(path), holder


def _field_name(path: DocPath) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _message(error: Mapping[str, Any], holder: type[BaseModel] | None) -> str:
    kind: str = error["type"]
    ctx: Mapping[str, Any] = error.get("ctx") or {}
    got = error.get("input")
    key = error["loc"][-1] if error["loc"] else ""
    if kind == "extra_forbidden":
        known = holder.model_fields if holder is not None else ()
        return _unknown_field(str(key), known)
    if kind == "missing":
        return f"missing required field '{key}'; add it"
    if kind == "literal_error":
        return f"expected one of {ctx.get('expected')}, got {got!r}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"expected a mapping of fields (key: value), got {got!r}"
    if kind in ("list_type", "tuple_type", "set_type", "frozen_set_type"):
        return f"expected a list, got {got!r}"
    if kind.startswith("string_"):
        return f"expected text, got {got!r}"
    if kind.startswith("int_"):
        return f"expected a whole number, got {got!r}"
    if kind.startswith("float_"):
        return f"expected a number, got {got!r}"
    if kind.startswith("bool_"):
        return f"expected true or false, got {got!r}"
    if kind.startswith("date_"):
        return f"expected an ISO date like 2027-01-15, got {got!r}"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        bound = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<"}.get(kind, "<=")
        limit = next(iter(ctx.values()), "?")
        return f"expected a number {bound} {limit}, got {got!r}"
    if kind == "value_error" and "error" in ctx:
        return str(ctx["error"])
    return f"{error['msg']} (got {got!r})"


def _issues(exc: ValidationError, lines: LineIndex, source: str) -> list[PolicyIssue]:
    issues: list[PolicyIssue] = []
    for error in exc.errors():
        path, holder = _doc_path(error["loc"])
        cause = (error.get("ctx") or {}).get("error")
        found = cause.problems if isinstance(cause, SpecError) else (((), _message(error, holder)),)
        for sub, message in found:
            full = path + sub
            issues.append(PolicyIssue(source, lines.line_of(full), _field_name(full), message))
    return issues


# --------------------------------------------------------------------------- loading


@dataclasses.dataclass
class _Loaded:
    policy: Policy | None
    issues: list[PolicyIssue]
    lines: LineIndex


_TOML_LINE = re.compile(r"at line (\d+)")


def _parse(text: str, source: str, fmt: PolicyFormat) -> tuple[Any, _Lines, list[PolicyIssue]]:
    """Parse to plain data plus line numbers; syntax errors become issues, never tracebacks."""
    if fmt == "toml":
        try:
            data: Any = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            match = _TOML_LINE.search(str(exc))
            line = int(match.group(1)) if match else 1
            return None, _Lines(), [PolicyIssue(source, line, "", f"malformed TOML: {exc}")]
        return data, _TomlLines(text), []
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        line, reason = 1, str(exc)
        if isinstance(exc, yaml.MarkedYAMLError):
            mark = exc.problem_mark or exc.context_mark
            # An unclosed bracket is only noticed at the end of the file; the line where the
            # unfinished construct starts is the one to fix.
            if exc.context_mark is not None and (
                mark is None or mark.line + 1 > len(text.splitlines())
            ):
                mark = exc.context_mark
            line = mark.line + 1 if mark is not None else 1
            reason = " ".join(p for p in (exc.context, exc.problem) if p)
        message = f"malformed YAML: {reason}; check indentation, colons and quotes on this line"
        return None, _Lines(), [PolicyIssue(source, line, "", message)]
    lines = _YamlLines(root)
    duplicates = [
        PolicyIssue(source, lines.line_of(p), _field_name(p), m) for p, m in lines.duplicates
    ]
    return data, lines, duplicates


def _load_text(text: str, source: str, fmt: PolicyFormat, digest: str) -> _Loaded:
    empty = "the file is empty (no settings); expected a policy starting with owner: {...}"
    if not text.strip():
        return _Loaded(None, [PolicyIssue(source, 1, "", empty)], _Lines())
    data, lines, issues = _parse(text, source, fmt)
    if issues and data is None:
        return _Loaded(None, issues, lines)
    if data is None or data == {}:  # only comments: YAML gives None, TOML an empty table
        return _Loaded(None, [PolicyIssue(source, 1, "", empty)], lines)
    if not isinstance(data, dict):
        message = (
            f"expected a mapping of sections (owner, tiers, stakeholders, …) at the top level, "
            f"got {type(data).__name__}"
        )
        return _Loaded(None, [PolicyIssue(source, lines.line_of(()), "", message)], lines)
    try:
        policy = Policy.model_validate(data)
    except ValidationError as exc:
        issues += _issues(exc, lines, source)
        return _Loaded(None, sorted(issues, key=lambda i: i.line), lines)
    if issues:
        return _Loaded(None, issues, lines)
    policy._source = source
    policy._content_hash = digest
    return _Loaded(policy, [], lines)


def _format_of(path: Path) -> PolicyFormat | None:
    suffix = path.suffix.lower()
    return "yaml" if suffix in (".yaml", ".yml") else "toml" if suffix == ".toml" else None


def _load_file(path: Path) -> _Loaded:
    source = str(path)
    fmt = _format_of(path)
    if fmt is None:
        message = f"unsupported file type '{path.suffix}'; name the file *.yaml, *.yml or *.toml"
        return _Loaded(None, [PolicyIssue(source, 1, "", message)], _Lines())
    try:
        raw = path.read_bytes()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        message = f"cannot read the file ({reason}); check the path and its permissions"
        return _Loaded(None, [PolicyIssue(source, 1, "", message)], _Lines())
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        message = "the file is not UTF-8 text; save it as UTF-8"
        return _Loaded(None, [PolicyIssue(source, line, "", message)], _Lines())
    return _load_text(text, source, fmt, hashlib.sha256(raw).hexdigest())


def load_policy(path: Path) -> Policy:
    """Read and validate one policy file (``.yaml``, ``.yml`` or ``.toml``).

    Raises:
        PolicyError: listing every problem found, each with file, line, field and a fix.
    """
    loaded = _load_file(Path(path))
    if loaded.policy is None:
        raise PolicyError(loaded.issues)
    return loaded.policy


def load_policy_text(text: str, *, source: str, fmt: PolicyFormat) -> Policy:
    """Validate policy text; ``source`` names it in issues. ``content_hash`` hashes the UTF-8.

    Raises:
        PolicyError: as :func:`load_policy`.
    """
    loaded = _load_text(text, source, fmt, hashlib.sha256(text.encode("utf-8")).hexdigest())
    if loaded.policy is None:
        raise PolicyError(loaded.issues)
    return loaded.policy


def validate_policy_files(paths: Iterable[Path]) -> list[PolicyIssue]:
    """Check policy files (a directory stands for its ``*.yaml``/``*.yml``/``*.toml``).

    Never raises for bad input: unreadable files are issues too. Besides each file's own issues
    it reports an owner who has more than one policy file.
    """
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if _format_of(p) is not None)
        else:
            files.append(path)
    issues: list[PolicyIssue] = []
    owners: dict[str, str] = {}
    for path in files:
        loaded = _load_file(path)
        issues += loaded.issues
        if loaded.policy is None:
            continue
        email = loaded.policy.owner.email
        if email in owners:
            message = f"{email} already has a policy in {owners[email]}; keep one file per owner"
            line = loaded.lines.line_of(("owner", "email"))
            issues.append(PolicyIssue(str(path), line, "owner.email", message))
        else:
            owners[email] = str(path)
    return issues
