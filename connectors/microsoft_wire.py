"""Graph wire values <-> domain values: times, free/busy statuses, responses, working hours.

Pure functions, no I/O. Graph's ``dateTimeTimeZone`` is a *local* wall-clock string plus a zone
name that may be a Windows name (``Pacific Standard Time``), an IANA name or ``UTC``; every
datetime leaving this module is aware UTC.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from connectors.windows_zones import to_iana, to_windows, zone
from scheduler.core.errors import ProviderUnavailable
from scheduler.core.model import (
    AttendeeStatus,
    BusyBlock,
    EventStatus,
    ShowAs,
    TimeRange,
    WeeklyHours,
)
from scheduler.core.ports import EventState

__all__ = [
    "DAY_INDEX",
    "address_of",
    "event_state_from",
    "format_local",
    "graph_zone_name",
    "parse_date_time_zone",
    "parse_response",
    "parse_show_as",
    "parse_working_hours",
    "utc_date_time_zone",
    "view_busy_block",
]

#: Graph ``dayOfWeek`` -> ``date.weekday()``.
DAY_INDEX: Mapping[str, int] = {
    "monday": 0,
    "tuesday": 1,
    "wednesday": 2,
    "thursday": 3,
    "friday": 4,
    "saturday": 5,
    "sunday": 6,
}

#: getSchedule ``scheduleItem.status`` (freeBusyStatus) -> ShowAs; the core's busy rules decide.
_SHOW_AS: Mapping[str, ShowAs] = {
    "free": ShowAs.FREE,
    "tentative": ShowAs.TENTATIVE,
    "busy": ShowAs.BUSY,
    "oof": ShowAs.OOF,
    "workingelsewhere": ShowAs.WORKING_ELSEWHERE,
    "unknown": ShowAs.UNKNOWN,
}

#: ``attendee.status.response`` (responseType) -> AttendeeStatus.
_RESPONSE: Mapping[str, AttendeeStatus] = {
    "none": AttendeeStatus.NEEDS_ACTION,
    "notresponded": AttendeeStatus.NEEDS_ACTION,
    "accepted": AttendeeStatus.ACCEPTED,
    "tentativelyaccepted": AttendeeStatus.TENTATIVE,
    "declined": AttendeeStatus.DECLINED,
    "organizer": AttendeeStatus.ORGANIZER,
}


def _parse_naive(text: str) -> datetime:
    # Graph sends 7 fractional digits ("2026-03-02T09:00:00.0000000"); keep at most 6.
    head, dot, frac = text.partition(".")
    frac = "".join(ch for ch in frac if ch.isdigit())[:6]
    value = datetime.fromisoformat(head + (f".{frac}" if dot and frac else ""))
    return value


def parse_date_time_zone(value: Mapping[str, Any], default_zone: str = "UTC") -> datetime:
    """An aware UTC datetime from a Graph ``dateTimeTimeZone``.

    Args:
        value: ``{"dateTime": "2026-03-02T09:00:00.0000000", "timeZone": "UTC"}``; the zone
            may be a Windows name (``W. Europe Standard Time``) or an IANA name.
        default_zone: used when ``timeZone`` is missing (the ``Prefer: outlook.timezone`` zone).

    Raises:
        ValueError: unparseable ``dateTime`` or unknown zone name.
    """
    local = _parse_naive(str(value["dateTime"]))
    if local.tzinfo is not None:
        return local.astimezone(UTC)
    tz = zone(str(value.get("timeZone") or default_zone))
    return local.replace(tzinfo=tz).astimezone(UTC)


def format_local(moment: datetime, tz: ZoneInfo) -> str:
    """``moment`` as a wall-clock string in ``tz`` (``2026-03-02T09:00:00``), as Graph expects."""
    return moment.astimezone(tz).strftime("%Y-%m-%dT%H:%M:%S")


def graph_zone_name(iana: str) -> tuple[str, ZoneInfo]:
    """The zone name to send Graph for an IANA zone, and the zone to format times in.

    Windows names are the form every Exchange version accepts; zones CLDR cannot map are sent as
    UTC (the instant is still exact, only the invite's display zone differs).
    """
    windows = to_windows(iana)
    valid = to_iana(iana)
    if windows is None or valid is None:
        return "UTC", ZoneInfo("UTC")
    return windows, ZoneInfo(valid)


def utc_date_time_zone(moment: datetime) -> dict[str, str]:
    """A ``dateTimeTimeZone`` in UTC for an aware datetime."""
    return {"dateTime": format_local(moment, ZoneInfo("UTC")), "timeZone": "UTC"}


def parse_show_as(status: str | None) -> ShowAs:
    """``scheduleItem.status`` -> :class:`ShowAs`; anything unexpected is ``UNKNOWN``."""
    return _SHOW_AS.get((status or "unknown").lower(), ShowAs.UNKNOWN)


def parse_response(response: str | None) -> AttendeeStatus:
    """``status.response`` -> :class:`AttendeeStatus`; missing means not answered."""
    return _RESPONSE.get((response or "none").lower(), AttendeeStatus.NEEDS_ACTION)


def _parse_time_of_day(text: str) -> time:
    head = text.split(".")[0]
    return time.fromisoformat(head)


def parse_working_hours(value: Mapping[str, Any]) -> tuple[str, WeeklyHours] | None:
    """``(iana_zone, WeeklyHours)`` from getSchedule's ``workingHours``, None when unusable.

    Graph reports one span for all working days (``daysOfWeek``, ``startTime``, ``endTime``) in
    ``timeZone.name``, which is often a Windows name. A custom zone (no usable name), an empty
    day list or an inverted span gives None, and the policy's defaults apply.
    """
    zone_info = value.get("timeZone")
    name = zone_info.get("name") if isinstance(zone_info, Mapping) else None
    iana = to_iana(name) if isinstance(name, str) else None
    if iana is None:
        return None
    try:
        start = _parse_time_of_day(str(value["startTime"]))
        end = _parse_time_of_day(str(value["endTime"]))
    except (KeyError, ValueError):
        return None
    if end == time(0, 0):
        end = time(23, 59, 59)  # "until midnight"
    if not start < end:
        return None
    days = [DAY_INDEX[d.lower()] for d in value.get("daysOfWeek", []) if d.lower() in DAY_INDEX]
    if not days:
        return None
    span = (TimeRange(start, end),)
    return iana, WeeklyHours({day: span for day in sorted(set(days))})


def view_busy_block(
    event: Mapping[str, Any], owner_email: str, key: str | None = None
) -> BusyBlock | None:
    """One ``calendarView`` event of the owner's own calendar as a :class:`BusyBlock`, busy
    rules not yet applied (None for an empty event).

    The fields a getSchedule item carries are mapped as there: ``showAs`` (the same
    ``freeBusyStatus`` values) through :func:`parse_show_as`, times in UTC. The event adds what
    getSchedule hides, so the owner's busy rules apply in full, as on Google: ``isCancelled`` ->
    ``CANCELLED``, ``isAllDay`` -> ``all_day``, the owner's ``responseStatus`` -> ``response``
    (``organizer`` -> ORGANIZER; ``none`` on an event the owner organises counts as theirs, as
    Google's ``self_response`` does). ``key`` is goodwill's idempotency key when the event is
    one of ours (the caller reads our extended property).

    Raises:
        ProviderUnavailable: the event's times cannot be read (a garbled response).
    """
    try:
        start = parse_date_time_zone(event["start"])
        end = parse_date_time_zone(event["end"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ProviderUnavailable(
            f"calendarView returned an unreadable event time ({exc})", provider="microsoft"
        ) from exc
    if not end > start:
        return None
    own = event.get("responseStatus")
    response = parse_response(own.get("response") if isinstance(own, Mapping) else "organizer")
    if response is AttendeeStatus.NEEDS_ACTION and address_of(event.get("organizer")) in (
        "",
        owner_email.lower(),
    ):
        response = AttendeeStatus.ORGANIZER
    return BusyBlock(
        start=start,
        end=end,
        show_as=parse_show_as(event.get("showAs")),
        status=EventStatus.CANCELLED if event.get("isCancelled") else EventStatus.CONFIRMED,
        response=response,
        all_day=bool(event.get("isAllDay")),
        key=key,
    )


def address_of(party: Any) -> str:
    """The lower-cased address of a Graph ``recipient``/``attendee`` (``""`` when absent)."""
    if not isinstance(party, Mapping):
        return ""
    email = party.get("emailAddress")
    if not isinstance(email, Mapping):
        return ""
    return str(email.get("address") or "").lower()


def event_state_from(event: Mapping[str, Any], attendee_email: str) -> EventState:
    """An :class:`EventState` from a Graph event (attendees, isCancelled, start, end).

    An attendee no longer on the invite counts as having declined. Their ``proposedNewTime``
    (a counter-proposal, Graph shows it on the attendee) becomes ``proposed``; an unreadable
    one is ignored.

    Raises:
        ProviderUnavailable: the event's times cannot be read.
    """
    wanted = attendee_email.lower()
    response = AttendeeStatus.DECLINED  # removed from the invite: treated as a no
    proposed: tuple[datetime, datetime] | None = None
    for attendee in event.get("attendees") or []:
        if address_of(attendee) == wanted:
            status = attendee.get("status")
            response = parse_response(
                status.get("response") if isinstance(status, Mapping) else None
            )
            proposed = _time_slot(attendee.get("proposedNewTime"))
            break
    try:
        start = parse_date_time_zone(event["start"])
        end = parse_date_time_zone(event["end"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ProviderUnavailable(
            f"event has unreadable times ({exc})", provider="microsoft"
        ) from exc
    return EventState(
        response=response,
        cancelled=bool(event.get("isCancelled")),
        start=start,
        end=end,
        proposed=proposed,
    )


def _time_slot(value: Any) -> tuple[datetime, datetime] | None:
    """A Graph ``timeSlot`` (``{start, end}`` dateTimeTimeZone) in UTC; None when absent/bad."""
    if not isinstance(value, Mapping):
        return None
    try:
        start = parse_date_time_zone(value["start"])
        end = parse_date_time_zone(value["end"])
    except (KeyError, TypeError, ValueError):
        return None
    return (start, end) if start < end else None
