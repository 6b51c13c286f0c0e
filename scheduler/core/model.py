"""Value types shared by the core and the connectors.

Times crossing a module boundary are aware UTC datetimes. Local wall-clock notions (working
hours, preferred windows, blackout dates) are kept as local values *plus* an IANA zone name and
expanded to UTC by :mod:`scheduler.core.availability`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from enum import StrEnum

from scheduler.core.intervals import Interval

__all__ = [
    "WEEKDAYS",
    "AttendeeStatus",
    "BusyBlock",
    "BusyQuery",
    "BusyResult",
    "BusyRule",
    "BusyRules",
    "CreatedEvent",
    "DateRange",
    "EventDraft",
    "EventStatus",
    "Person",
    "ShowAs",
    "TimeRange",
    "WeeklyHours",
]

#: Weekday names as written in policy files, index = ``date.weekday()``.
WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True, slots=True)
class Person:
    """Someone with a calendar. ``timezone`` is an IANA name (``Europe/London``)."""

    email: str
    name: str
    timezone: str

    @property
    def first_name(self) -> str:
        return self.name.split()[0] if self.name.strip() else self.email.split("@")[0]


@dataclass(frozen=True, slots=True, order=True)
class TimeRange:
    """A local wall-clock range within one day, ``start < end`` (``09:00-17:30``)."""

    start: time
    end: time

    def __post_init__(self) -> None:
        if not self.start < self.end:
            raise ValueError(f"time range {self} must end after it starts")

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"

    @property
    def duration(self) -> timedelta:
        return datetime.combine(date.min, self.end) - datetime.combine(date.min, self.start)


@dataclass(frozen=True, slots=True)
class DateRange:
    """An inclusive range of local dates (``2026-12-24..2027-01-03``)."""

    first: date
    last: date

    def __post_init__(self) -> None:
        if self.last < self.first:
            raise ValueError(f"date range {self.first}..{self.last} ends before it starts")

    def __contains__(self, day: object) -> bool:
        return isinstance(day, date) and self.first <= day <= self.last


@dataclass(frozen=True, slots=True)
class WeeklyHours:
    """Working hours per weekday (0 = Monday) in the local zone; a missing day is not worked."""

    days: Mapping[int, tuple[TimeRange, ...]] = field(default_factory=dict)

    def on(self, weekday: int) -> tuple[TimeRange, ...]:
        return self.days.get(weekday, ())

    def __hash__(self) -> int:
        return hash(tuple(sorted(self.days.items())))


class ShowAs(StrEnum):
    """How an event shows on free/busy.

    Graph's ``showAs``; in ICS, TRANSP and X-MICROSOFT-CDO-BUSYSTATUS.
    """

    BUSY = "busy"
    FREE = "free"  # transparent
    TENTATIVE = "tentative"
    OOF = "oof"  # out of office
    WORKING_ELSEWHERE = "workingElsewhere"
    UNKNOWN = "unknown"


class EventStatus(StrEnum):
    """RFC 5545 STATUS of the event itself."""

    CONFIRMED = "confirmed"
    TENTATIVE = "tentative"
    CANCELLED = "cancelled"


class AttendeeStatus(StrEnum):
    """The calendar owner's own answer to an event (RFC 5545 PARTSTAT)."""

    ACCEPTED = "accepted"
    TENTATIVE = "tentative"
    DECLINED = "declined"
    NEEDS_ACTION = "needsAction"  # invited, not answered
    ORGANIZER = "organizer"  # their own event


@dataclass(frozen=True, slots=True)
class BusyBlock:
    """One event (or free/busy block) on a person's calendar, before busy rules are applied.

    Providers that only expose opaque free/busy (Google freeBusy) report ``BUSY`` blocks with the
    defaults; providers with event detail (ICS, CalDAV, Graph getSchedule) fill in what they know.
    """

    start: datetime
    end: datetime
    show_as: ShowAs = ShowAs.BUSY
    status: EventStatus = EventStatus.CONFIRMED
    response: AttendeeStatus = AttendeeStatus.ORGANIZER
    all_day: bool = False
    #: The goodwill idempotency key when this block is one of goodwill's own events and the
    #: provider shows it (ICS/CalDAV UID, Google/Graph extended property); None otherwise.
    key: str | None = None
    #: Who takes part in one of goodwill's own events (lower-cased e-mails: the organizer and
    #: the attendees) when the provider shows them (ICS, CalDAV); empty otherwise.
    participants: frozenset[str] = frozenset()

    @property
    def interval(self) -> Interval:
        return Interval(self.start, self.end)


class BusyRule(StrEnum):
    """What a kind of event counts as."""

    BUSY = "busy"
    FREE = "free"
    RESPECT_TRANSPARENCY = "respect_transparency"  # all-day only: busy unless marked transparent


@dataclass(frozen=True, slots=True)
class BusyRules:
    """Policy knobs deciding which events block time (defaults from DESIGN.md "Busy rules")."""

    tentative: BusyRule = BusyRule.BUSY
    unanswered: BusyRule = BusyRule.BUSY
    out_of_office: BusyRule = BusyRule.BUSY
    all_day: BusyRule = BusyRule.RESPECT_TRANSPARENCY
    transparent: BusyRule = BusyRule.FREE
    declined: BusyRule = BusyRule.FREE
    cancelled: BusyRule = BusyRule.FREE
    working_elsewhere: BusyRule = BusyRule.FREE
    unknown: BusyRule = BusyRule.BUSY


@dataclass(frozen=True, slots=True)
class BusyQuery:
    """Read busy time for ``people`` within ``window`` (UTC).

    Each person's zone resolves their all-day and floating times.
    """

    window: Interval
    people: tuple[Person, ...]


@dataclass(frozen=True, slots=True)
class BusyResult:
    """Busy blocks per e-mail; people whose calendar could not be read are in ``unavailable``.

    ``working_hours`` carries provider-reported hours (Graph) for people the policy gives none.
    """

    blocks: Mapping[str, list[BusyBlock]]
    unavailable: Mapping[str, str] = field(default_factory=dict)
    working_hours: Mapping[str, tuple[str, WeeklyHours]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EventDraft:
    """An event to create on ``organizer``'s calendar with ``attendee`` invited.

    ``idempotency_key`` is stable for the meeting: connectors derive the provider's id from it
    (Google client event id in base32hex, Graph ``transactionId``, ICS/CalDAV ``UID``) so a retry
    never creates a second event.
    """

    idempotency_key: str
    organizer: Person
    attendee: Person
    start: datetime
    end: datetime
    title: str
    description: str = ""
    location: str | None = None
    video: str | None = None  # "meet" | "teams" | None
    #: A group meeting's other attendees (``attendee`` is the first; none for a one-to-one).
    #: Every connector invites all of them in the same single event.
    extra_attendees: tuple[Person, ...] = ()

    @property
    def attendees(self) -> tuple[Person, ...]:
        """Everyone invited, ``attendee`` first."""
        return (self.attendee, *self.extra_attendees)


@dataclass(frozen=True, slots=True)
class CreatedEvent:
    """What the provider gave back. ``created`` is False when an existing event was reconciled."""

    provider_event_id: str
    created: bool = True
