"""The ICS connector: a directory of ``<email>.ics`` files, and ICS feeds over HTTP.

:class:`IcsDirectory` is a complete calendar provider made of plain files — it reads busy time
and organic contact (``CalendarSource``, ``ContactHistory``) and books, cancels and reads
answers (``CalendarWriter``, ``ResponseReader``). It backs the demo and the contract tests, and
suits a site that syncs calendars to disk. :class:`IcsFeed` reads busy time from feed URLs.

Reading rules are in :mod:`connectors.ics_read`; writing mechanics in :mod:`connectors.ics_write`.

Booking writes, in this order, under the directory lock: the iTIP message to
``outbox/<uid>.ics``, the attendee's copy (only when the attendee has a file), and last the
organizer's copy. The organizer's copy is the idempotency marker: a retry after a crash finds
it missing, redoes every step and replaces the half-written copies, so nothing is doubled.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import icalendar

from connectors.attendees import invitees
from connectors.ical_common import PARTSTAT_BY_STATUS, event_uid, parse_partstat
from connectors.ics_input import (
    CalendarCache,
    FileMemo,
    ParsedCalendar,
    ReadBudget,
    file_stamp,
    shared_cache,
)
from connectors.ics_read import (
    EventInstance,
    IcsFeed,
    email_of,
    expand_instances,
    last_contact_times,
    load_calendars,
    parse_busy_blocks,
    resolve_zone,
    to_utc,
)
from connectors.ics_write import (
    GOODWILL_KEY,
    CalendarFiles,
    attendee_emails,
    build_invite,
    find_event,
    itip_message,
    new_calendar,
    remove_event,
    reschedule,
    seed_event,
    set_partstat,
)
from scheduler.core.clock import Clock, SystemClock
from scheduler.core.errors import (
    CalendarDataError,
    CalendarUnavailable,
    ConfigurationError,
    InvalidRequest,
    ResourceGone,
)
from scheduler.core.model import (
    AttendeeStatus,
    BusyBlock,
    BusyQuery,
    BusyResult,
    CreatedEvent,
    EventDraft,
    Person,
    ShowAs,
)
from scheduler.core.ports import EventState
from scheduler.limits import Limits

__all__ = [
    "GOODWILL_KEY",
    "EventInstance",
    "IcsDirectory",
    "IcsFeed",
    "expand_instances",
    "last_contact_times",
    "load_calendars",
    "parse_busy_blocks",
]

PROVIDER = "ics"


@dataclass(frozen=True, slots=True)
class _Copy:
    path: Path
    calendar: icalendar.Calendar
    event: icalendar.Event


class IcsDirectory:
    """A writable local calendar: one ``<email>.ics`` per person in ``path``.

    Implements ``CalendarSource``, ``ContactHistory``, ``CalendarWriter`` and ``ResponseReader``.
    A person without a file, or whose file cannot be parsed, is reported in
    ``BusyResult.unavailable`` with a reason naming the file; one bad file never fails the read.

    Args:
        path: the directory (created on the first write).
        limits: file size and expansion limits (default :class:`~scheduler.settings.Limits`).
        clock: source of DTSTAMP values (default: the system clock).
        cache: parsed calendars by file and content (default: the process's
            :func:`~connectors.ics_input.shared_cache`), so a planning round parses each file
            once.
        monotonic: the clock of each read's time budget (``limits.ics_read_budget_s``).
    """

    def __init__(
        self,
        path: Path,
        *,
        limits: Limits | None = None,
        clock: Clock | None = None,
        cache: CalendarCache | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self._files = CalendarFiles(path)
        self._limits = limits or Limits()
        self._clock: Clock = clock or SystemClock()
        self._cache = cache if cache is not None else shared_cache(self._limits)
        self._monotonic = monotonic

    # ------------------------------------------------------------------ reading

    def busy(self, query: BusyQuery) -> BusyResult:
        """Busy blocks per person in ``query.window`` (aware UTC, clipped to the window)."""
        blocks: dict[str, list[BusyBlock]] = {}
        unavailable: dict[str, str] = {}
        for person in query.people:
            try:
                parsed, budget, memo = self._parsed(person.email)
                blocks[person.email] = parse_busy_blocks(
                    parsed,
                    source=parsed.source,
                    owner_email=person.email,
                    zone=person.timezone,
                    window=query.window,
                    max_instances=self._limits.max_instances,
                    limits=self._limits,
                    budget=budget,
                    memo=memo,
                )
            except CalendarUnavailable as exc:
                unavailable[person.email] = str(exc)
            except CalendarDataError as exc:
                unavailable[person.email] = f"calendar unavailable: {exc}"
            except ConfigurationError as exc:  # the person's zone is not an IANA name
                unavailable[person.email] = f"calendar unavailable: {exc}"
        return BusyResult(blocks=blocks, unavailable=unavailable)

    def last_contacts(
        self, owner: Person, emails: Sequence[str], since: datetime, until: datetime
    ) -> Mapping[str, datetime]:
        """Latest meeting end per stakeholder on the owner's calendar in ``[since, until)``.

        Raises:
            CalendarUnavailable: the owner has no file.
            CalendarDataError: the owner's file cannot be parsed (names the file).
        """
        parsed, budget, memo = self._parsed(owner.email)
        return last_contact_times(
            parsed,
            source=parsed.source,
            owner_email=owner.email,
            zone=owner.timezone,
            emails=emails,
            since=since,
            until=until,
            max_instances=self._limits.max_instances,
            limits=self._limits,
            budget=budget,
            memo=memo,
        )

    def event_state(
        self, organizer: Person, provider_event_id: str, attendee_email: str
    ) -> EventState:
        """The attendee's answer, cancellation and times of an event we booked.

        The attendee's own copy is authoritative for their answer (they change it there); the
        organizer's copy for cancellation and times (iTIP: the organizer owns those). When one
        copy is missing the other stands in.

        Raises:
            ResourceGone: no copy of the event exists, or the organizer's file no longer has it.
            CalendarUnavailable: the organizer's file cannot be parsed.
        """
        organizer_copy = self._copy(organizer.email, provider_event_id, strict=True)
        attendee_copy = self._copy(attendee_email, provider_event_id)
        # Only an organizer without any file lets the attendee's copy stand in for theirs.
        authority = organizer_copy
        if authority is None and not self._exists(organizer.email):
            authority = attendee_copy
        if authority is None:
            raise ResourceGone(
                f"event {provider_event_id} not found on {organizer.email}'s calendar",
                provider=PROVIDER,
                status=404,
            )
        answer_from = attendee_copy or authority
        response = _partstat_of(answer_from.event, attendee_email)
        if response is None and answer_from is not authority:
            response = _partstat_of(authority.event, attendee_email)
        cancelled = any(
            str(c.event.get("STATUS", "")).upper() == "CANCELLED"
            for c in (organizer_copy, attendee_copy)
            if c is not None
        )
        zone = resolve_zone(organizer.timezone)
        start, _ = to_utc(authority.event.decoded("DTSTART"), zone)
        end = start
        if "DTEND" in authority.event:
            end, _ = to_utc(authority.event.decoded("DTEND"), zone)
        elif "DURATION" in authority.event:  # clients that move events may write DURATION
            end = start + authority.event.decoded("DURATION")
        return EventState(
            response=response or AttendeeStatus.NEEDS_ACTION,
            cancelled=cancelled,
            start=start,
            end=end,
        )

    # ------------------------------------------------------------------ writing

    def create_event(self, draft: EventDraft) -> CreatedEvent:
        """Book ``draft``: organizer's and attendees' copies plus an iTIP REQUEST in the outbox.

        Idempotent on ``draft.idempotency_key``: when the organizer's file already holds the
        UID, nothing is written and ``created`` is False.

        Raises:
            CalendarUnavailable: the organizer's file exists but cannot be parsed.
        """
        uid = event_uid(draft.idempotency_key)
        with self._files.locked():
            organizer_path = self._path(draft.organizer.email)
            organizer_calendar = self._load_for_write(organizer_path, create=True)
            if find_event(organizer_calendar, uid) is not None:
                return CreatedEvent(provider_event_id=uid, created=False)
            event = build_invite(draft, uid=uid, stamp=self._clock.now())
            self._files.save(self._files.outbox_path(uid), itip_message("REQUEST", event))
            # Every attendee's file gets the event (a group's too); one outbox REQUEST for all.
            for person in invitees(draft, provider=PROVIDER, limit=None):
                attendee_path = self._path(person.email)
                if attendee_path.exists():
                    attendee_calendar = self._load_for_write(attendee_path, create=False)
                    remove_event(attendee_calendar, uid)  # a copy left by a crashed attempt
                    attendee_calendar.add_component(event.copy())
                    self._files.save_calendar(attendee_path, attendee_calendar)
            organizer_calendar.add_component(event)
            self._files.save_calendar(organizer_path, organizer_calendar)
        return CreatedEvent(provider_event_id=uid, created=True)

    def cancel_event(self, organizer: Person, provider_event_id: str) -> None:
        """Mark the event CANCELLED (SEQUENCE + 1) in every copy and queue an iTIP CANCEL.

        An unknown UID, a missing organizer file or an already cancelled event counts as done.
        """
        uid = provider_event_id
        with self._files.locked():
            organizer_path = self._path(organizer.email)
            if not organizer_path.exists():
                return
            organizer_calendar = self._load_for_write(organizer_path, create=False)
            event = find_event(organizer_calendar, uid)
            if event is None or str(event.get("STATUS", "")).upper() == "CANCELLED":
                return
            sequence = int(event.get("SEQUENCE", 0)) + 1
            stamp = self._clock.now()
            _mark_cancelled(event, sequence, stamp)
            self._files.save(self._files.outbox_path(uid, ".cancel"), itip_message("CANCEL", event))
            for email in attendee_emails(event):
                copy = self._copy(email, uid)
                if copy is not None:
                    _mark_cancelled(copy.event, sequence, stamp)
                    self._files.save_calendar(copy.path, copy.calendar)
            self._files.save_calendar(organizer_path, organizer_calendar)

    def move_event(
        self, organizer: Person, provider_event_id: str, start: datetime, end: datetime
    ) -> None:
        """Move the event to ``[start, end)`` in every copy (SEQUENCE + 1) and queue the REQUEST.

        Same order as booking, under the directory lock: the iTIP REQUEST for the new SEQUENCE
        to ``outbox/<uid>.request-<sequence>.ics`` (the first REQUEST is kept), the attendees'
        copies, the organizer's copy last. An organizer's copy already at ``[start, end)`` means
        the move is done (a retry writes nothing); a crash before it redoes every step with the
        same SEQUENCE. Attendees are asked to answer again (``PARTSTAT=NEEDS-ACTION``).

        Raises:
            ResourceGone: no organizer file, or it holds no live copy of the event.
            CalendarUnavailable: the organizer's file cannot be parsed.
            InvalidRequest: ``start``/``end`` are naive or ``end`` is not after ``start``.
        """
        if start.tzinfo is None or end.tzinfo is None or not start < end:
            raise InvalidRequest(
                "a move needs aware start and end, the end after the start", provider=PROVIDER
            )
        uid = provider_event_id
        with self._files.locked():
            organizer_path = self._path(organizer.email)
            event = None
            if organizer_path.exists():
                organizer_calendar = self._load_for_write(organizer_path, create=False)
                event = find_event(organizer_calendar, uid)
            if event is None or str(event.get("STATUS", "")).upper() == "CANCELLED":
                raise ResourceGone(
                    f"event {uid} not found on {organizer.email}'s calendar",
                    provider=PROVIDER,
                    status=404,
                )
            if _times(event, organizer.timezone) == (start, end):
                return
            stamp = self._clock.now()
            sequence = reschedule(event, start, end, zone=organizer.timezone, stamp=stamp)
            self._files.save(
                self._files.outbox_path(uid, f".request-{sequence}"),
                itip_message("REQUEST", event),
            )
            for email in attendee_emails(event):
                copy = self._copy(email, uid)
                if copy is not None:
                    reschedule(copy.event, start, end, zone=organizer.timezone, stamp=stamp)
                    copy.event.pop("SEQUENCE", None)
                    copy.event.add("SEQUENCE", sequence)  # in step with the organizer's copy
                    self._files.save_calendar(copy.path, copy.calendar)
            self._files.save_calendar(organizer_path, organizer_calendar)

    def cancel_by_key(self, organizer: Person, idempotency_key: str) -> None:
        """Cancel the event for ``idempotency_key`` if it exists (its UID derives from the key)."""
        self.cancel_event(organizer, event_uid(idempotency_key))

    def find_by_key(self, organizer: Person, idempotency_key: str) -> CreatedEvent | None:
        """The organizer's live copy of the event for ``idempotency_key``, if there is one."""
        uid = event_uid(idempotency_key)
        with self._files.locked():
            path = self._path(organizer.email)
            if not path.exists():
                return None
            event = find_event(self._load_for_write(path, create=False), uid)
        if event is None or str(event.get("STATUS", "")).upper() == "CANCELLED":
            return None
        return CreatedEvent(provider_event_id=uid, created=False)

    def respond(self, attendee_email: str, provider_event_id: str, status: AttendeeStatus) -> None:
        """Simulate the attendee answering: set their PARTSTAT in every copy of the event.

        Raises:
            ResourceGone: no file holds the event with that attendee.
            ValueError: ``status`` is ORGANIZER, which is no answer.
        """
        if status not in PARTSTAT_BY_STATUS:
            raise ValueError(f"{status} is not an attendee answer")
        partstat = PARTSTAT_BY_STATUS[status]
        found = False
        with self._files.locked():
            for path in self._files.person_files():
                try:
                    calendar = self._files.load(path)
                except CalendarDataError:
                    continue  # someone else's broken file cannot hold our copy
                event = find_event(calendar, provider_event_id)
                if event is not None and set_partstat(event, attendee_email, partstat):
                    found = True
                    self._files.save_calendar(path, calendar)
        if not found:
            raise ResourceGone(
                f"event {provider_event_id} with attendee {attendee_email} not found",
                provider=PROVIDER,
                status=404,
            )

    def set_attendee_status(
        self,
        organizer: Person,
        provider_event_id: str,
        attendee_email: str,
        status: AttendeeStatus,
        *,
        sequence: int | None = None,
    ) -> bool:
        """Record an answer that came by e-mail (:class:`scheduler.core.ports.ReplyRecorder`).

        A reply whose ``sequence`` is older than the organizer's copy's SEQUENCE is ignored
        (RFC 5546 §2.1.5: it answers a version of the event that no longer stands) and False
        is returned.

        Raises:
            ResourceGone: no file holds the event with that attendee.
        """
        if sequence is not None:
            with self._files.locked():
                copy = self._copy(organizer.email, provider_event_id)
            if copy is not None and sequence < int(copy.event.get("SEQUENCE", 0)):
                return False
        self.respond(attendee_email, provider_event_id, status)
        return True

    def add_event(
        self,
        person: Person,
        start: datetime,
        end: datetime,
        *,
        summary: str = "Busy",
        show_as: ShowAs = ShowAs.BUSY,
        uid: str | None = None,
    ) -> str:
        """Put a plain event on ``person``'s calendar (creating the file); returns its UID.

        For tests and the demo: what the person would do in their own calendar client.
        """
        uid = uid or f"{uuid.uuid4().hex}@goodwill-seed"
        with self._files.locked():
            path = self._path(person.email)
            calendar = self._load_for_write(path, create=True)
            seed_event(
                calendar,
                uid=uid,
                start=start,
                end=end,
                zone=person.timezone,
                summary=summary,
                show_as=show_as,
                stamp=self._clock.now(),
            )
            self._files.save_calendar(path, calendar)
        return uid

    # ------------------------------------------------------------------ helpers

    def _path(self, email: str) -> Path:
        try:
            return self._files.path_for(email)
        except ValueError as exc:
            raise CalendarUnavailable(f"calendar unavailable: {exc}", provider=PROVIDER) from exc

    def _exists(self, email: str) -> bool:
        try:
            return self._files.path_for(email).exists()
        except ValueError:
            return False

    def _parsed(self, email: str) -> tuple[ParsedCalendar, ReadBudget, FileMemo | None]:
        """The person's file parsed (through the cache), the budget its read started, and
        where its expansions are kept (None when the cache does not keep the file).

        A file unmodified for a while and unchanged since it was parsed (same device, inode,
        size and time stamp: :func:`~connectors.ics_input.file_stamp`) is not even read; any
        other is read, and its digest decides whether it is parsed again (and its expansions
        made again: they are kept with the parse).
        """
        path = self._path(email)
        key = str(path.resolve())
        stamp = file_stamp(path)
        if stamp is not None:
            kept = self._cache.unchanged(key, stamp, source=path.name, limits=self._limits)
            if kept is not None:
                budget = ReadBudget.of(path.name, self._limits, self._monotonic)
                memo = self._cache.memo(key, kept, source=path.name, limits=self._limits)
                return kept, budget, memo
        data, name = self._read(email)
        budget = ReadBudget.of(name, self._limits, self._monotonic)
        parsed = self._cache.parse(
            key, data, source=name, limits=self._limits, budget=budget, stamp=stamp
        )
        return parsed, budget, self._cache.memo(key, parsed, source=name, limits=self._limits)

    def _read(self, email: str) -> tuple[bytes, str]:
        path = self._path(email)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise CalendarUnavailable(
                f"calendar unavailable: no file {path.name}", provider=PROVIDER
            ) from None
        except OSError as exc:
            raise CalendarUnavailable(
                f"calendar unavailable: cannot read {path.name} ({exc.strerror})",
                provider=PROVIDER,
            ) from exc
        if size > self._limits.ics_max_bytes:
            raise CalendarDataError(
                path.name,
                f"file is larger than {self._limits.ics_max_bytes} bytes "
                "(limits.ics_max_bytes); refused",
            )
        try:
            return path.read_bytes(), path.name
        except OSError as exc:
            raise CalendarUnavailable(
                f"calendar unavailable: cannot read {path.name} ({exc.strerror})",
                provider=PROVIDER,
            ) from exc

    def _load_for_write(self, path: Path, *, create: bool) -> icalendar.Calendar:
        if create and not path.exists():
            return new_calendar()
        try:
            return self._files.load(path)
        except CalendarDataError as exc:
            # Never overwrite a file we cannot parse: that would destroy the person's data.
            raise CalendarUnavailable(
                f"calendar unavailable: {exc}; not writing to it", provider=PROVIDER
            ) from exc

    def _copy(self, email: str, uid: str, *, strict: bool = False) -> _Copy | None:
        """The copy of event ``uid`` in ``email``'s file; None when absent.

        A file that cannot be parsed counts as holding no copy, unless ``strict``: then it
        raises CalendarUnavailable, because "gone" would wrongly tell the caller the event was
        deleted.
        """
        try:
            path = self._files.path_for(email)
        except ValueError:
            return None
        if not path.exists():
            return None
        try:
            calendar = self._files.load(path)
        except CalendarDataError as exc:
            if strict:
                raise CalendarUnavailable(
                    f"calendar unavailable: {exc}", provider=PROVIDER
                ) from exc
            return None
        event = find_event(calendar, uid)
        return None if event is None else _Copy(path, calendar, event)


def _times(event: icalendar.Component, zone: str) -> tuple[datetime, datetime]:
    """The event's ``(start, end)`` in UTC (floating times in ``zone``)."""
    tz = resolve_zone(zone)
    start, _ = to_utc(event.decoded("DTSTART"), tz)
    if "DTEND" in event:
        end, _ = to_utc(event.decoded("DTEND"), tz)
    else:
        end = start + event.decoded("DURATION") if "DURATION" in event else start
    return start, end


def _mark_cancelled(event: icalendar.Event, sequence: int, stamp: datetime) -> None:
    for name in ("STATUS", "SEQUENCE", "DTSTAMP"):
        event.pop(name, None)
    event.add("STATUS", "CANCELLED")
    event.add("SEQUENCE", sequence)
    event.add("DTSTAMP", stamp.astimezone(UTC))


def _partstat_of(event: icalendar.Component, attendee_email: str) -> AttendeeStatus | None:
    value = event.get("ATTENDEE")
    items = [] if value is None else value if isinstance(value, list) else [value]
    for attendee in items:
        if email_of(attendee) == email_of(attendee_email):
            return parse_partstat(attendee.params.get("PARTSTAT"))
    return None
