"""Reading iCalendar (RFC 5545) data: busy blocks, organic contact and ICS feeds.

The pure part (:func:`parse_busy_blocks`, :func:`last_contact_times`) turns the bytes of one
person's calendar into domain values; :class:`IcsFeed` fetches those bytes over HTTP. The
directory connector in :mod:`connectors.ics` reads them from files.

Mapping rules (one VEVENT instance → one :class:`~scheduler.core.model.BusyBlock`):

* The bytes are parsed by :func:`connectors.ics_input.parse_calendar`: caps checked before
  parsing, problems reported as ``FILE:LINE`` with an escaped excerpt, only a broken event
  skipped (see that module).
* Recurrences (RRULE, RDATE, EXDATE, RECURRENCE-ID overrides, ``RANGE=THISANDFUTURE``) are
  expanded with ``recurring-ical-events``. More than ``max_instances`` expanded instances in the
  window raise :class:`~scheduler.core.errors.CalendarDataError`; nothing is dropped silently.
  The expansion is charged to the read's :class:`~connectors.ics_input.ReadBudget` as it walks
  each rule, period by period, so a rule that never matches again, or matches millions of times
  before the window, is refused after ``limits.ics_max_steps`` steps or
  ``limits.ics_read_budget_s`` seconds instead of running for minutes.
* Google-style exports (``X-WR-TIMEZONE`` with UTC or floating times) are repaired with
  ``x_wr_timezone.to_standard`` first, so floating times there mean the calendar's own zone.
* Remaining floating times and all-day dates (``VALUE=DATE``) are wall-clock times in the
  person's IANA zone. Every block leaves as an aware UTC datetime, clipped to the window.
* ``show_as``: ``X-MICROSOFT-CDO-BUSYSTATUS`` wins when present (BUSY, FREE, TENTATIVE, OOF,
  WORKINGELSEWHERE; any other value is ``UNKNOWN``); otherwise ``TRANSP:TRANSPARENT`` is FREE
  and everything else (RFC 5545 default OPAQUE) is BUSY.
* ``status``: the event's STATUS (CONFIRMED when absent or unknown).
* ``key``: the ``X-GOODWILL-KEY`` goodwill writes on the events it books (None on others), so
  the conflict watch never counts our own event; ``participants``: on those events only, who
  takes part and did not decline (organizer and attendees), so a dry run without a database
  knows the pair a booked coffee is for.
* ``response``: ORGANIZER when the person organises the event or is not among its attendees
  (their own entry); otherwise their ATTENDEE PARTSTAT, read by
  :func:`connectors.ical_common.parse_partstat` (NEEDS-ACTION when absent, as RFC 5545 says;
  DELEGATED counts as DECLINED because the person handed the meeting on).
* Instances with zero duration (a DATE-TIME DTSTART without DTEND/DURATION "takes up no time",
  RFC 5545 §3.6.1) are skipped: they block no time. An event whose DTEND lies before its
  DTSTART is swapped by ``recurring-ical-events`` (its issue 132) and so blocks the time between
  the two — the safe reading for "never double-book"; any instance still left with
  ``end <= start`` is skipped.
* VTODO, VJOURNAL and VFREEBUSY components are ignored.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol, TypeVar
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import icalendar
import recurring_ical_events

from connectors.http_common import parse_retry_after
from connectors.ical_common import parse_partstat
from connectors.ics_input import ParsedCalendar, ReadBudget, describe, parse_calendar, printable
from scheduler.core.clock import Clock, SystemClock
from scheduler.core.errors import (
    CalendarDataError,
    CalendarUnavailable,
    ConfigurationError,
    ProviderUnavailable,
    RateLimited,
)
from scheduler.core.intervals import Interval
from scheduler.core.model import (
    AttendeeStatus,
    BusyBlock,
    BusyQuery,
    BusyResult,
    EventStatus,
    ShowAs,
)
from scheduler.limits import Limits

if TYPE_CHECKING:  # imported where a feed is fetched: the ICS directory never needs it
    import httpx

__all__ = [
    "EventInstance",
    "ExpansionMemo",
    "IcsFeed",
    "email_of",
    "expand_instances",
    "last_contact_times",
    "load_calendars",
    "parse_busy_blocks",
    "resolve_zone",
    "to_utc",
]

PROVIDER = "ics"
log = logging.getLogger("goodwill.ics")

_SHOW_AS_BY_CDO: Mapping[str, ShowAs] = {
    "BUSY": ShowAs.BUSY,
    "FREE": ShowAs.FREE,
    "TENTATIVE": ShowAs.TENTATIVE,
    "OOF": ShowAs.OOF,
    "WORKINGELSEWHERE": ShowAs.WORKING_ELSEWHERE,
}

_STATUS_BY_ICS: Mapping[str, EventStatus] = {
    "CONFIRMED": EventStatus.CONFIRMED,
    "TENTATIVE": EventStatus.TENTATIVE,
    "CANCELLED": EventStatus.CANCELLED,
}


@dataclass(frozen=True, slots=True)
class EventInstance:
    """One expanded VEVENT instance with its times resolved to aware UTC.

    Attributes:
        component: the instance as ``recurring-ical-events`` gives it (overrides applied).
        start: aware UTC start, not clipped.
        end: aware UTC end, not clipped; always after ``start``.
        all_day: DTSTART was a DATE.
    """

    component: icalendar.Component
    start: datetime
    end: datetime
    all_day: bool


def resolve_zone(zone: str) -> ZoneInfo:
    """Return the ``ZoneInfo`` for an IANA name or raise :class:`ConfigurationError`."""
    try:
        return ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigurationError(f"unknown IANA time zone {zone!r}") from exc


def email_of(address: object) -> str:
    """Normalise a CAL-ADDRESS (``mailto:Alex@Corp.example``) to a lower-case e-mail."""
    text = str(address).strip()
    if text.lower().startswith("mailto:"):
        text = text[len("mailto:") :]
    return text.strip().lower()


def load_calendars(
    data: bytes, *, source: str, limits: Limits | None = None
) -> list[icalendar.Calendar]:
    """Parse iCalendar bytes into calendars, repairing ``X-WR-TIMEZONE`` exports.

    Args:
        data: the raw file or feed content.
        source: file name or URL, used in error messages.
        limits: the caps checked before parsing (default :class:`~scheduler.settings.Limits`).

    Raises:
        CalendarDataError: the bytes are not iCalendar data (names ``source``).
    """
    return list(parse_calendar(data, source=source, limits=limits).calendars)


def expand_instances(
    calendars: Sequence[icalendar.Calendar],
    *,
    source: str,
    zone: ZoneInfo,
    window: Interval,
    max_instances: int,
    budget: ReadBudget | None = None,
    event_lines: Mapping[str, int] | None = None,
) -> Iterator[EventInstance]:
    """Yield every VEVENT instance overlapping ``window`` with times resolved to UTC.

    Args:
        calendars: parsed calendars (see :func:`load_calendars`).
        source: file name or URL for error messages.
        zone: the person's zone; floating times and all-day dates are wall-clock times there.
        window: the half-open UTC range of interest.
        max_instances: expanded instances (over all calendars) beyond this raise.
        budget: the read's work and time budget (default: a fresh one from
            :class:`~scheduler.settings.Limits`).
        event_lines: the line of each UID's ``BEGIN:VEVENT``, named in errors.

    Raises:
        CalendarDataError: malformed recurrence data, more than ``max_instances`` instances, or
            the budget ran out (names the file, the line and the event).
    """
    return _expand(
        calendars,
        source=source,
        zone=zone,
        window=window,
        max_instances=max_instances,
        budget=budget or ReadBudget.of(source, Limits()),
        lines=event_lines or {},
        strict=False,
        make=partial(_instance_of, zone=zone),
    )


class _Timed(Protocol):
    """What :func:`_expand` makes of an occurrence: an instance with aware UTC times."""

    @property
    def start(self) -> datetime: ...

    @property
    def end(self) -> datetime: ...


_T = TypeVar("_T", bound=_Timed)


def _expand(
    calendars: Sequence[icalendar.Calendar],
    *,
    source: str,
    zone: ZoneInfo,
    window: Interval,
    max_instances: int,
    budget: ReadBudget,
    lines: Mapping[str, int],
    strict: bool,
    make: Callable[[Any], _T | None],
) -> Iterator[_T]:
    """:func:`expand_instances`, each occurrence made into what ``make`` returns for it (None:
    it takes up no time); ``strict``: an event that cannot be expanded raises instead of being
    left out (and logged)."""
    # The library compares floating/all-day series on wall-clock time, so the span is given
    # in the person's zone: it then drops its tzinfo for those and keeps it for aware series.
    span_start = window.start.astimezone(zone)
    span_end = window.end.astimezone(zone)
    seen = 0
    skipped: list[CalendarDataError] = []
    expanded = 0
    for calendar in calendars:
        try:
            dense = _dense_series(calendar, zone, window, max_instances, source, lines)
            everything = recurring_ical_events.of(calendar, components=("VEVENT",)).series
        except CalendarDataError:
            raise
        except Exception as exc:  # untrusted input: the library raises many kinds
            raise CalendarDataError(
                source, f"cannot expand the instances of the events ({describe(exc)})"
            ) from exc
        for series in everything:
            uid = str(getattr(series, "uid", "?"))
            line = lines.get(uid)
            what = f"event UID={printable(uid)!r}"
            budget.at(line, what)
            try:
                _meter(series, budget)
                chunked = _ALL in dense or uid in dense
                for occurrence in _occurrences(series, span_start, span_end, chunked=chunked):
                    budget.charge()
                    seen += 1
                    if seen > max_instances:
                        raise CalendarDataError(
                            source,
                            f"more than {max_instances} event instances between "
                            f"{window.start.isoformat()} and {window.end.isoformat()} "
                            f"(limits.max_instances), the last from {what}; narrow the window "
                            "or raise the limit",
                            line=line,
                        )
                    instance = make(occurrence)
                    if (
                        instance is not None
                        and instance.start < window.end
                        and window.start < instance.end
                    ):
                        yield instance
            except CalendarDataError:
                raise
            except Exception as exc:  # untrusted input: recurrence expansion raises many kinds
                # Only this event is left out (what it yielded so far stays busy), as a broken
                # event is when parsing; a calendar where no event expands is refused below.
                problem = CalendarDataError(
                    source,
                    f"{what} skipped: cannot expand its instances ({describe(exc)})",
                    line=line,
                )
                if strict:
                    raise problem from exc
                log.warning("%s", problem)
                skipped.append(problem)
                continue
            expanded += 1
    if skipped and not expanded:
        first = skipped[0]
        raise CalendarDataError(
            source, f"{first.reason}; no event could be expanded", line=first.line
        )


#: dateutil walks a rule from DTSTART; a rule needing more steps than this many times
#: ``max_instances`` to cross the window is refused before any expansion starts.
_STEPS_PER_INSTANCE = 10

#: Marks "chunk every series" in the set of dense UIDs.
_ALL = "\x00all"

_FREQ_SECONDS: Mapping[str, int] = {
    "SECONDLY": 1,
    "MINUTELY": 60,
    "HOURLY": 3600,
    "DAILY": 86400,
    "WEEKLY": 7 * 86400,
    "MONTHLY": 28 * 86400,  # the shortest month: an upper bound on the steps
    "YEARLY": 365 * 86400,
}


def _dense_series(
    calendar: icalendar.Calendar,
    zone: ZoneInfo,
    window: Interval,
    max_instances: int,
    source: str,
    lines: Mapping[str, int],
) -> set[str]:
    """Check every VEVENT before expansion; return the UIDs of rules that may be dense.

    ``recurring-ical-events`` hands each RRULE to dateutil, which walks it from DTSTART and
    builds a list of every match in the span before returning the first. So a rule that would
    need more than ``_STEPS_PER_INSTANCE × max_instances`` steps from DTSTART to the window's
    end is refused outright (a ``FREQ=SECONDLY`` rule from years ago would take minutes and
    gigabytes), and a rule that may yield more than ``max_instances`` matches in the window is
    marked for chunked expansion (see :func:`_occurrences`).

    Raises:
        CalendarDataError: an event without DTSTART, or a rule over the step budget.
    """
    dense: set[str] = set()
    max_steps = max_instances * _STEPS_PER_INSTANCE
    for event in calendar.walk("VEVENT"):
        uid = _uid(event)
        line = lines.get(uid)
        shown = printable(uid)
        # parse_calendar leaves such events out; calendars built by hand may still hold them.
        if "DTSTART" not in event:
            # RFC 5545 requires DTSTART outside iTIP messages; without it there is no time.
            raise CalendarDataError(source, f"event UID={shown!r} has no DTSTART", line=line)
        if isinstance(event["DTSTART"], list):
            raise CalendarDataError(source, f"event UID={shown!r} has two DTSTARTs", line=line)
        if "RRULE" not in event:
            continue
        start, _ = to_utc(event.decoded("DTSTART"), zone)
        raw: Any = event["RRULE"]
        for rule in raw if isinstance(raw, list) else [raw]:
            freq = str((rule.get("FREQ") or [""])[0]).upper()
            if freq not in _FREQ_SECONDS:
                continue  # no usable rule: recurring-ical-events ignores or rejects it
            period = _FREQ_SECONDS[freq] * max(int((rule.get("INTERVAL") or [1])[0]), 1)
            steps = (window.end - start).total_seconds() / period
            if steps > max_steps:
                raise CalendarDataError(
                    source,
                    f"event UID={shown!r}: RRULE FREQ={printable(freq)} would take about "
                    f"{int(steps)} steps "
                    f"from DTSTART to the window's end (more than {max_steps}, "
                    f"{_STEPS_PER_INSTANCE} × limits.max_instances); refused",
                    line=line,
                )
            if _matches_bound(rule, freq, period, start, window) > max_instances:
                # Without a UID the library names the series by object id: chunk them all.
                dense.add(uid if "UID" in event else _ALL)
    return dense


def _matches_bound(rule: Any, freq: str, period: float, start: datetime, window: Interval) -> float:
    """A generous upper bound on the matches of one RRULE in ``window`` (a day of slack)."""
    count = rule.get("COUNT")
    if count:
        return float(count[0])
    first = max(start, window.start - timedelta(days=1))
    periods = max((window.end - first).total_seconds(), 0.0) / period + 2
    factor = 1.0
    for part, per_period in (
        ("BYSECOND", 1),
        ("BYMINUTE", 1),
        ("BYHOUR", 1),
        ("BYDAY", {"MONTHLY": 5, "YEARLY": 53}.get(freq, 1)),
        ("BYMONTHDAY", 12 if freq == "YEARLY" else 1),
        ("BYYEARDAY", 1),
        ("BYWEEKNO", 7),
        ("BYMONTH", 1),
    ):
        values = rule.get(part)
        if values:
            factor *= len(values) * per_period
    return periods * factor


def _occurrences(series: Any, start: datetime, end: datetime, *, chunked: bool) -> Iterator[Any]:
    """Occurrences of one series in ``[start, end)``, in chunks for recurring ones.

    dateutil materialises every match of a span before the first is returned, so a dense rule
    is asked for one day first and then for spans twice as long each time: each call returns at
    most about twice what was counted so far, and the caller stops at ``max_instances``.
    Occurrences overlapping two chunks are returned once.
    """
    if not chunked:
        yield from series.between(start, end)
        return
    # Dense: one day first, then spans twice as long each time.
    returned: set[Any] = set()
    size = timedelta(days=1)
    low = start
    while low < end:
        high = min(low + size, end)
        for occurrence in series.between(low, high):
            if occurrence.id not in returned:
                returned.add(occurrence.id)
                yield occurrence
        low = high
        size *= 2


#: dateutil's frequencies (``rrule._freq``): YEARLY 0 … DAILY 3, HOURLY 4, MINUTELY 5.
#: Steps charged per instance a rule produces: making one costs dateutil and the caller about
#: three times what looking at one more period costs (measured).
_INSTANCE_STEPS = 3
_DAYS_PER_PERIOD = {0: 366, 1: 31, 2: 7}
_HOURLY, _MINUTELY = 4, 5


def _meter(series: Any, budget: ReadBudget) -> None:
    """Charge the walking of ``series``' dateutil rules to ``budget``.

    recurring-ical-events keeps a series' rules in ``series.recurrence.rrules`` (a ruleset of
    RDATEs first, then one dateutil ``rrule`` per RRULE) and asks each for ``between(…)``. Each
    is replaced by a :class:`_MeteredRule`, which walks the rule itself, one instance at a time.
    """
    recurrence: Any = getattr(series, "recurrence", None)
    rules = getattr(recurrence, "rrules", None)
    if isinstance(rules, list):
        recurrence.rrules = [_MeteredRule(rule, budget) for rule in rules]


class _MeteredRule:
    """A dateutil rule (or ruleset) whose walk is charged to a read's budget.

    Every instance the rule produces is charged (``_INSTANCE_STEPS``), wanted or not: dateutil
    walks from DTSTART. Between two instances dateutil may walk a long way: after a rule's last
    match it walks on, period by period, to the year 9999. It tests the rule's ``BYSETPOS``
    once per period it walks, matching or not, so that value is replaced by a
    :class:`_PeriodMeter` that charges each period what looking at it costs
    (:func:`_period_cost`). The tests refuse a never-matching rule in seconds: if a dateutil
    release stopped reading ``BYSETPOS`` that way, they would notice.
    """

    def __init__(self, rule: Any, budget: ReadBudget) -> None:
        self._rule = rule
        self._budget = budget
        #: Read by recurring-ical-events after each instance.
        self.until = getattr(rule, "until", None)
        if hasattr(rule, "_bysetpos"):  # an rrule; a ruleset only lists RDATEs
            values = rule._bysetpos
            if isinstance(values, _PeriodMeter):
                values = values.values
            rule._bysetpos = _PeriodMeter(values, budget, _period_cost(rule))

    def between(self, after: Any, before: Any, inc: bool = False, count: int = 1) -> list[Any]:
        """dateutil's ``between``: instances after ``after`` and before ``before``."""
        found: list[Any] = []
        charge = self._budget.charge
        for moment in self._rule:
            charge(_INSTANCE_STEPS)
            if moment > before or (not inc and moment == before):
                break
            if moment > after or (inc and moment == after):
                found.append(moment)
        return found


class _PeriodMeter:
    """Stands in for an rrule's ``BYSETPOS`` tuple (or None): each truth test charges a period."""

    __slots__ = ("_budget", "_cost", "values")

    def __init__(self, values: tuple[int, ...] | None, budget: ReadBudget, cost: int) -> None:
        self.values = values
        self._budget = budget
        self._cost = cost

    def __bool__(self) -> bool:
        self._budget.charge(self._cost)
        return bool(self.values)

    def __iter__(self) -> Iterator[int]:
        return iter(self.values or ())

    def __len__(self) -> int:
        return len(self.values or ())

    def __getitem__(self, index: int) -> int:
        return (self.values or ())[index]


def _period_cost(rule: Any) -> int:
    """Steps charged per period dateutil walks: about what looking at one period costs it.

    A fixed part, plus one per candidate day (366 for YEARLY, 31 MONTHLY, 7 WEEKLY), plus two
    per time built each period of an HOURLY (minutes × seconds) or MINUTELY (seconds) rule, plus
    the BYSETPOS positions times the days. Measured on a loaded two-core machine: 3–6 million
    steps a second whichever way a rule is walked.
    """
    freq = getattr(rule, "_freq", 3)
    days = _DAYS_PER_PERIOD.get(freq, 1)
    times = 1
    if freq == _HOURLY:
        times = len(getattr(rule, "_byminute", None) or ()) * len(
            getattr(rule, "_bysecond", None) or ()
        )
    elif freq == _MINUTELY:
        times = len(getattr(rule, "_bysecond", None) or ())
    positions = len(getattr(rule, "_bysetpos", None) or ())
    return 4 + days + 2 * max(times, 1) + positions * days


class ExpansionMemo(Protocol):
    """Where one parsed calendar's expansions are kept (:meth:`CalendarCache.memo`): by key,
    with a size for the cache's byte bound; dropped with the calendar when its file changes."""

    def get(self, key: Hashable) -> object | None:
        """The value kept under ``key``, or None."""

    def put(self, key: Hashable, value: object, size: int) -> None:
        """Keep ``value`` (about ``size`` bytes) under ``key`` if the bounds allow."""


@dataclass(frozen=True, slots=True)
class _Traits:
    """What :class:`_Seen` reads of a VEVENT: the same for all its instances (a modified
    instance, RECURRENCE-ID, is a VEVENT of its own)."""

    show_as: ShowAs
    status: EventStatus
    key: str | None
    ours: bool
    organizer: str | None
    attendees: tuple[tuple[str, AttendeeStatus], ...]

    @classmethod
    def of(cls, event: icalendar.Component) -> _Traits:
        organizer = event.get("ORGANIZER")
        return cls(
            show_as=_show_as(event),
            status=_status(event),
            key=_goodwill_key(event),
            ours="X-GOODWILL-KEY" in event,
            organizer=(
                None if organizer is None or isinstance(organizer, list) else email_of(organizer)
            ),
            attendees=tuple(
                (email_of(a), parse_partstat(getattr(a, "params", {}).get("PARTSTAT")))
                for a in _attendees(event)
            ),
        )


def _instance_of(occurrence: Any, *, zone: ZoneInfo) -> EventInstance | None:
    """An occurrence as :class:`EventInstance`: the library's copy of the event, its times set."""
    return _resolve(occurrence.as_component(False), zone)


def _seen_maker(zone: ZoneInfo) -> Callable[[Any], _Seen | None]:
    """Make occurrences into :class:`_Seen` records without the library's copy of the event.

    ``Occurrence.as_component`` copies the whole VEVENT for every instance only to set its
    DTSTART and DTEND (which become the occurrence's ``start`` and ``end``) and drop RRULE,
    RDATE, EXDATE and DURATION; what the record reads besides the times (:class:`_Traits`) is
    the same in each copy, so it is read once per VEVENT from the occurrence's source
    component. The times are resolved as :func:`_resolve` resolves the copy's (a DTEND is
    always there). An occurrence that does not show its source (another release of
    recurring-ical-events) takes the copying way: the same record, only slower.
    """
    read: dict[int, tuple[icalendar.Component, _Traits]] = {}

    def make(occurrence: Any) -> _Seen | None:
        event = getattr(getattr(occurrence, "_adapter", None), "_component", None)
        if not isinstance(event, icalendar.Component):
            instance = _instance_of(occurrence, zone=zone)
            return None if instance is None else _Seen.of(instance)
        start, all_day = to_utc(occurrence.start, zone)
        end, _ = to_utc(occurrence.end, zone)
        if not start < end:
            return None
        kept = read.get(id(event))
        if kept is None or kept[0] is not event:
            kept = read[id(event)] = (event, _Traits.of(event))
        return _Seen.at(start, end, all_day, kept[1])

    return make


@dataclass(frozen=True, slots=True)
class _Seen:
    """What the readers need of one expanded instance (no icalendar objects: small to keep).

    Attributes:
        organizer: the e-mail of the event's one ORGANIZER (None: absent or repeated).
        attendees: (e-mail, answer) of each ATTENDEE, in file order.
        ours: the event carries ``X-GOODWILL-KEY`` (``key`` is its non-empty value).
    """

    start: datetime
    end: datetime
    all_day: bool
    show_as: ShowAs
    status: EventStatus
    key: str | None
    ours: bool
    organizer: str | None
    attendees: tuple[tuple[str, AttendeeStatus], ...]

    @classmethod
    def at(cls, start: datetime, end: datetime, all_day: bool, traits: _Traits) -> _Seen:
        """An instance at ``[start, end)`` of the event ``traits`` were read from."""
        return cls(
            start=start,
            end=end,
            all_day=all_day,
            show_as=traits.show_as,
            status=traits.status,
            key=traits.key,
            ours=traits.ours,
            organizer=traits.organizer,
            attendees=traits.attendees,
        )

    @classmethod
    def of(cls, instance: EventInstance) -> _Seen:
        return cls.at(
            instance.start, instance.end, instance.all_day, _Traits.of(instance.component)
        )

    def response(self, owner: str) -> AttendeeStatus:
        """The owner's answer: ORGANIZER when they organise it or are not among the attendees."""
        if self.organizer == owner:
            return AttendeeStatus.ORGANIZER
        for email, answer in self.attendees:
            if email == owner:
                return answer
        return AttendeeStatus.ORGANIZER

    def taking_part(self) -> frozenset[str]:
        """The participants who did not decline (``BusyBlock.participants``)."""
        answers = self.participants().items()
        return frozenset(e for e, a in answers if a is not AttendeeStatus.DECLINED)

    def participants(self) -> dict[str, AttendeeStatus]:
        """The answer per participant; the organizer takes part unless they declined."""
        answers: dict[str, AttendeeStatus] = {}
        if self.organizer is not None:
            answers[self.organizer] = AttendeeStatus.ACCEPTED
        for email, answer in self.attendees:
            # An organizer listed among attendees keeps "accepted" unless they declined there.
            if email not in answers or answer is AttendeeStatus.DECLINED:
                answers[email] = answer
        return answers


#: Expansions kept in a memo cover whole UTC days: from the window's first midnight, a day
#: longer than the window needs, so that rounds at other times of the same day find them.
_DAY = timedelta(days=1)
#: A record's size in memory, roughly (two datetimes, the slots, the tuple), and per attendee.
_SEEN_BYTES = 400
_ATTENDEE_BYTES = 160
#: Marks a key whose widened expansion failed: such a calendar is expanded window by window.
_NARROW_ONLY = "narrow only"


def _widened(window: Interval) -> Interval:
    day = window.start.replace(hour=0, minute=0, second=0, microsecond=0)
    days = -((window.start - window.end) // _DAY) + 1  # whole days in the window, plus one
    return Interval(day, day + days * _DAY)


def _instances(
    parsed: ParsedCalendar,
    *,
    source: str,
    zone: ZoneInfo,
    window: Interval,
    max_instances: int,
    budget: ReadBudget,
    memo: ExpansionMemo | None,
) -> list[_Seen]:
    """The instances overlapping ``window`` (UTC), expanded or from ``memo``.

    With a memo and a window of a day or more, the calendar is expanded once over the
    widened window (:func:`_widened`) and each read takes its part; the result is the same as
    expanding ``window`` itself, because an expansion of the wider span that succeeds (within
    the budget and ``max_instances``, no event skipped) holds every instance of the narrower
    one. When the wider expansion fails, ``window`` itself is expanded with the read's budget
    untouched, and the failure (unless it was only the clock) is remembered so that later
    reads do not try again.
    """
    expand = partial(
        _expand,
        parsed.calendars,
        source=source,
        zone=zone,
        max_instances=max_instances,
        lines=parsed.event_lines,
    )
    if memo is None or window.end - window.start < _DAY:
        return list(expand(window=window, budget=budget, strict=False, make=_seen_maker(zone)))
    wide = _widened(window)
    key = ("instances", str(zone), wide.start, wide.end, max_instances, budget.max_steps)
    kept = memo.get(key)
    if kept is None:
        trial = budget.trial()
        try:
            records = tuple(expand(window=wide, budget=trial, strict=True, make=_seen_maker(zone)))
        except CalendarDataError:
            if not trial.timed_out:  # what the file holds decided: remember it
                memo.put(key, _NARROW_ONLY, 64)
            kept = _NARROW_ONLY
        else:
            size = sum(_SEEN_BYTES + _ATTENDEE_BYTES * len(r.attendees) for r in records)
            memo.put(key, records, size)
            kept = records
    if not isinstance(kept, tuple):
        return list(expand(window=window, budget=budget, strict=False, make=_seen_maker(zone)))
    return [r for r in kept if r.start < window.end and window.start < r.end]


def parse_busy_blocks(
    data: bytes | ParsedCalendar,
    *,
    source: str,
    owner_email: str,
    zone: str,
    window: Interval,
    max_instances: int,
    limits: Limits | None = None,
    budget: ReadBudget | None = None,
    monotonic: Callable[[], float] | None = None,
    memo: ExpansionMemo | None = None,
) -> list[BusyBlock]:
    """Turn one person's iCalendar data into busy blocks within ``window`` (module rules).

    Args:
        data: the person's calendar (file or feed content), or it already parsed (the cache).
        source: file name or URL, named in errors.
        owner_email: whose calendar this is; picks their ATTENDEE entry for ``response``.
        zone: the person's IANA zone for floating and all-day times.
        window: half-open UTC range; blocks are clipped to it.
        max_instances: limit on expanded instances (``Limits.max_instances``).
        limits: the other caps and the read budget (default :class:`~scheduler.settings.Limits`).
        budget: the read's budget when the caller started it (a parse it already paid for).
        monotonic: the clock of a budget made here (default ``time.monotonic``).
        memo: where the parsed ``data``'s expansions are kept (see :func:`_instances`).

    Returns:
        Blocks sorted by start, aware UTC, each with ``start < end`` inside ``window``.

    Raises:
        CalendarDataError: the data cannot be parsed, expands beyond ``max_instances`` or runs
            out of budget.
        ConfigurationError: ``zone`` is not an IANA zone.
    """
    tz = resolve_zone(zone)
    owner = email_of(owner_email)
    window = window.to_utc()
    parsed, budget = _parsed(data, source, limits, budget, monotonic)
    found = _instances(
        parsed,
        source=source,
        zone=tz,
        window=window,
        max_instances=max_instances,
        budget=budget,
        memo=memo,
    )
    blocks = [
        BusyBlock(
            start=max(seen.start, window.start),
            end=min(seen.end, window.end),
            show_as=seen.show_as,
            status=seen.status,
            response=seen.response(owner),
            all_day=seen.all_day,
            key=seen.key,
            participants=seen.taking_part() if seen.key else frozenset(),
        )
        for seen in found
    ]
    blocks.sort(key=lambda b: (b.start, b.end))
    return blocks


def _parsed(
    data: bytes | ParsedCalendar,
    source: str,
    limits: Limits | None,
    budget: ReadBudget | None,
    monotonic: Callable[[], float] | None,
) -> tuple[ParsedCalendar, ReadBudget]:
    limits = limits or Limits()
    budget = budget or ReadBudget.of(source, limits, monotonic)
    if isinstance(data, ParsedCalendar):
        return data, budget
    return parse_calendar(data, source=source, limits=limits, budget=budget), budget


def last_contact_times(
    data: bytes | ParsedCalendar,
    *,
    source: str,
    owner_email: str,
    zone: str,
    emails: Sequence[str],
    since: datetime,
    until: datetime,
    max_instances: int,
    limits: Limits | None = None,
    budget: ReadBudget | None = None,
    monotonic: Callable[[], float] | None = None,
    memo: ExpansionMemo | None = None,
) -> dict[str, datetime]:
    """Find the latest meeting the owner had with each of ``emails`` (organic contact).

    A meeting counts when it ended in ``(since, until]`` (as Google's and Graph's histories: the
    events overlapping the range that ended by ``until``; one that began before ``since`` counts
    too, so a round that reads only what is new since the last read still finds a long meeting
    in progress then), is not cancelled, was not created
    by goodwill (``X-GOODWILL-KEY``), the owner and the stakeholder both take part (as ORGANIZER
    or ATTENDEE) and neither declined (DELEGATED counts as declined, as for ``response``).

    Args:
        data: the owner's calendar.
        source: file name or URL, named in errors.
        owner_email: the calendar's owner.
        zone: the owner's IANA zone for floating and all-day times.
        emails: stakeholders to look for (case-insensitive).
        since: aware start of the search range.
        until: aware end of the search range (exclusive), normally "now".
        max_instances: limit on expanded instances.
        limits: the other caps and the read budget, as for :func:`parse_busy_blocks`.
        budget: the read's budget when the caller started it.
        monotonic: the clock of a budget made here.
        memo: where the parsed ``data``'s expansions are kept, as for :func:`parse_busy_blocks`.

    Returns:
        The latest meeting end (aware UTC) per e-mail as given in ``emails``; absent = none.
    """
    tz = resolve_zone(zone)
    owner = email_of(owner_email)
    wanted = {email_of(e): e for e in emails}
    latest: dict[str, datetime] = {}
    if not wanted or until <= since:
        return latest
    window = Interval(since, until).to_utc()
    parsed, budget = _parsed(data, source, limits, budget, monotonic)
    found = _instances(
        parsed,
        source=source,
        zone=tz,
        window=window,
        max_instances=max_instances,
        budget=budget,
        memo=memo,
    )
    for seen in found:
        if seen.end <= window.start or seen.end > window.end:
            continue
        if seen.status is EventStatus.CANCELLED:
            continue
        if seen.ours:
            # goodwill's own invites are followed by the pipeline (completed only once accepted);
            # an unanswered or declined one must not reset the clock as "organic" contact.
            continue
        answers = seen.participants()
        if owner not in answers or answers[owner] is AttendeeStatus.DECLINED:
            continue
        for email, answer in answers.items():
            if email == owner or email not in wanted or answer is AttendeeStatus.DECLINED:
                continue
            key = wanted[email]
            if key not in latest or seen.end > latest[key]:
                latest[key] = seen.end
    return latest


class IcsFeed:
    """A read-only :class:`~scheduler.core.ports.CalendarSource` over ICS feed URLs, one per person.

    Each person's feed is fetched with httpx (streamed, refused beyond ``limits.ics_max_bytes``)
    and parsed with :func:`parse_busy_blocks` in the person's own zone.

    Args:
        urls: feed URL per e-mail (case-insensitive).
        limits: size and expansion limits (defaults: :class:`~scheduler.settings.Limits`).
        transport: an httpx transport (tests, proxies); None = httpx's default.
        timeout_s: connect/read timeout per request, in seconds.
        clock: the current time, for an HTTP-date ``Retry-After`` (default: the system clock).
    """

    def __init__(
        self,
        urls: Mapping[str, str],
        *,
        limits: Limits | None = None,
        transport: httpx.BaseTransport | None = None,
        timeout_s: float = 10.0,
        clock: Clock | None = None,
    ) -> None:
        self._urls = {email_of(email): url for email, url in urls.items()}
        self._clock: Clock = clock or SystemClock()
        self._limits = limits or Limits()
        self._transport = transport
        self._timeout_s = timeout_s
        self._client: httpx.Client | None = None
        self._client_lock = threading.Lock()

    def busy(self, query: BusyQuery) -> BusyResult:
        """Read each person's feed; unreadable feeds land in ``unavailable`` with a reason.

        Raises:
            ProviderUnavailable: a feed failed in a way that may pass (5xx, timeout, 429);
                the whole read is retried later rather than booking on partial data.
        """
        blocks: dict[str, list[BusyBlock]] = {}
        unavailable: dict[str, str] = {}
        for person in query.people:
            url = self._urls.get(email_of(person.email))
            if url is None:
                unavailable[person.email] = "calendar unavailable: no ICS feed URL configured"
                continue
            try:
                data = self.fetch(url)
                blocks[person.email] = parse_busy_blocks(
                    data,
                    source=redact_url(url),
                    owner_email=person.email,
                    zone=person.timezone,
                    window=query.window,
                    max_instances=self._limits.max_instances,
                    limits=self._limits,
                )
            except (CalendarUnavailable, CalendarDataError) as exc:
                unavailable[person.email] = f"calendar unavailable: {exc}"
        return BusyResult(blocks=blocks, unavailable=unavailable)

    def fetch(self, url: str) -> bytes:
        """GET one feed, refusing bodies larger than ``limits.ics_max_bytes``.

        Raises:
            CalendarDataError: the body is larger than the limit (names the URL).
            CalendarUnavailable: 4xx such as 401/403/404/410 (not found, no permission).
            RateLimited: 429, with ``Retry-After`` seconds (or an HTTP-date) when given.
            ProviderUnavailable: 5xx, timeouts, refused or dropped connections.
        """
        import httpx

        shown = redact_url(url)
        limit = self._limits.ics_max_bytes
        try:
            with self._http().stream("GET", url, headers={"Accept": "text/calendar"}) as response:
                _raise_for_status(response, shown, self._clock.now())
                declared = response.headers.get("Content-Length")
                if declared is not None and declared.isdigit() and int(declared) > limit:
                    raise _too_large(shown, limit)
                chunks: list[bytes] = []
                size = 0
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > limit:
                        raise _too_large(shown, limit)
                    chunks.append(chunk)
                return b"".join(chunks)
        except httpx.TimeoutException as exc:
            raise ProviderUnavailable(f"{shown}: timed out", provider=PROVIDER) from exc
        except httpx.HTTPError as exc:  # connection refused/reset, protocol errors, bad URL
            raise ProviderUnavailable(
                f"{shown}: {type(exc).__name__}: {exc}", provider=PROVIDER
            ) from exc

    def close(self) -> None:
        """Close the HTTP client (idempotent)."""
        with self._client_lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def _http(self) -> httpx.Client:
        import httpx

        with self._client_lock:
            if self._client is None:
                self._client = httpx.Client(
                    transport=self._transport,
                    timeout=self._timeout_s,
                    follow_redirects=True,
                    headers={"User-Agent": "goodwill-ics/0.1"},
                )
            return self._client


def redact_url(url: str) -> str:
    """Drop user info and query string: feed URLs often carry secrets there."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid URL>"
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _too_large(shown: str, limit: int) -> CalendarDataError:
    return CalendarDataError(
        shown, f"feed is larger than {limit} bytes (limits.ics_max_bytes); refused"
    )


def _raise_for_status(response: httpx.Response, shown: str, now: datetime) -> None:
    status = response.status_code
    if status < 400:
        return
    message = f"{shown}: HTTP {status}"
    if status == 429:
        raise RateLimited(
            message,
            retry_after_s=parse_retry_after(response.headers.get("Retry-After"), now),
            provider=PROVIDER,
            status=status,
        )
    if status >= 500 or status == 408:
        raise ProviderUnavailable(message, provider=PROVIDER, status=status)
    # 401/403 (no permission), 404/410 (gone) and other 4xx: reading again will not help.
    raise CalendarUnavailable(message, provider=PROVIDER, status=status)


def _resolve(component: icalendar.Component, zone: ZoneInfo) -> EventInstance | None:
    """Resolve an instance's DTSTART/DTEND to UTC; None when it takes up no time."""
    raw_start = component.decoded("DTSTART")
    start, all_day = to_utc(raw_start, zone)
    if "DTEND" in component:
        end, _ = to_utc(component.decoded("DTEND"), zone)
    elif "DURATION" in component:
        end = start + component.decoded("DURATION")
    elif all_day:
        # RFC 5545 §3.6.1: a DATE DTSTART without an end lasts that one day.
        end, _ = to_utc(date.fromordinal(raw_start.toordinal() + 1), zone)
    else:
        return None
    if not start < end:
        return None
    return EventInstance(component=component, start=start, end=end, all_day=all_day)


def to_utc(value: date | datetime, zone: ZoneInfo) -> tuple[datetime, bool]:
    """Resolve an iCalendar time to aware UTC; floating and DATE values are in ``zone``.

    Returns:
        The UTC datetime and whether ``value`` was a DATE (all-day).
    """
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=zone)  # floating: wall-clock in the person's zone
        return value.astimezone(UTC), False
    return datetime.combine(value, time(), tzinfo=zone).astimezone(UTC), True


def _uid(component: icalendar.Component) -> str:
    return str(component.get("UID", "?"))


def _text(component: icalendar.Component, name: str) -> str:
    value = component.get(name)
    if isinstance(value, list):  # a repeated property: the first one wins
        value = value[0] if value else None
    return "" if value is None else str(value).strip().upper()


def _show_as(event: icalendar.Component) -> ShowAs:
    cdo = _text(event, "X-MICROSOFT-CDO-BUSYSTATUS")
    if cdo:
        return _SHOW_AS_BY_CDO.get(cdo, ShowAs.UNKNOWN)
    return ShowAs.FREE if _text(event, "TRANSP") == "TRANSPARENT" else ShowAs.BUSY


def _goodwill_key(event: icalendar.Component) -> str | None:
    """The idempotency key on one of goodwill's own events (``X-GOODWILL-KEY``), else None."""
    value = event.get("X-GOODWILL-KEY")
    if isinstance(value, list):
        value = value[0] if value else None
    text = "" if value is None else str(value).strip()
    return text or None


def _status(event: icalendar.Component) -> EventStatus:
    return _STATUS_BY_ICS.get(_text(event, "STATUS"), EventStatus.CONFIRMED)


def _attendees(event: icalendar.Component) -> list[Any]:
    value = event.get("ATTENDEE")
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]
