"""The policy models: :class:`Policy` and its sections (owner, tiers, stakeholders, …).

Unknown keys are errors. Validation runs in one pydantic pass: every field error is collected.
Checks that span fields (tier defined, e-mail domain allowed, duplicates, meeting fits the hours)
run as soon as the fields they depend on are valid, so a file with many mistakes reports nearly
all of them at once.

Wall-clock values (hours, windows, blackout dates) stay local; :mod:`scheduler.core.availability`
expands them in each person's IANA zone.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from datetime import time, timedelta
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BeforeValidator,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails

from scheduler.core.durations import SpecError, SubPath, format_duration, format_time_ranges
from scheduler.core.model import BusyRules, Person, TimeRange, WeeklyHours
from scheduler.core.policy.fields import (
    _EMAIL_RE,
    _TITLE_PLACEHOLDERS,
    Blackout,
    BufferLength,
    Busy,
    Email,
    Horizon,
    Hours,
    MeetingLength,
    Mode,
    Notice,
    TimeZone,
    Weekdays,
    Window,
    _all_ranges,
    _as_list,
    _check_template,
    _domain,
    _fits,
    _outside,
)
from scheduler.core.policy.groups import (
    Group,
    Introductions,
    group_problems,
    introduction_problems,
    unparsed_group_problems,
)
from scheduler.core.policy.insights import Insights, check_power_sources
from scheduler.core.policy.meetings import merge_meeting, tier_meeting_problems
from scheduler.core.policy.notify import Notify
from scheduler.core.policy.people import Section as _Section
from scheduler.core.policy.people import (
    Stakeholder,
    StakeholderDefaults,
    Tier,
    stakeholder_problems,
    valid_stakeholder,
)
from scheduler.core.policy.reschedule import RescheduleRule

__all__ = [
    "Availability",
    "CalendarRef",
    "Etiquette",
    "Group",
    "Introductions",
    "MeetingDefaults",
    "Notify",
    "Owner",
    "Policy",
    "Stakeholder",
    "StakeholderDefaults",
    "Tier",
]


class Owner(_Section):
    """The user whose calendar books the meetings."""

    email: Email
    name: str
    timezone: TimeZone
    #: The owner's own department: the report counts meetings outside it (private).
    department: str | None = None

    @property
    def person(self) -> Person:
        return Person(self.email, self.name, self.timezone)

    @property
    def first_name(self) -> str:
        return self.person.first_name


def _http_url(value: str) -> str:
    """``value`` when it is an http:// or https:// URL with a host (and a valid port)."""
    try:
        parts = urlsplit(value)
        ok = parts.scheme.lower() in ("http", "https") and bool(parts.hostname)
        ok = ok and (parts.port is None or parts.port > 0)
    except ValueError:  # a port that is no number, a broken IPv6 address
        ok = False
    if ok and not any(char.isspace() or not char.isprintable() for char in value):
        return value
    hint = ""
    if value.lower().startswith("webcal://"):
        rest = value[len("webcal://") :]
        hint = f" (webcal:// feeds are read over https://: write https://{rest})"
    raise SpecError(
        "expected an http:// or https:// URL with a host, like https://caldav.corp.example/dav/, "
        f"got {value!r}{hint}"
    )


class CalendarRef(_Section):
    """Where the owner's calendar lives. ``url`` is the ICS feed or CalDAV collection."""

    provider: Literal["google", "microsoft", "caldav", "ics"] = "ics"
    url: str | None = None
    calendar_id: str | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else _http_url(value)


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
    min_notice: Notice = timedelta(days=1)
    horizon: Horizon = timedelta(days=14)
    buffer: BufferLength = timedelta(minutes=10)
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


class Etiquette(_Section):
    """Limits that keep outreach polite.

    Attributes:
        decline_backoff: after a decline, wait this fraction of the tier interval before retrying.
        max_unanswered: stop inviting someone after this many unanswered invites in a row.
        max_per_stakeholder_per_week: invitations to one person per week, at most.
    """

    decline_backoff: float = Field(0.5, gt=0, le=10, allow_inf_nan=False)
    max_unanswered: int = Field(3, ge=1)
    max_per_stakeholder_per_week: int = Field(1, ge=1)


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
    #: Names of sources of power beyond the six (:mod:`scheduler.core.policy.insights`).
    power_sources: Annotated[tuple[str, ...], BeforeValidator(check_power_sources)] = ()
    stakeholders: list[Stakeholder] = Field(default_factory=list)
    etiquette: Etiquette = Etiquette()
    reschedule: RescheduleRule = RescheduleRule()
    #: The owner's digest e-mail and immediate notices (:mod:`scheduler.core.policy.notify`).
    notify: Notify = Notify()
    #: When the report suggests a mentor, and how far back it counts (private to the owner).
    insights: Insights = Insights()
    #: Recurring group meetings (:mod:`scheduler.core.policy.groups`); always propose mode.
    groups: tuple[Group, ...] = ()
    #: How a stakeholder ``status: to_meet`` is met through ``via``.
    introductions: Introductions = Introductions()

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

    @field_validator("tiers")
    @classmethod
    def _tier_meetings_fit(cls, value: dict[str, Tier], info: ValidationInfo) -> dict[str, Tier]:
        problems = tier_meeting_problems(value, info.data)
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
            alone = [(i, valid_stakeholder(raw)) for i, raw in enumerate(value)]
            found = stakeholder_problems([(i, s) for i, s in alone if s is not None], info.data)
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
        found = stakeholder_problems(list(enumerate(people)), info.data)
        if found:
            raise found
        return people

    @field_validator("groups", mode="wrap")
    @classmethod
    def _groups_consistent(
        cls, value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo
    ) -> tuple[Group, ...]:
        try:
            groups: tuple[Group, ...] = handler(value)
        except ValidationError as exc:
            # One bad field must hide no other problem: check every entry as far as it parses.
            found = unparsed_group_problems(value if isinstance(value, list) else [], info.data)
            if not found:
                raise
            details: list[InitErrorDetails] = [
                InitErrorDetails(type=e["type"], loc=e["loc"], input=e["input"], ctx=e["ctx"])
                if "ctx" in e
                else InitErrorDetails(type=e["type"], loc=e["loc"], input=e["input"])
                for e in exc.errors()
            ]
            error = SpecError(found)
            details.append(
                InitErrorDetails(type="value_error", loc=(), input=value, ctx={"error": error})
            )
            raise ValidationError.from_exception_data(exc.title, details) from None
        problems = group_problems(groups, info.data)
        if problems:
            raise problems
        return groups

    @field_validator("introductions")
    @classmethod
    def _introductions_fit(cls, value: Introductions, info: ValidationInfo) -> Introductions:
        problems = introduction_problems(value, info.data.get("availability"))
        if problems:
            raise SpecError(problems)
        return value

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

    def meeting_of(self, s: Stakeholder) -> MeetingDefaults:
        """``s``'s meeting: ``meeting:``, then their tier's ``meeting``, then their own."""
        tier = self.tiers.get(s.tier)
        return merge_meeting(self.meeting, tier.meeting if tier else None, s.meeting)

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
