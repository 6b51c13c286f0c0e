"""CalDAV (RFC 4791) calendars through the ``caldav`` library, with iMIP where servers need it.

Implements :class:`~scheduler.core.ports.CalendarSource`,
:class:`~scheduler.core.ports.ContactHistory`, :class:`~scheduler.core.ports.OwnerCalendar`,
:class:`~scheduler.core.ports.CalendarWriter` and :class:`~scheduler.core.ports.ResponseReader`.

**Whose busy time, read how.** ``busy(query)`` takes the owner to be ``query.people[0]`` (as the
Google and Graph connectors do) and reads the owner's own calendar with a calendar-query REPORT
(time-range; recurrences expanded by :func:`connectors.ics_read.parse_busy_blocks`, the ICS
reader's mapping: TRANSP, STATUS, all-day, the owner's PARTSTAT, and our ``X-GOODWILL-KEY`` as
``BusyBlock.key``), so the owner's busy rules apply and our own event is known by its key.
Everyone else is read with the free-busy REPORT where the server answers one (opaque periods,
no event detail: the privacy promise), else with a calendar-query as well. One planning round
reads the owner once (``read_owner``, history and horizon in one calendar-query, served to the
round's ``last_contacts`` and ``busy`` by :mod:`connectors.owner_read`), then one REPORT per
stakeholder: CalDAV has no multi-calendar free-busy outside RFC 6638 scheduling.

**Locating a person's calendar.** CalDAV has no directory of other people's calendars that
works across servers (``calendar-home-set`` is only reliably readable for the logged-in
principal), so the deployment says where each calendar lives: ``calendars`` maps an e-mail to
its calendar collection URL, and ``calendar_path`` is a template for everyone else, e.g.
``"/{user}/calendar/"`` (``{user}`` = the part before ``@``, ``{email}`` = the whole address).
Relative entries are resolved against ``url``. A person with neither is reported unavailable.

**Server differences** come from :mod:`connectors.caldav_quirks` (``server=``): free-busy
REPORT or calendar-query for stakeholders, whether the server schedules (RFC 6638) or we e-mail
iTIP ourselves.

**Events we create** live at a resource name derived from the idempotency key
(``<calendar>/<key>.ics``) with ``UID = <key>@goodwill``; ``provider_event_id`` is that UID.
A retry finds the resource by a GET and returns ``created=False``; a race between two workers
is settled by ``If-None-Match: *`` on the PUT. When we send iMIP ourselves, a private
``X-GOODWILL-IMIP`` property on the stored copy records what was mailed, so a retry after a
crash between PUT and mail still sends the invite, and a completed one is never sent again.

**Cancelling** keeps the resource with ``STATUS:CANCELLED`` and ``SEQUENCE`` + 1 (RFC 6638
servers turn that into METHOD:CANCEL; without server scheduling we mail the CANCEL), unless
the quirks say the server cancels by DELETE.

**Moving** rewrites the organizer's copy (same UID, SEQUENCE + 1, attendees asked to answer
again) under ``If-Match``; without server scheduling we mail the REQUEST for the new SEQUENCE.

Errors are translated at this edge: 401 → AuthorizationRevoked, 403/404 on a calendar →
CalendarUnavailable (busy(): that person is listed in ``unavailable``), 404 on an event →
ResourceGone, 429 → RateLimited (``Retry-After``), 5xx/timeouts/connection errors →
ProviderUnavailable, other 4xx → InvalidRequest. A server that cannot be reached is named by
host and port with what went wrong (connection refused, timed out, name lookup failed, TLS),
never with the URL's user info (:func:`unreachable_reason`).
"""

from __future__ import annotations

import hashlib
import re
import socket
import ssl
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urljoin, urlsplit
from zoneinfo import ZoneInfo

import icalendar
from caldav.collection import Calendar as DavCalendar
from caldav.davclient import DAVClient
from caldav.lib import error as dav_error
from caldav.lib.http_sync import requests as http_lib

from connectors.attendees import IMIP_MAX_RECIPIENTS, invitees
from connectors.caldav_quirks import ServerQuirks, quirks_for
from connectors.http_common import parse_retry_after
from connectors.ical_common import PARTSTAT_BY_STATUS, event_uid, parse_partstat
from connectors.ics_read import email_of, last_contact_times, parse_busy_blocks
from connectors.ics_write import reschedule
from connectors.imip import ImipSender, event_calendar, itip_message
from connectors.owner_read import OwnerReads, Use
from scheduler.core.clock import Clock, SystemClock
from scheduler.core.errors import (
    AuthorizationRevoked,
    CalendarDataError,
    CalendarUnavailable,
    ConnectorError,
    InvalidRequest,
    ProviderUnavailable,
    RateLimited,
    ResourceGone,
)
from scheduler.core.intervals import Interval
from scheduler.core.model import (
    AttendeeStatus,
    BusyBlock,
    BusyQuery,
    BusyResult,
    CreatedEvent,
    EventDraft,
    EventStatus,
    Person,
    ShowAs,
)
from scheduler.core.ports import EventState
from scheduler.limits import Limits

__all__ = ["PROVIDER", "CalDAVCalendar", "parse_free_busy", "unreachable_reason"]

PROVIDER = "caldav"
#: Records which iTIP message we mailed for the stored copy: ``REQUEST:0``, ``CANCEL:1``.
IMIP_MARK = "X-GOODWILL-IMIP"
#: On the organizer's stored copy only (never in mailed iTIP): "created by goodwill".
GOODWILL_KEY = "X-GOODWILL-KEY"

_SAFE_NAME = re.compile(r"[A-Za-z0-9._-]{1,100}")
_FBTYPE_SHOW_AS: Mapping[str, ShowAs] = {
    "BUSY": ShowAs.BUSY,
    "BUSY-TENTATIVE": ShowAs.TENTATIVE,
    "BUSY-UNAVAILABLE": ShowAs.OOF,
}
_FREE_BUSY_QUERY = (
    '<?xml version="1.0" encoding="utf-8"?>'
    '<C:free-busy-query xmlns:C="urn:ietf:params:xml:ns:caldav">'
    '<C:time-range start="{start}" end="{end}"/></C:free-busy-query>'
)


def _ical_utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def parse_free_busy(data: bytes, *, source: str, window: Interval) -> list[BusyBlock]:
    """Busy blocks from a ``free-busy-query`` REPORT answer (a VCALENDAR with VFREEBUSY).

    ``FBTYPE`` BUSY (the default), BUSY-TENTATIVE and BUSY-UNAVAILABLE become blocks with
    ``show_as`` BUSY, TENTATIVE and OOF; FREE periods (Radicale lists cancelled events so) are
    dropped. Blocks are clipped to ``window`` and sorted.

    Raises:
        CalendarDataError: the answer is not iCalendar data.
    """
    try:
        cal = icalendar.Calendar.from_ical(data)
    except ValueError as exc:
        raise CalendarDataError(source, f"unreadable free-busy answer: {exc}") from exc
    blocks: list[BusyBlock] = []
    for fb in cal.walk("VFREEBUSY"):
        props = fb.get("FREEBUSY")
        for prop in props if isinstance(props, list) else ([props] if props else []):
            fbtype = str(prop.params.get("FBTYPE", "BUSY")).upper()
            show_as = _FBTYPE_SHOW_AS.get(fbtype)
            if show_as is None:
                continue
            for period in prop.dt if isinstance(prop.dt, list) else [prop.dt]:
                start, end_or_duration = period
                end = (
                    end_or_duration
                    if isinstance(end_or_duration, datetime)
                    else (start + end_or_duration)
                )
                start, end = start.astimezone(UTC), end.astimezone(UTC)
                start, end = max(start, window.start), min(end, window.end)
                if start < end:
                    blocks.append(
                        BusyBlock(
                            start=start,
                            end=end,
                            show_as=show_as,
                            status=EventStatus.TENTATIVE
                            if show_as is ShowAs.TENTATIVE
                            else EventStatus.CONFIRMED,
                        )
                    )
    blocks.sort(key=lambda b: (b.start, b.end))
    return blocks


@dataclass(slots=True)
class _Stored:
    """The organizer's copy of an event as read from the server."""

    href: str
    etag: str | None
    calendar: icalendar.Calendar

    @property
    def event(self) -> icalendar.Component:
        events = self.calendar.walk("VEVENT")
        if not events:
            raise CalendarDataError(self.href, "no VEVENT in the stored event")
        master = [e for e in events if "RECURRENCE-ID" not in e]
        return (master or events)[0]


class CalDAVCalendar:
    """Calendars on one CalDAV server, read and written with one account.

    One instance holds one HTTP session (``caldav.DAVClient``); give each worker thread its own.

    Args:
        url: server base URL (``http://127.0.0.1:5232/``).
        username: account name; None for servers in front of a trusted proxy.
        password: account password (or app password).
        server: key into :data:`connectors.caldav_quirks.QUIRKS` (``radicale``, ``xandikos``…).
        calendars: e-mail → calendar collection URL (absolute, or relative to ``url``).
        calendar_path: template for people not in ``calendars`` (``"/{user}/calendar/"``).
        timeout_s: HTTP timeout per request, seconds.
        imip_sender: mails iTIP REQUEST/CANCEL when the server does not schedule
            (``quirks.needs_imip``); without one, such a server stores events but invites nobody.
        headers: extra HTTP headers on every request (e.g. ``X-Remote-User`` behind a trusted
            authenticating proxy).
        clock: source of DTSTAMP; the system clock by default.
        limits: ``max_instances`` for expanding recurrences client-side.
    """

    def __init__(
        self,
        url: str,
        username: str | None = None,
        password: str | None = None,
        *,
        server: str = "generic",
        calendars: Mapping[str, str] | None = None,
        calendar_path: str | None = None,
        timeout_s: float = 30.0,
        imip_sender: ImipSender | None = None,
        headers: Mapping[str, str] | None = None,
        clock: Clock | None = None,
        limits: Limits | None = None,
    ) -> None:
        self.quirks: ServerQuirks = quirks_for(server)
        self._url = url if url.endswith("/") else url + "/"
        self._calendars = {email_of(k): v for k, v in (calendars or {}).items()}
        self._calendar_path = calendar_path
        self._imip = imip_sender
        self._clock: Clock = clock or SystemClock()
        self._limits = limits or Limits()
        self._client = DAVClient(
            url=self._url,
            username=username,
            password=password,
            timeout=int(timeout_s) if timeout_s >= 1 else 1,
            headers=dict(headers or {}),
            enable_rfc6764=False,
        )
        self._owner_reads = OwnerReads()

    # -- lifecycle ----------------------------------------------------------------------------

    def close(self) -> None:
        """Close the HTTP session."""
        self._client.close()

    def __enter__(self) -> CalDAVCalendar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- locating -----------------------------------------------------------------------------

    def calendar_url(self, email: str) -> str:
        """The calendar collection URL of ``email`` (always ends with ``/``).

        Raises:
            CalendarUnavailable: no mapping and no ``calendar_path`` template.
        """
        key = email_of(email)
        found = self._calendars.get(key)
        if found is None and self._calendar_path:
            found = self._calendar_path.format(user=key.split("@")[0], email=key)
        if found is None:
            raise CalendarUnavailable(f"no CalDAV calendar configured for {key}", provider=PROVIDER)
        absolute = urljoin(self._url, found)
        return absolute if absolute.endswith("/") else absolute + "/"

    def event_href(self, organizer_email: str, provider_event_id: str) -> str:
        """Where the event with UID ``provider_event_id`` we created is stored."""
        key = provider_event_id.removesuffix("@goodwill")
        name = key if _SAFE_NAME.fullmatch(key) else hashlib.sha256(key.encode()).hexdigest()
        return self.calendar_url(organizer_email) + name + ".ics"

    # -- CalendarSource -----------------------------------------------------------------------

    def busy(self, query: BusyQuery) -> BusyResult:
        """Busy blocks per person in ``query.window``; unreadable calendars go to ``unavailable``.

        ``query.people[0]`` is the owner: their own calendar comes from a calendar-query with
        event detail and keys (from the round's :meth:`read_owner` when it serves, else read
        now); the others from the free-busy REPORT where the server has one. A person listed
        twice is read once.

        Raises:
            AuthorizationRevoked: our own credentials are refused (401): nobody can be read.
            ProviderUnavailable: the server is down, slow or rate-limiting; retry the batch.
        """
        window = query.window.to_utc()
        blocks: dict[str, list[BusyBlock]] = {}
        unavailable: dict[str, str] = {}
        seen: set[str] = set()
        for index, person in enumerate(query.people):
            if email_of(person.email) in seen:
                continue
            seen.add(email_of(person.email))
            try:
                if index == 0:
                    blocks[person.email] = self._own_blocks(person, window)
                else:
                    blocks[person.email] = self._busy_of(person, window)
            except (CalendarUnavailable, ResourceGone, CalendarDataError) as exc:
                unavailable[person.email] = str(exc)
            except InvalidRequest as exc:
                unavailable[person.email] = f"server refused the query: {exc}"
        return BusyResult(blocks=blocks, unavailable=unavailable)

    def _own_blocks(self, owner: Person, window: Interval) -> list[BusyBlock]:
        """The owner's events as blocks with detail and keys (the ICS reader's mapping)."""
        cal_url = self.calendar_url(owner.email)
        data = self._owner_data(owner, cal_url, window, "busy")
        if not data:
            return []  # no event in the window (the parser refuses empty data)
        return parse_busy_blocks(
            data,
            source=cal_url,
            owner_email=owner.email,
            zone=owner.timezone,
            window=window,
            max_instances=self._limits.max_instances,
            limits=self._limits,
        )

    def _busy_of(self, person: Person, window: Interval) -> list[BusyBlock]:
        cal_url = self.calendar_url(person.email)
        with self._translated(f"calendar of {person.email}", missing=CalendarUnavailable):
            if self.quirks.supports_free_busy_report:
                body = _FREE_BUSY_QUERY.format(
                    start=_ical_utc(window.start), end=_ical_utc(window.end)
                )
                response = self._client.request(
                    cal_url,
                    "REPORT",
                    body,
                    {"Depth": "1", "Content-Type": "application/xml; charset=utf-8"},
                )
                self._check(response.status, f"free-busy of {person.email}", CalendarUnavailable)
                return parse_free_busy(_raw_bytes(response), source=cal_url, window=window)
            data = self._calendar_data(cal_url, window)
        if not data:
            return []  # no event in the window (the parser refuses empty data)
        return parse_busy_blocks(
            data,
            source=cal_url,
            owner_email=person.email,
            zone=person.timezone,
            window=window,
            max_instances=self._limits.max_instances,
            limits=self._limits,
        )

    def _calendar_data(self, cal_url: str, window: Interval) -> bytes:
        """All events overlapping ``window`` as concatenated VCALENDARs (calendar-query).

        Recurrences are expanded by :func:`connectors.ics_read.parse_busy_blocks`, the same code
        that reads ICS feeds, so CalDAV and ICS apply identical TRANSP/STATUS/PARTSTAT rules.
        """
        return b"\r\n".join(self._calendar_items(cal_url, window))

    def _calendar_items(self, cal_url: str, window: Interval) -> list[bytes]:
        """One VCALENDAR per event resource overlapping ``window`` (one calendar-query)."""
        calendar = DavCalendar(client=self._client, url=cal_url)
        found: Any = calendar.search(start=window.start, end=window.end, event=True, expand=False)
        parts = [_to_bytes(item.data) for item in found]
        return [p for p in parts if p]

    def _owner_data(self, owner: Person, cal_url: str, window: Interval, use: Use) -> bytes:
        """The owner's events over ``window``: from the round's held read when it serves
        (:mod:`connectors.owner_read`; the parsers keep to ``window``), else a calendar-query."""
        held = self._owner_reads.take(owner.email, window.start, window.end, use)
        if held is not None:
            return b"\r\n".join(bytes(item["data"]) for item in held)
        with self._translated(f"calendar of {owner.email}", missing=CalendarUnavailable):
            return self._calendar_data(cal_url, window)

    # -- OwnerCalendar ------------------------------------------------------------------------

    def read_owner(self, owner: Person, window: Interval) -> None:
        """Read the owner's events over ``window`` with one calendar-query and hold them.

        This round's ``last_contacts`` (from ``window.start``) and ``busy`` (to ``window.end``,
        the owner's part) for this owner, on this thread, are served from this read, once each;
        any other read (a booking's recheck, the conflict watch) goes to the server. Raises what
        the history read raises.
        """
        window = window.to_utc()
        cal_url = self.calendar_url(owner.email)
        with self._translated(f"calendar of {owner.email}", missing=CalendarUnavailable):
            items = self._calendar_items(cal_url, window)
        self._owner_reads.hold(owner.email, window, [{"data": item} for item in items])

    # -- ContactHistory -----------------------------------------------------------------------

    def last_contacts(
        self, owner: Person, emails: Sequence[str], since: datetime, until: datetime
    ) -> Mapping[str, datetime]:
        """Latest end of a meeting in ``[since, until)`` the owner shared with each e-mail."""
        if not emails or until <= since:
            return {}
        window = Interval(since, until).to_utc()
        cal_url = self.calendar_url(owner.email)
        data = self._owner_data(owner, cal_url, window, "history")
        if not data:
            return {}
        return last_contact_times(
            data,
            source=cal_url,
            owner_email=owner.email,
            zone=owner.timezone,
            emails=emails,
            since=window.start,
            until=window.end,
            max_instances=self._limits.max_instances,
            limits=self._limits,
        )

    # -- CalendarWriter -----------------------------------------------------------------------

    def create_event(self, draft: EventDraft) -> CreatedEvent:
        """Create ``draft`` on the organizer's calendar once; invite by iMIP if needed.

        One VEVENT with an ATTENDEE per person (a group's too); the iMIP REQUEST is one
        message to all of them.

        Raises:
            AttendeeLimitExceeded: we must mail the invite and it has more recipients than
                one SMTP message is sure to reach (nothing is stored or sent).
        """
        if self._must_mail():
            invitees(draft, provider="smtp", limit=IMIP_MAX_RECIPIENTS)
        uid = event_uid(draft.idempotency_key)
        href = self.event_href(draft.organizer.email, uid)
        # Look first, write second: a retry must not PUT again, because some servers schedule
        # (send invitations) even for a PUT they then refuse (quirks.rejected_put_may_schedule).
        stored = self._load(href)
        created = False
        if stored is None:
            cal = event_calendar(draft, dtstamp=self._clock.now())
            for component in cal.walk("VEVENT"):
                # Marks the organizer's copy as goodwill's own, so contact history skips it.
                component.add(GOODWILL_KEY, draft.idempotency_key)
            with self._translated(f"event {uid}", missing=CalendarUnavailable):
                response = self._client.put(
                    href,
                    _wire(cal),
                    {"Content-Type": "text/calendar; charset=utf-8", "If-None-Match": "*"},
                )
            # 412: someone else created it meanwhile; 409 or a UID precondition: the UID is
            # already used by another resource in this calendar. Both mean "it exists".
            if response.status not in (412, 409):
                self._check(response.status, f"creating event {uid}", CalendarUnavailable)
                created = True
            stored = self._load(href)
        if self._must_mail() and stored is not None:
            self._mail_once(stored, "REQUEST")
        return CreatedEvent(provider_event_id=uid, created=created)

    def cancel_by_key(self, organizer: Person, idempotency_key: str) -> None:
        """Cancel the event for ``idempotency_key`` if it exists (its UID derives from the key)."""
        self.cancel_event(organizer, event_uid(idempotency_key))

    def find_by_key(self, organizer: Person, idempotency_key: str) -> CreatedEvent | None:
        """The organizer's live event for ``idempotency_key`` (its UID derives from the key)."""
        uid = event_uid(idempotency_key)
        stored = self._load(self.event_href(organizer.email, uid))
        if stored is None or str(stored.event.get("STATUS", "")).upper() == "CANCELLED":
            return None
        return CreatedEvent(provider_event_id=uid, created=False)

    def cancel_event(self, organizer: Person, provider_event_id: str) -> None:
        """Cancel our event; a missing or already cancelled event counts as done."""
        href = self.event_href(organizer.email, provider_event_id)
        deletes = self.quirks.cancel_deletes_resource
        for _attempt in range(3):
            stored = self._load(href)
            if stored is None:
                return
            event = stored.event
            if str(event.get("STATUS", "")).upper() != "CANCELLED":
                sequence = int(event.get("SEQUENCE", 0)) + 1
                for name in ("STATUS", "SEQUENCE", "DTSTAMP"):
                    event.pop(name, None)
                event.add("status", "CANCELLED")
                event.add("sequence", sequence)
                event.add("dtstamp", self._clock.now().astimezone(UTC))
                # Save the cancellation before mailing it: a retry then finds it cancelled and
                # only (re)sends the CANCEL whose mark is missing.
                if not deletes and not self._write(stored):
                    continue  # changed under us (a reply came in): read again
            if self._must_mail():
                self._mail_once(stored, "CANCEL", write_back=not deletes)
            if deletes:
                self._delete(stored)
            return
        raise ProviderUnavailable(
            f"event {provider_event_id} kept changing while cancelling", provider=PROVIDER
        )

    def move_event(
        self, organizer: Person, provider_event_id: str, start: datetime, end: datetime
    ) -> None:
        """Move our event to ``[start, end)``: the same UID, SEQUENCE + 1, a fresh DTSTAMP.

        The organizer's copy is read and PUT back with ``If-Match`` on its ETag (412: read again,
        a few times). Attendees are asked to answer again (:func:`connectors.ics_write.reschedule`).
        A scheduling server (RFC 6638) sends the update itself; otherwise the iTIP REQUEST with
        the higher SEQUENCE is mailed, marked ``REQUEST:<sequence>`` like every mail we send, so
        a retry after a crash mails it once and an event already at the new time is not bumped
        again. Requests: GET + PUT, plus a PUT of the mark when we mail.

        Raises:
            ResourceGone: the event is unknown or cancelled.
            InvalidRequest: ``start``/``end`` are naive or ``end`` is not after ``start``.
        """
        if start.tzinfo is None or end.tzinfo is None or not start < end:
            raise InvalidRequest(
                "a move needs aware start and end, the end after the start", provider=PROVIDER
            )
        href = self.event_href(organizer.email, provider_event_id)
        for _attempt in range(3):
            stored = self._load(href)
            if stored is None or str(stored.event.get("STATUS", "")).upper() == "CANCELLED":
                raise ResourceGone(
                    f"event {provider_event_id} is gone", provider=PROVIDER, status=404
                )
            event = stored.event
            if _bounds(event) != (start, end):
                reschedule(event, start, end, zone=organizer.timezone, stamp=self._clock.now())
                _refresh_timezones(stored.calendar, organizer.timezone, start, end)
                if not self._write(stored):
                    continue  # changed under us (a reply came in): read again
            if self._must_mail():
                self._mail_once(stored, "REQUEST")
            return
        raise ProviderUnavailable(
            f"event {provider_event_id} kept changing while moving", provider=PROVIDER
        )

    # -- ResponseReader -----------------------------------------------------------------------

    def event_state(
        self, organizer: Person, provider_event_id: str, attendee_email: str
    ) -> EventState:
        """The attendee's PARTSTAT on the organizer's copy, cancellation and times.

        An attendee no longer listed on the event counts as DECLINED: they will not come.

        Raises:
            ResourceGone: the organizer's copy no longer exists.
        """
        stored = self._load(self.event_href(organizer.email, provider_event_id))
        if stored is None:
            raise ResourceGone(f"event {provider_event_id} is gone", provider=PROVIDER, status=404)
        event = stored.event
        response = AttendeeStatus.DECLINED
        for attendee in _attendees(event):
            if email_of(attendee) == email_of(attendee_email):
                response = parse_partstat(attendee.params.get("PARTSTAT"))
        start = event.decoded("DTSTART")
        end = event.decoded("DTEND") if "DTEND" in event else start + event.decoded("DURATION")
        return EventState(
            response=response,
            cancelled=str(event.get("STATUS", "")).upper() == "CANCELLED",
            start=_aware_utc(start),
            end=_aware_utc(end),
        )

    # -- replies (iMIP REPLY applied by connectors.imip.apply_reply) --------------------------

    def set_attendee_status(
        self,
        organizer: Person,
        provider_event_id: str,
        attendee_email: str,
        status: AttendeeStatus,
        *,
        sequence: int | None = None,
    ) -> bool:
        """Write ``status`` as the attendee's PARTSTAT on the organizer's copy.

        Args:
            sequence: SEQUENCE of the reply; a reply older than the stored event is ignored
                (RFC 5546 §2.1.5), e.g. an acceptance arriving after we cancelled.

        Returns:
            True when the stored copy changed.
        """
        value = PARTSTAT_BY_STATUS.get(status)
        if value is None:
            raise ValueError(f"{status} is not an attendee answer")
        href = self.event_href(organizer.email, provider_event_id)
        for _attempt in range(3):
            stored = self._load(href)
            if stored is None:
                return False
            event = stored.event
            if sequence is not None and sequence < int(event.get("SEQUENCE", 0)):
                return False
            matched = [a for a in _attendees(event) if email_of(a) == email_of(attendee_email)]
            if not matched:
                return False
            if all(str(a.params.get("PARTSTAT", "")).upper() == value for a in matched):
                return False
            for attendee in matched:
                attendee.params["PARTSTAT"] = value
                attendee.params.pop("RSVP", None)
            if self._write(stored):
                return True
        raise ProviderUnavailable(
            f"event {provider_event_id} kept changing while applying a reply", provider=PROVIDER
        )

    # -- internals ----------------------------------------------------------------------------

    def _must_mail(self) -> bool:
        return self.quirks.needs_imip and self._imip is not None

    def _mail_once(self, stored: _Stored, method: str, *, write_back: bool = True) -> None:
        """Mail the iTIP ``method`` for ``stored`` unless its mark says it went out already.

        The mark is written *after* the mail is accepted: a crash in between re-sends the same
        UID/SEQUENCE on retry, which calendar clients treat as the same message.
        """
        assert self._imip is not None
        event = stored.event
        mark = f"{method}:{int(event.get('SEQUENCE', 0))}"
        if str(event.get(IMIP_MARK, "")) == mark:
            return
        self._imip.send(
            itip_message(_without_mark(stored.calendar), method, sender=self._imip.sender)
        )
        if not write_back:
            return
        candidate: _Stored | None = stored
        for _attempt in range(2):
            if candidate is None:
                return
            candidate.event.pop(IMIP_MARK, None)
            candidate.event.add(IMIP_MARK, mark)
            if self._write(candidate):
                return
            # 412: changed under us (e.g. a reply applied); mark the fresh copy instead.
            candidate = self._load(stored.href)

    def _load(self, href: str) -> _Stored | None:
        with self._translated(f"event {href}", missing=ResourceGone):
            response = self._client.request(href, "GET", "", {"Accept": "text/calendar"})
        if response.status in (404, 410):
            return None
        self._check(response.status, f"reading {href}", ResourceGone)
        data = _raw_bytes(response)
        try:
            cal = icalendar.Calendar.from_ical(data)
        except ValueError as exc:
            raise CalendarDataError(href, f"unreadable event: {exc}") from exc
        assert isinstance(cal, icalendar.Calendar)
        etag = response.headers.get("ETag")
        return _Stored(href=href, etag=str(etag) if etag else None, calendar=cal)

    def _write(self, stored: _Stored) -> bool:
        """PUT ``stored`` back if unchanged at the server; False on an ETag mismatch (412)."""
        headers = {"Content-Type": "text/calendar; charset=utf-8"}
        if stored.etag:
            headers["If-Match"] = stored.etag
        with self._translated(f"event {stored.href}", missing=ResourceGone):
            response = self._client.put(stored.href, _wire(stored.calendar), headers)
        if response.status == 412:
            return False
        self._check(response.status, f"updating {stored.href}", ResourceGone)
        etag = response.headers.get("ETag")
        stored.etag = str(etag) if etag else None
        return True

    def _delete(self, stored: _Stored) -> None:
        with self._translated(f"event {stored.href}", missing=ResourceGone):
            response = self._client.delete(stored.href)
        if response.status not in (404, 410):
            self._check(response.status, f"deleting {stored.href}", ResourceGone)

    @staticmethod
    def _check(status: int, what: str, missing: Callable[..., ConnectorError]) -> None:
        if status < 300:
            return
        raise _from_status(status, what, missing)

    @contextmanager
    def _translated(self, what: str, *, missing: Callable[..., ConnectorError]) -> Iterator[None]:
        """Turn ``caldav``/HTTP library exceptions into :mod:`scheduler.core.errors` classes."""
        try:
            yield
        except ConnectorError:
            raise
        except dav_error.RateLimitError as exc:
            raise RateLimited(
                f"{what}: rate limited",
                # The raw header, read against our clock (the library's parse uses the wall clock).
                retry_after_s=parse_retry_after(exc.retry_after, self._clock.now()),
                provider=PROVIDER,
                status=exc.status or 429,
            ) from exc
        except dav_error.AuthorizationError as exc:
            if exc.status == 403:
                raise CalendarUnavailable(
                    f"{what}: no permission (403)", provider=PROVIDER, status=403
                ) from exc
            raise AuthorizationRevoked(
                f"{what}: credentials refused (401)", provider=PROVIDER, status=exc.status or 401
            ) from exc
        except dav_error.NotFoundError as exc:
            raise missing(f"{what}: not found", provider=PROVIDER, status=404) from exc
        except dav_error.DAVError as exc:
            raise _from_status(exc.status or 500, f"{what}: {exc.reason}", missing) from exc
        except SyntaxError as exc:  # lxml's XMLSyntaxError: a garbled multistatus
            raise ProviderUnavailable(f"{what}: malformed XML answer", provider=PROVIDER) from exc
        except (http_lib.exceptions.RequestException, OSError) as exc:
            request = getattr(exc, "request", None)
            url = str(getattr(request, "url", None) or self._url)
            raise ProviderUnavailable(
                f"{what}: {unreachable_reason(exc, url)}", provider=PROVIDER
            ) from exc


def unreachable_reason(exc: BaseException, url: str) -> str:
    """Why the server at ``url`` could not be reached, naming its host and port only.

    The exception chain (``__cause__``, ``__context__``, urllib3's ``reason``) is searched for
    what went wrong: a name lookup, a refused connection, TLS, a timeout or a reset.

    >>> unreachable_reason(ConnectionRefusedError(111, "refused"), "http://u:pw@127.0.0.1:5232/")
    'cannot reach the CalDAV server 127.0.0.1:5232 (connection refused): is it running, and is \
GOODWILL_CALDAV__URL (or calendar.url in the policy) right?'
    """
    where = _host_port(url)
    causes = list(_causes(exc))
    if any(isinstance(c, socket.gaierror) or "NameResolution" in type(c).__name__ for c in causes):
        return (
            f"cannot reach the CalDAV server {where} (name lookup failed): check the host name "
            "in GOODWILL_CALDAV__URL (or calendar.url in the policy)"
        )
    if any(isinstance(c, ConnectionRefusedError) for c in causes):
        return (
            f"cannot reach the CalDAV server {where} (connection refused): is it running, and is "
            "GOODWILL_CALDAV__URL (or calendar.url in the policy) right?"
        )
    tls = next((c for c in causes if isinstance(c, ssl.SSLError)), None)
    if tls is not None:
        return (
            f"cannot reach the CalDAV server {where} (TLS failed: "
            f"{type(tls).__name__}): check the certificate and that the URL's scheme is right"
        )
    if any(isinstance(c, TimeoutError) or "Timeout" in type(c).__name__ for c in causes):
        return (
            f"cannot reach the CalDAV server {where} (timed out): it did not answer within "
            "GOODWILL_CALDAV__TIMEOUT_S"
        )
    if any(isinstance(c, ConnectionResetError | ConnectionAbortedError) for c in causes):
        return f"the CalDAV server {where} dropped the connection (connection reset)"
    return f"cannot reach the CalDAV server {where} ({type(exc).__name__})"


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what it wraps, breadth first, each once (at most 32)."""
    queue: list[BaseException] = [exc]
    seen: set[int] = set()
    while queue and len(seen) < 32:
        current = queue.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        linked = [current.__cause__, current.__context__, getattr(current, "reason", None)]
        linked.extend(current.args)
        queue.extend(item for item in linked if isinstance(item, BaseException))


def _host_port(url: str) -> str:
    """``host:port`` of ``url`` (IPv6 in brackets, the scheme's default port), no user info."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "<invalid URL>"
    host = parts.hostname or "?"
    if ":" in host:
        host = f"[{host}]"
    if port is None:
        port = {"http": 80, "https": 443}.get(parts.scheme.lower())
    return host if port is None else f"{host}:{port}"


def _from_status(status: int, what: str, missing: Callable[..., ConnectorError]) -> ConnectorError:
    if status == 401:
        return AuthorizationRevoked(
            f"{what}: credentials refused (401)", provider=PROVIDER, status=401
        )
    if status == 403:
        return CalendarUnavailable(f"{what}: no permission (403)", provider=PROVIDER, status=403)
    if status in (404, 410):
        return missing(f"{what}: not found ({status})", provider=PROVIDER, status=status)
    if status == 429:
        return RateLimited(f"{what}: rate limited", provider=PROVIDER, status=status)
    if status >= 500:
        return ProviderUnavailable(
            f"{what}: server error {status}", provider=PROVIDER, status=status
        )
    return InvalidRequest(f"{what}: refused with {status}", provider=PROVIDER, status=status)


def _attendees(event: icalendar.Component) -> list[Any]:
    value = event.get("ATTENDEE")
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _without_mark(cal: icalendar.Calendar) -> icalendar.Calendar:
    out = icalendar.Calendar.from_ical(cal.to_ical())
    assert isinstance(out, icalendar.Calendar)
    for event in out.walk("VEVENT"):
        event.pop(IMIP_MARK, None)
        event.pop(GOODWILL_KEY, None)
    return out


def _bounds(event: icalendar.Component) -> tuple[datetime, datetime]:
    start = event.decoded("DTSTART")
    end = event.decoded("DTEND") if "DTEND" in event else start + event.decoded("DURATION")
    return _aware_utc(start), _aware_utc(end)


def _refresh_timezones(cal: icalendar.Calendar, zone: str, start: datetime, end: datetime) -> None:
    """Replace the VTIMEZONEs with ones covering the event's new days, as
    :func:`connectors.imip.event_calendar` writes them (a short span; see there why)."""
    tz = ZoneInfo(zone)
    cal.subcomponents = [c for c in cal.subcomponents if c.name != "VTIMEZONE"]
    cal.add_missing_timezones(
        first_date=start.astimezone(tz).date() - timedelta(days=1),
        last_date=end.astimezone(tz).date() + timedelta(days=1),
    )


def _aware_utc(value: object) -> datetime:
    if not isinstance(value, datetime):
        raise CalendarDataError("caldav", "our events have DATE-TIME start and end")
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _wire(cal: icalendar.Calendar) -> str:
    return bytes(cal.to_ical()).decode("utf-8")


def _to_bytes(value: object) -> bytes:
    if value is None:
        return b""
    if isinstance(value, bytes):
        return value
    return str(value).encode("utf-8")


def _raw_bytes(response: Any) -> bytes:
    return _to_bytes(response.raw)
