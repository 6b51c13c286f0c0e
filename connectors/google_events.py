"""Pure translation between Google Calendar v3 event JSON and goodwill's domain types.

No I/O here: :mod:`connectors.google` does the calls, this module shapes bodies and reads
responses. Every datetime leaving this module is aware UTC.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from connectors.attendees import GOOGLE_MAX_ATTENDEES, invitees
from scheduler.core.errors import CalendarDataError
from scheduler.core.model import AttendeeStatus, BusyBlock, EventDraft, EventStatus, ShowAs

__all__ = [
    "Bounds",
    "Timed",
    "attendee_status",
    "busy_block",
    "conference_request_id",
    "event_bounds",
    "goodwill_key",
    "google_event_id",
    "insert_body",
    "move_body",
    "parse_instant",
    "rfc3339",
    "self_response",
    "timed_events",
]

#: ``(start, end, all_day)`` of an event, aware UTC (:func:`event_bounds`).
Bounds = tuple[datetime, datetime, bool]
#: An event with its bounds read once, or None when they are unreadable (whoever needs them
#: then calls :func:`event_bounds`, which says what is wrong).
Timed = tuple[Mapping[str, Any], Bounds | None]

#: Google ``responseStatus`` -> goodwill's answer.
_RESPONSES: dict[str, AttendeeStatus] = {
    "accepted": AttendeeStatus.ACCEPTED,
    "tentative": AttendeeStatus.TENTATIVE,
    "declined": AttendeeStatus.DECLINED,
    "needsAction": AttendeeStatus.NEEDS_ACTION,
}

_STATUSES: dict[str, EventStatus] = {
    "confirmed": EventStatus.CONFIRMED,
    "tentative": EventStatus.TENTATIVE,
    "cancelled": EventStatus.CANCELLED,
}


def google_event_id(idempotency_key: str) -> str:
    """The client-supplied Google event id for a meeting: stable, and valid for ``Event.id``.

    ``Event.id`` must be base32hex (lowercase ``a-v`` and ``0-9``), 5-1024 characters. We take
    SHA-256 of the key and base32hex-encode it: 52 characters, so a collision is as unlikely as
    a SHA-256 collision, and a retried create reuses the id and gets 409 instead of a duplicate.
    """
    digest = hashlib.sha256(idempotency_key.encode("utf-8")).digest()
    return base64.b32hexencode(digest).decode("ascii").rstrip("=").lower()


def conference_request_id(idempotency_key: str) -> str:
    """``createRequest.requestId`` for a Meet link: derived from the key, unlike the event id.

    Google ignores a repeated requestId, which is what we want for a retried create of the same
    meeting; a different meeting has a different key and so a different requestId.
    """
    return "goodwill-" + hashlib.sha256(f"meet:{idempotency_key}".encode()).hexdigest()[:32]


def rfc3339(moment: datetime) -> str:
    """An aware datetime as RFC 3339 in UTC (``2026-01-05T09:00:00Z``)."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime cannot cross to Google")
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def insert_body(draft: EventDraft, event_id: str) -> dict[str, Any]:
    """The ``events.insert`` body for ``draft``; times are written in the organizer's zone.

    Raises:
        AttendeeLimitExceeded: more attendees than Google takes (:mod:`connectors.attendees`).
    """
    zone = ZoneInfo(draft.organizer.timezone)
    body: dict[str, Any] = {
        "id": event_id,
        "summary": draft.title,
        "description": draft.description,
        "start": _when(draft.start, zone, draft.organizer.timezone),
        "end": _when(draft.end, zone, draft.organizer.timezone),
        # Every attendee of the one event (a group's too); refused above Google's limit.
        "attendees": [
            {"email": person.email, "displayName": person.name}
            for person in invitees(draft, provider="google", limit=GOOGLE_MAX_ATTENDEES)
        ],
        # Private properties live on the organizer's copy only: attendees never see our key.
        "extendedProperties": {"private": {"goodwill": "1", "goodwillKey": draft.idempotency_key}},
        "reminders": {"useDefault": True},
    }
    if draft.location:
        body["location"] = draft.location
    if draft.video == "meet":
        body["conferenceData"] = {
            "createRequest": {
                "requestId": conference_request_id(draft.idempotency_key),
                "conferenceSolutionKey": {"type": "hangoutsMeet"},
            }
        }
    return body


def move_body(zone_name: str, start: datetime, end: datetime) -> dict[str, Any]:
    """The ``events.patch`` body moving an event to ``[start, end)``: only ``start`` and ``end``,
    shaped as :func:`insert_body` writes them (wall-clock time in ``zone_name`` plus the zone)."""
    zone = ZoneInfo(zone_name)
    return {"start": _when(start, zone, zone_name), "end": _when(end, zone, zone_name)}


def _when(moment: datetime, zone: ZoneInfo, zone_name: str) -> dict[str, str]:
    return {"dateTime": moment.astimezone(zone).isoformat(), "timeZone": zone_name}


def event_bounds(event: Mapping[str, Any], zone: str) -> Bounds:
    """``(start, end, all_day)`` of an event in UTC.

    Args:
        event: Google event JSON.
        zone: IANA zone that resolves all-day dates and offset-less times (the calendar owner's).

    Raises:
        CalendarDataError: when start/end are missing or malformed.
    """
    try:
        start, all_day = _moment(event["start"], zone)
        end, _ = _moment(event["end"], zone)
    except (KeyError, TypeError, ValueError) as exc:
        raise CalendarDataError(
            f"google event {event.get('id', '?')}", f"unreadable start/end: {exc}"
        ) from exc
    return start, end, all_day


def timed_events(events: Iterable[Mapping[str, Any]], zone: str) -> list[Timed]:
    """Each event with its :func:`event_bounds` in ``zone`` (None where they are unreadable)."""
    out: list[Timed] = []
    for event in events:
        try:
            out.append((event, event_bounds(event, zone)))
        except CalendarDataError:
            out.append((event, None))
    return out


def parse_instant(text: object) -> datetime:
    """An RFC 3339 instant from a Google reply (freeBusy ``busy[].start``) as aware UTC.

    Raises:
        CalendarDataError: when the value is not an RFC 3339 date-time with an offset.
    """
    try:
        parsed = datetime.fromisoformat(str(text))
    except ValueError as exc:
        raise CalendarDataError("google freeBusy", f"unreadable time {text!r}") from exc
    if parsed.tzinfo is None:
        raise CalendarDataError("google freeBusy", f"time without offset {text!r}")
    return parsed.astimezone(UTC)


def _moment(value: Mapping[str, Any], zone: str) -> tuple[datetime, bool]:
    if "dateTime" in value:
        parsed = datetime.fromisoformat(str(value["dateTime"]))
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=ZoneInfo(str(value.get("timeZone") or zone)))
        return parsed.astimezone(UTC), False
    day = date.fromisoformat(str(value["date"]))
    local = datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(zone))
    return local.astimezone(UTC), True


def attendee_status(value: object) -> AttendeeStatus:
    """Google ``responseStatus`` to :class:`AttendeeStatus` (unknown values count as unanswered)."""
    return _RESPONSES.get(str(value), AttendeeStatus.NEEDS_ACTION)


def self_response(event: Mapping[str, Any]) -> AttendeeStatus:
    """The calendar owner's own answer: ORGANIZER for their own events, else their attendee one."""
    if event.get("organizer", {}).get("self"):
        return AttendeeStatus.ORGANIZER
    for attendee in event.get("attendees", []):
        if attendee.get("self"):
            return attendee_status(attendee.get("responseStatus"))
    # No attendee list (a private event, or one created on this calendar): it is their own.
    return AttendeeStatus.ORGANIZER


def busy_block(event: Mapping[str, Any], zone: str, bounds: Bounds | None = None) -> BusyBlock:
    """One event on the owner's own calendar as a :class:`BusyBlock`, busy rules not yet applied.

    ``show_as``: ``outOfOffice`` -> OOF, ``workingLocation`` -> WORKING_ELSEWHERE,
    ``transparency: transparent`` -> FREE, a tentative answer -> TENTATIVE (as Graph reports it),
    otherwise BUSY. ``status`` and ``response`` carry the event's status and the owner's answer
    (``attendees[self=true].responseStatus``) so the rules can treat declined, unanswered and
    cancelled events per policy. ``key`` is the goodwill idempotency key of one of our own
    events (private extended property ``goodwillKey``, on the organizer's copy only).
    ``bounds``: the event's :func:`event_bounds` in ``zone``, when they were read already.
    """
    start, end, all_day = bounds if bounds is not None else event_bounds(event, zone)
    response = self_response(event)
    event_type = event.get("eventType", "default")
    if event_type == "outOfOffice":
        show_as = ShowAs.OOF
    elif event_type == "workingLocation":
        show_as = ShowAs.WORKING_ELSEWHERE
    elif event.get("transparency") == "transparent":
        show_as = ShowAs.FREE
    elif response is AttendeeStatus.TENTATIVE:
        show_as = ShowAs.TENTATIVE
    else:
        show_as = ShowAs.BUSY
    return BusyBlock(
        start=start,
        end=end,
        show_as=show_as,
        status=_STATUSES.get(str(event.get("status", "confirmed")), EventStatus.CONFIRMED),
        response=response,
        all_day=all_day,
        key=goodwill_key(event),
    )


def goodwill_key(event: Mapping[str, Any]) -> str | None:
    """The idempotency key goodwill stored on its own event (``goodwillKey``), else None."""
    private = (event.get("extendedProperties") or {}).get("private") or {}
    key = private.get("goodwillKey") if private.get("goodwill") == "1" else None
    return key if isinstance(key, str) and key else None
