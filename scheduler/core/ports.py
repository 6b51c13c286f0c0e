"""Ports: the small Protocols connectors implement, split by capability.

A read-only source (an ICS feed) implements only :class:`CalendarSource`; it never raises
``NotImplementedError`` for writes. Connectors return domain types only (aware UTC datetimes)
and raise only :mod:`scheduler.core.errors` classes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from scheduler.core.intervals import Interval
from scheduler.core.model import (
    AttendeeStatus,
    BusyQuery,
    BusyResult,
    CreatedEvent,
    EventDraft,
    Person,
)

if TYPE_CHECKING:
    from scheduler.core.policy import Policy

__all__ = [
    "BackendFactory",
    "CalendarBackend",
    "CalendarSource",
    "CalendarWriter",
    "ContactHistory",
    "EventState",
    "OwnerCalendar",
    "ReplyRecorder",
    "ResponseReader",
]


@runtime_checkable
class CalendarSource(Protocol):
    """Reads busy time for many people in one window, batched as the provider allows."""

    def busy(self, query: BusyQuery) -> BusyResult: ...


@runtime_checkable
class ContactHistory(Protocol):
    """Finds organic contact: the latest past meeting the owner had with each person.

    Counts events in ``[since, until)`` on the owner's calendar where both attend and neither
    declined; returns the end time of the latest such meeting per e-mail (absent = none found).
    """

    def last_contacts(
        self, owner: Person, emails: Sequence[str], since: datetime, until: datetime
    ) -> Mapping[str, datetime]: ...


@runtime_checkable
class OwnerCalendar(Protocol):
    """Optional: reads the owner's own calendar once for both halves of a planning round.

    A connector whose :class:`ContactHistory` and :class:`CalendarSource` both read the owner's
    events (Google ``events.list``, Graph ``calendarView``) implements this so a round costs one
    owner read instead of two, and Graph's getSchedule carries only the stakeholders.

    ``read_owner`` reads ``owner``'s events over ``window`` (a round's history start to its
    horizon end) now and holds them; the round's ``last_contacts`` (from ``window.start``) and
    its ``busy`` (to ``window.end``, the owner's part) are served from that read, once each. The
    held read is never served to another owner, another thread or another read (a booking's
    recheck reads the provider), and expires after a short time; any read it cannot serve goes
    to the provider as before. It raises what the history read would raise.
    """

    def read_owner(self, owner: Person, window: Interval) -> None: ...


@dataclass(frozen=True, slots=True)
class EventState:
    """An event as the provider sees it now: the attendee's answer, cancellation and times.

    ``proposed`` is the ``(start, end)`` (aware UTC) the attendee proposed instead, where the
    provider shows one on the event (Graph ``attendee.proposedNewTime``); None otherwise. An
    iTIP COUNTER arrives by mail and is not read here.
    """

    response: AttendeeStatus
    cancelled: bool
    start: datetime
    end: datetime
    proposed: tuple[datetime, datetime] | None = None


@runtime_checkable
class CalendarWriter(Protocol):
    """Creates and cancels events on the organizer's calendar; the provider sends the invites.

    ``create_event`` is idempotent on ``draft.idempotency_key``: a second call with the same key
    returns the existing event with ``created=False``. ``cancel_event`` on an event that is
    already gone counts as done; so does ``cancel_by_key`` for a key that never made one.
    """

    def create_event(self, draft: EventDraft) -> CreatedEvent: ...

    def cancel_event(self, organizer: Person, provider_event_id: str) -> None: ...

    def cancel_by_key(self, organizer: Person, idempotency_key: str) -> None:
        """Cancel the event created for ``idempotency_key``, if one exists (else a no-op).

        For a meeting that must end after a create whose reply was lost: the event may or may
        not exist, and we do not know its id.
        """
        ...

    def move_event(
        self, organizer: Person, provider_event_id: str, start: datetime, end: datetime
    ) -> None:
        """Move the same event to ``[start, end)`` and tell the attendees (never cancel and
        re-create): Google ``events.patch`` with ``sendUpdates=all``, Graph ``PATCH``, CalDAV and
        iMIP a REQUEST with the same UID and a higher SEQUENCE.

        Raises:
            ResourceGone: the event no longer exists.
        """
        ...

    def find_by_key(self, organizer: Person, idempotency_key: str) -> CreatedEvent | None:
        """The live event created for ``idempotency_key`` (``created=False``), or None.

        A retry after a create whose reply was lost asks this first: found, the meeting is
        booked without a second create; not found (or cancelled), the create never landed and
        the booking starts over, clash checks included.
        """
        ...


@runtime_checkable
class ResponseReader(Protocol):
    """Reads an attendee's response to an event we created."""

    def event_state(
        self, organizer: Person, provider_event_id: str, attendee_email: str
    ) -> EventState: ...


@runtime_checkable
class ListedResponseReader(Protocol):
    """A :class:`ResponseReader` that can read many answers of one organizer's events with ONE
    listing of their calendar over ``window`` (where that costs less than a read per event)."""

    def listed_event_states(
        self, organizer: Person, wanted: Sequence[tuple[str, str]], window: Interval
    ) -> Mapping[tuple[str, str], EventState]:
        """``(provider event id, attendee e-mail) -> state`` for the wanted events the listing
        found, as :meth:`ResponseReader.event_state` would give them. An event it did not find
        (cancelled, moved out of ``window``, deleted) is absent: ask it with ``event_state``."""
        ...


@runtime_checkable
class ReplyRecorder(Protocol):
    """Records an attendee's answer that arrived out of band (an iMIP REPLY e-mail) on the
    organizer's copy, for calendars whose server does not schedule by itself."""

    def set_attendee_status(
        self,
        organizer: Person,
        provider_event_id: str,
        attendee_email: str,
        status: AttendeeStatus,
        *,
        sequence: int | None = None,
    ) -> bool: ...


@dataclass(frozen=True, slots=True)
class CalendarBackend:
    """The connector objects serving one user's provider. Writers are optional (read-only ICS)."""

    provider: str
    source: CalendarSource
    history: ContactHistory | None = None
    writer: CalendarWriter | None = None
    responses: ResponseReader | None = None


class BackendFactory(Protocol):
    """Builds the :class:`CalendarBackend` for one owner's policy (the connector registry)."""

    def __call__(self, policy: Policy) -> CalendarBackend: ...
