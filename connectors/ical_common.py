"""iCalendar values every iCalendar connector (ICS, CalDAV, iMIP) reads and writes alike.

One table in each direction between RFC 5545 ``PARTSTAT`` and
:class:`~scheduler.core.model.AttendeeStatus`, and the UID goodwill gives the event it books.
Pure: no I/O, no iCalendar library.

Reading (:func:`parse_partstat`): letter case does not matter; an absent PARTSTAT is
NEEDS-ACTION (RFC 5545 §3.2.12 default), and so is any value not defined for VEVENT
(``COMPLETED``, ``IN-PROCESS``, ``X-…``), as RFC 5545 tells clients to treat values they do not
recognise. ``DELEGATED`` reads as DECLINED: the person handed the meeting on, they are not coming.

>>> parse_partstat("Delegated")
<AttendeeStatus.DECLINED: 'declined'>
>>> parse_partstat(None) is parse_partstat("X-MAYBE") is AttendeeStatus.NEEDS_ACTION
True
>>> PARTSTAT_BY_STATUS[AttendeeStatus.NEEDS_ACTION]
'NEEDS-ACTION'
>>> event_uid("k-42")
'k-42@goodwill'
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from scheduler.core.model import AttendeeStatus

__all__ = [
    "PARTSTAT_BY_STATUS",
    "STATUS_BY_PARTSTAT",
    "UID_SUFFIX",
    "event_uid",
    "parse_partstat",
]

#: The RFC 5545 PARTSTAT values of a VEVENT attendee, upper case, and what each one means here.
STATUS_BY_PARTSTAT: Mapping[str, AttendeeStatus] = MappingProxyType(
    {
        "ACCEPTED": AttendeeStatus.ACCEPTED,
        "TENTATIVE": AttendeeStatus.TENTATIVE,
        "DECLINED": AttendeeStatus.DECLINED,
        "DELEGATED": AttendeeStatus.DECLINED,
        "NEEDS-ACTION": AttendeeStatus.NEEDS_ACTION,
    }
)

#: The PARTSTAT written for each attendee answer. ``ORGANIZER`` is not an answer, so it is absent.
PARTSTAT_BY_STATUS: Mapping[AttendeeStatus, str] = MappingProxyType(
    {
        AttendeeStatus.ACCEPTED: "ACCEPTED",
        AttendeeStatus.TENTATIVE: "TENTATIVE",
        AttendeeStatus.DECLINED: "DECLINED",
        AttendeeStatus.NEEDS_ACTION: "NEEDS-ACTION",
    }
)

#: Ends the UID of every event goodwill books (``<idempotency key>@goodwill``).
UID_SUFFIX = "@goodwill"


def parse_partstat(value: object) -> AttendeeStatus:
    """The :class:`AttendeeStatus` of a PARTSTAT parameter value (module rules).

    Args:
        value: the parameter as the iCalendar library gives it (a str), or None when absent.
    """
    text = str(value).upper() if value else "NEEDS-ACTION"
    return STATUS_BY_PARTSTAT.get(text, AttendeeStatus.NEEDS_ACTION)


def event_uid(idempotency_key: str) -> str:
    """The iCalendar UID of the meeting booked for ``idempotency_key`` (stable across retries).

    It is also the ``provider_event_id`` of the ICS and CalDAV connectors.
    """
    return f"{idempotency_key}{UID_SUFFIX}"
