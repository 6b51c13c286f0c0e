"""Google Calendar connector (Workspace): free/busy, contact history, invites, responses.

Implements :class:`~scheduler.core.ports.CalendarSource`,
:class:`~scheduler.core.ports.ContactHistory`, :class:`~scheduler.core.ports.OwnerCalendar`,
:class:`~scheduler.core.ports.CalendarWriter` and :class:`~scheduler.core.ports.ResponseReader` with
google-api-python-client (static discovery, no discovery fetch) and google-auth.

Whose credentials: every call acts as an *owner* - the goodwill user. ``busy(query)`` takes the
owner to be ``query.people[0]`` and reads everyone with the owner's credentials: the owner's own
calendar through ``events.list`` (event detail, so busy rules can apply), everyone else through
``freeBusy`` (opaque busy blocks only - the privacy promise). Writes act on the organizer's
``primary`` calendar.

One owner read per planning round (:class:`~scheduler.core.ports.OwnerCalendar`):
``read_owner`` lists the owner's events over history and horizon together, and the round's
``last_contacts`` and ``busy`` are served from that one listing (:mod:`connectors.owner_read`),
so a round costs the ``events.list`` pages of one window plus ceil(others / 50) ``freeBusy``.

Only the configured endpoints are contacted (``GoogleSettings.api_endpoint`` and ``token_uri``);
every HTTP call has a timeout. Errors are translated in one place,
:func:`connectors.google_errors.google_errors`; the client's own retries are off, retrying is the
worker layer's job.

Quirks handled here, each with a regression test:

- freeBusy takes at most 50 calendars per query, and its maximum time range is undocumented
  (public code reports failures past ~90 days): queries are batched by 50 and windows chunked
  to 60 days, and blocks split at a chunk edge are merged again.
- freeBusy reports unreadable calendars per calendar (``errors``) inside a 200 response.
- ``events.insert`` with a reused client id answers 409 - also for a deleted event, which keeps
  its id with ``status: cancelled``; we read it back (and un-cancel it) instead of failing.
- ``events.delete`` on an event already gone answers 404/410: counted as done.
- ``events.patch`` succeeds on a deleted (cancelled) event too, so a move reads the event first
  and treats a cancelled one as gone.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import google_auth_httplib2
import httplib2
from google.auth.credentials import Credentials
from google.oauth2 import credentials as user_creds
from google.oauth2 import service_account
from googleapiclient import discovery_cache
from googleapiclient.discovery import build_from_document, fix_method_name

from connectors.google_errors import PROVIDER, google_errors
from connectors.google_events import (
    Timed,
    attendee_status,
    busy_block,
    event_bounds,
    google_event_id,
    insert_body,
    move_body,
    parse_instant,
    rfc3339,
    timed_events,
)
from connectors.google_json import json_model
from connectors.lru import Lru
from connectors.owner_read import HeldReads, Use
from scheduler.core.clock import Clock, SystemClock
from scheduler.core.errors import (
    CalendarUnavailable,
    InvalidRequest,
    ProviderUnavailable,
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
    Person,
)
from scheduler.core.ports import EventState
from scheduler.settings import GoogleSettings

__all__ = [
    "FREEBUSY_MAX_CALENDARS",
    "FREEBUSY_MAX_SPAN",
    "SCOPES",
    "GoogleCalendar",
    "google_event_id",
    "service_account_credentials",
    "user_credentials",
]

#: OAuth scopes: create/read the user's own events, and read others' free/busy only.
SCOPES: tuple[str, ...] = (
    "https://www.googleapis.com/auth/calendar.events",
    "https://www.googleapis.com/auth/calendar.events.freebusy",
)
#: freeBusy accepts at most 50 calendars per query (``calendarExpansionMax`` maximum).
FREEBUSY_MAX_CALENDARS = 50
#: freeBusy's range limit is undocumented; ~90 days is known to fail, so stay well under.
FREEBUSY_MAX_SPAN = timedelta(days=60)
#: Page size asked of events.list: Google's maximum (its default is 250; the server may return
#: fewer). An owner's round lists ~1,200 events: one page instead of five, which takes about
#: half of the read's CPU away (each page is a request through the client library).
_LIST_PAGE_SIZE = 2500
#: Waits (s) before re-reading an event that answered 409 but is not readable yet: the errors
#: guide notes 404s can be replication lag. Short, because the worker retries anyway.
_RECONCILE_WAITS_S: tuple[float, ...] = (0.5, 1.0, 2.0)
_PRIMARY = "primary"
#: Partial responses (the ``fields`` system parameter): only what the connector reads of an
#: event. An owner's round lists months of events, and the full resources (summary, creator,
#: reminders, etags …) were most of the bytes and of the JSON parsing.
_EVENT_FIELDS = (
    "id,status,start,end,eventType,transparency,organizer(email,self),"
    "attendees(email,self,responseStatus),extendedProperties/private"
)
_LIST_FIELDS = f"nextPageToken,items({_EVENT_FIELDS})"


def service_account_credentials(
    info: Mapping[str, Any], subject: str, token_uri: str
) -> Credentials:
    """Service-account credentials acting as ``subject`` (domain-wide delegation).

    Args:
        info: the service-account key JSON (``client_email``, ``private_key``, ...).
        subject: the Workspace user to impersonate - the owner whose calendar we act on.
        token_uri: the token endpoint (``GoogleSettings.token_uri``); overrides the key file's.
    """
    base = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
        {**info, "token_uri": token_uri}, scopes=list(SCOPES)
    )
    delegated: Credentials = base.with_subject(subject)
    return delegated


def user_credentials(
    refresh_token: str, client_id: str, client_secret: str, token_uri: str
) -> Credentials:
    """Per-user OAuth credentials from a stored refresh token; the first call refreshes."""
    return user_creds.Credentials(  # type: ignore[no-untyped-call]
        token=None,
        refresh_token=refresh_token,
        client_id=client_id,
        client_secret=client_secret,
        token_uri=token_uri,
        scopes=list(SCOPES),
    )


class GoogleCalendar:
    """Google Calendar v3 behind goodwill's ports.

    Args:
        settings: endpoints and default timeout.
        credentials_for: builds google-auth credentials acting as the given owner e-mail
            (see :func:`service_account_credentials` and :func:`user_credentials`).
        http_timeout_s: socket timeout for every HTTP call, token refreshes included
            (default ``settings.timeout_s``).
        sleep: how to wait between reconciliation reads (injected so tests do not wait).
        clock: the current time, for an HTTP-date ``Retry-After`` (default: the system clock).
        max_clients: owners whose API clients are kept, least recently used out
            (``GOODWILL_LIMITS__CLIENT_CACHE_SIZE``).

    One API client is built per owner and shared by the worker threads (Dramatiq runs
    several); its requests go out over the calling thread's own HTTP connection
    (:class:`_OwnerHttp`: httplib2 is not thread-safe), one per thread for every owner. So
    memory grows with the owners kept, not with owners times threads. A read held by
    ``read_owner`` is per thread and per owner.
    """

    def __init__(
        self,
        settings: GoogleSettings,
        credentials_for: Callable[[str], Credentials],
        *,
        http_timeout_s: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Clock | None = None,
        max_clients: int = 256,
    ) -> None:
        self._settings = settings
        self._services: Lru[str, _OwnerClient] = Lru(max(1, max_clients))
        self._api: _Api | None = None
        self._api_lock = threading.Lock()
        self._clock: Clock = clock or SystemClock()
        self._credentials_for = credentials_for
        self._timeout_s = settings.timeout_s if http_timeout_s is None else http_timeout_s
        self._sleep = sleep
        self._local = threading.local()
        self._owner_reads: HeldReads[_HeldEvents] = HeldReads()

    # -- CalendarSource ------------------------------------------------------------------------

    def busy(self, query: BusyQuery) -> BusyResult:
        """Busy blocks for everyone in ``query``, read with the credentials of ``query.people[0]``.

        The owner's own calendar comes from ``events.list`` with full detail; the others come from
        ``freeBusy`` (≤50 calendars per query, windows of ≤60 days). A person whose calendar
        cannot be read is returned in ``unavailable`` with the reason, never as free.
        """
        if not query.people:
            return BusyResult(blocks={})
        owner = query.people[0]
        service = self._service(owner.email)
        blocks: dict[str, list[BusyBlock]] = {}
        unavailable: dict[str, str] = {}
        try:
            blocks[owner.email] = self._own_blocks(service, owner, query.window)
        except CalendarUnavailable as exc:
            unavailable[owner.email] = f"own calendar unreadable (HTTP {exc.status})"

        seen = {owner.email.lower()}
        others: list[Person] = []
        for person in query.people[1:]:
            if person.email.lower() not in seen:
                seen.add(person.email.lower())
                others.append(person)
        found: dict[str, list[BusyBlock]] = {p.email: [] for p in others}
        for piece in _chunks_of_window(query.window, FREEBUSY_MAX_SPAN):
            for start in range(0, len(others), FREEBUSY_MAX_CALENDARS):
                group = others[start : start + FREEBUSY_MAX_CALENDARS]
                self._freebusy(service, group, piece, found, unavailable)
        for email, person_blocks in found.items():
            if email not in unavailable:
                blocks[email] = _merge_touching(person_blocks)
        return BusyResult(blocks=blocks, unavailable=unavailable)

    def _freebusy(
        self,
        service: _OwnerClient,
        group: Sequence[Person],
        window: Interval,
        found: dict[str, list[BusyBlock]],
        unavailable: dict[str, str],
    ) -> None:
        body = {
            "timeMin": rfc3339(window.start),
            "timeMax": rfc3339(window.end),
            "timeZone": "UTC",
            "calendarExpansionMax": len(group),
            "items": [{"id": p.email} for p in group],
        }
        with google_errors("freeBusy query", clock=self._clock, not_found=CalendarUnavailable):
            response = service.execute(service.freebusy.query(body=body))
        calendars: dict[str, Any] = {
            str(k).lower(): v for k, v in (response.get("calendars") or {}).items()
        }
        for person in group:
            entry = calendars.get(person.email.lower())
            if entry is None:
                unavailable.setdefault(person.email, "google freeBusy: calendar missing from reply")
                continue
            errors = entry.get("errors") or []
            if errors:
                reasons = sorted({str(e.get("reason", "unknown")) for e in errors})
                unavailable.setdefault(person.email, "google freeBusy: " + ",".join(reasons))
                continue
            for span in entry.get("busy") or []:
                start, end = parse_instant(span["start"]), parse_instant(span["end"])
                if start < end:
                    found[person.email].append(BusyBlock(start=start, end=end))

    def _own_blocks(
        self, service: _OwnerClient, owner: Person, window: Interval
    ) -> list[BusyBlock]:
        return [
            busy_block(event, owner.timezone, bounds)
            for event, bounds in self._owner_events(
                service, owner, window.start, window.end, "busy"
            )
        ]

    # -- OwnerCalendar -------------------------------------------------------------------------

    def read_owner(self, owner: Person, window: Interval) -> None:
        """List the owner's events over ``window`` once (all pages) and hold them.

        This round's ``last_contacts`` (from ``window.start``) and ``busy`` (to ``window.end``)
        for this owner, on this thread, are served from this read, once each (see
        :mod:`connectors.owner_read`); any other read goes to the provider. Raises what
        ``events.list`` raises.
        """
        service = self._service(owner.email)
        events = self._list_events(service, window.start, window.end)
        # Each event's times are parsed once here, for both uses (and their window filters).
        held = _HeldEvents(owner.timezone, timed_events(events, owner.timezone))
        self._owner_reads.hold(owner.email, window, held)

    def _owner_events(
        self, service: _OwnerClient, owner: Person, start: datetime, end: datetime, use: Use
    ) -> Iterator[Timed]:
        """The owner's events overlapping ``[start, end)``, each with its bounds if they were
        read already (else None: the caller reads them, as for a listed event): from the held
        read if it serves, else ``events.list``."""
        held = self._owner_reads.take(owner.email, start, end, use)
        if held is None:
            for listed in self._list_events(service, start, end):
                yield listed, None
            return
        timed = held.events
        if held.zone != owner.timezone:  # all-day dates read in another zone: read them again
            timed = timed_events((event for event, _ in timed), owner.timezone)
        for event, bounds in timed:
            if bounds is None:
                yield event, None  # unreadable: the caller treats it as it would a listed one
            elif bounds[0] < end and bounds[1] > start:  # events.list's overlap test
                yield event, bounds

    # -- ContactHistory ------------------------------------------------------------------------

    def last_contacts(
        self, owner: Person, emails: Sequence[str], since: datetime, until: datetime
    ) -> Mapping[str, datetime]:
        """End of the latest meeting in ``[since, until)`` the owner had with each of ``emails``.

        An event counts when it is not cancelled, was not created by goodwill (private extended
        property ``goodwill=1``), has ended by ``until``, the owner did not decline it, and the
        person is its organizer or an attendee who did not decline.
        """
        wanted = {e.lower(): e for e in emails}
        latest: dict[str, datetime] = {}
        service = self._service(owner.email)
        owner_key = owner.email.lower()
        for event, bounds in self._owner_events(service, owner, since, until, "history"):
            if event.get("status") == "cancelled":
                continue
            if _self_declined(event):
                continue
            private = (event.get("extendedProperties") or {}).get("private") or {}
            if private.get("goodwill") == "1":
                continue  # our own invite: the pipeline follows it, it is not organic contact
            _, end, _ = bounds if bounds is not None else event_bounds(event, owner.timezone)
            if end > until:
                continue  # still going on, or in the future: not a past contact yet
            for email in _participants(event):
                key = wanted.get(email)
                if (
                    key is not None
                    and email != owner_key
                    and (key not in latest or end > latest[key])
                ):
                    latest[key] = end
        return latest

    # -- CalendarWriter ------------------------------------------------------------------------

    def create_event(self, draft: EventDraft) -> CreatedEvent:
        """Insert the invite on the organizer's calendar (``sendUpdates=all``), idempotently.

        The event id is :func:`google_event_id` of the idempotency key. A 409 means an earlier
        attempt got through: the event is read back (un-cancelled if it was deleted) and
        returned with ``created=False``. ``video="meet"`` asks Google for a Meet link
        (``conferenceDataVersion=1``); any other ``video`` value adds no conference here.
        A group's attendees are all guests of this one event; above Google's limit the draft
        is refused (:class:`AttendeeLimitExceeded`) before any request.
        """
        service = self._service(draft.organizer.email)
        event_id = google_event_id(draft.idempotency_key)
        body = insert_body(draft, event_id)
        extra: dict[str, Any] = {"conferenceDataVersion": 1} if "conferenceData" in body else {}
        try:
            with google_errors("events.insert", clock=self._clock):
                created = service.execute(
                    service.events.insert(  # only the id is read: the reply is just that
                        calendarId=_PRIMARY, body=body, sendUpdates="all", fields="id", **extra
                    )
                )
            return CreatedEvent(provider_event_id=str(created["id"]), created=True)
        except InvalidRequest as exc:
            if exc.status != 409:
                raise
        existing = self._read_back(service, event_id)
        if existing.get("status") == "cancelled":
            # Deleted events keep their id, so re-creating means restoring it with this draft.
            restore = {k: v for k, v in body.items() if k not in ("id", "conferenceData")}
            restore["status"] = "confirmed"
            with google_errors("events.patch", clock=self._clock):
                service.execute(
                    service.events.patch(
                        calendarId=_PRIMARY, eventId=event_id, body=restore, sendUpdates="all"
                    )
                )
        return CreatedEvent(provider_event_id=event_id, created=False)

    def _read_back(self, service: _OwnerClient, event_id: str) -> dict[str, Any]:
        """GET an event that answered 409, allowing briefly for replication lag."""
        for wait_s in (*_RECONCILE_WAITS_S, None):
            try:
                return self._get(service, event_id)
            except ResourceGone:
                if wait_s is None:
                    break
                self._sleep(wait_s)
        raise ProviderUnavailable(
            "Google reported the event id as taken but the event cannot be read yet",
            provider=PROVIDER,
            status=409,
        )

    def find_by_key(self, organizer: Person, idempotency_key: str) -> CreatedEvent | None:
        """The live event whose id derives from ``idempotency_key``; None if absent or deleted."""
        event_id = google_event_id(idempotency_key)
        try:
            event = self._get(self._service(organizer.email), event_id)
        except ResourceGone:
            return None
        if event.get("status") == "cancelled":
            return None
        return CreatedEvent(provider_event_id=event_id, created=False)

    def cancel_by_key(self, organizer: Person, idempotency_key: str) -> None:
        """Cancel the event for ``idempotency_key`` if it exists (its id derives from the key)."""
        self.cancel_event(organizer, google_event_id(idempotency_key))

    def cancel_event(self, organizer: Person, provider_event_id: str) -> None:
        """Delete the event and notify attendees; an event already gone (404/410) is done."""
        service = self._service(organizer.email)
        try:
            with google_errors("events.delete", clock=self._clock):
                service.execute(
                    service.events.delete(
                        calendarId=_PRIMARY, eventId=provider_event_id, sendUpdates="all"
                    )
                )
        except ResourceGone:
            return

    def move_event(
        self, organizer: Person, provider_event_id: str, start: datetime, end: datetime
    ) -> None:
        """Move the same event to ``[start, end)``; Google mails the update (``sendUpdates=all``).

        One ``events.get`` then one ``events.patch`` carrying only ``start``/``end`` (in the
        organizer's zone, as inserted). The read first is what tells a cancelled event apart:
        Google keeps a deleted event's id and would accept the patch. An event already at
        ``[start, end)`` (a retried move) is not patched again, so the attendee gets one update.

        Raises:
            ResourceGone: the event is unknown (404/410) or cancelled.
            InvalidRequest: ``start``/``end`` are naive or ``end`` is not after ``start``.
        """
        _check_move(start, end)
        service = self._service(organizer.email)
        event = self._get(service, provider_event_id)
        if event.get("status") == "cancelled":
            raise ResourceGone(
                "Google Calendar move: the event is cancelled", provider=PROVIDER, status=410
            )
        current_start, current_end, _ = event_bounds(event, organizer.timezone)
        if (current_start, current_end) == (start, end):
            return
        with google_errors("events.patch", clock=self._clock):
            service.execute(
                service.events.patch(
                    calendarId=_PRIMARY,
                    eventId=provider_event_id,
                    body=move_body(organizer.timezone, start, end),
                    sendUpdates="all",
                )
            )

    # -- ResponseReader ------------------------------------------------------------------------

    def event_state(
        self, organizer: Person, provider_event_id: str, attendee_email: str
    ) -> EventState:
        """The attendee's answer, whether the event is cancelled, and its current times.

        An attendee no longer on the guest list counts as DECLINED: they are not coming.
        """
        event = self._get(self._service(organizer.email), provider_event_id)
        return _event_state(event, attendee_email, organizer.timezone)

    def listed_event_states(
        self, organizer: Person, wanted: Sequence[tuple[str, str]], window: Interval
    ) -> Mapping[tuple[str, str], EventState]:
        """:meth:`event_state` of many events from ONE ``events.list`` of ``window`` (all
        pages, the same fields as ``events.get``) instead of an ``events.get`` each. A cancelled
        event is not listed (``showDeleted`` is off), nor one moved out of ``window``: both are
        absent, and the caller asks them one by one."""
        ids = {event_id for event_id, _ in wanted}
        found = {
            event["id"]: event
            for event in self._list_events(self._service(organizer.email), window.start, window.end)
            if event.get("id") in ids
        }
        return {
            (event_id, email): _event_state(found[event_id], email, organizer.timezone)
            for event_id, email in wanted
            if event_id in found
        }

    # -- plumbing ------------------------------------------------------------------------------

    def _service(self, owner: str) -> _OwnerClient:
        return self._services.get_or_make(owner.lower(), lambda: self._build(owner))

    def _build(self, owner: str) -> _OwnerClient:
        http = _OwnerHttp(self._credentials_for(owner), self._connection)
        return _OwnerClient(self._collections(), http)

    def _collections(self) -> _Api:
        """The API's ``events`` and ``freebusy`` collections, built once for every owner.

        Building a client and its collections from the discovery document costs more than the
        request it serves (the library writes every method and its docstring again each time
        ``events()`` is called: a quarter of a worker's CPU when it was done per call). A built
        collection only reads its own state when making a request, so one serves every owner
        and thread; each request then runs over its owner's ``http`` (``execute(http=...)``).
        """
        with self._api_lock:
            if self._api is None:
                root = build_from_document(
                    _discovery(),
                    http=_NO_HTTP,
                    model=json_model(),  # replies parsed with orjson (connectors.google_json)
                    client_options={"api_endpoint": self._settings.api_endpoint},
                )
                self._api = _Api(events=root.events(), freebusy=root.freebusy())
            return self._api

    def _connection(self) -> httplib2.Http:
        """This thread's HTTP connection (to the API and token endpoints), for every owner."""
        http: httplib2.Http | None = getattr(self._local, "http", None)
        if http is None:
            http = self._local.http = httplib2.Http(timeout=self._timeout_s)
        return http

    def _get(self, service: _OwnerClient, event_id: str) -> dict[str, Any]:
        with google_errors("events.get", clock=self._clock):
            event: dict[str, Any] = service.execute(
                service.events.get(calendarId=_PRIMARY, eventId=event_id, fields=_EVENT_FIELDS)
            )
        return event

    def _list_events(
        self, service: _OwnerClient, start: datetime, end: datetime
    ) -> Iterator[dict[str, Any]]:
        """Every event (recurrences expanded) overlapping ``[start, end)``, all pages."""
        page_token: str | None = None
        while True:
            params: dict[str, Any] = {
                "calendarId": _PRIMARY,
                "timeMin": rfc3339(start),
                "timeMax": rfc3339(end),
                "singleEvents": True,
                "orderBy": "startTime",
                "maxResults": _LIST_PAGE_SIZE,
                "fields": _LIST_FIELDS,
            }
            if page_token:
                params["pageToken"] = page_token
            with google_errors("events.list", clock=self._clock, not_found=CalendarUnavailable):
                page = service.execute(service.events.list(**params))
            yield from page.get("items") or []
            page_token = page.get("nextPageToken")
            if not page_token:
                return


def _event_state(event: Mapping[str, Any], attendee_email: str, zone: str) -> EventState:
    """An attendee's answer on an event resource; one no longer on the guest list counts as
    DECLINED (they are not coming)."""
    response = AttendeeStatus.DECLINED
    for attendee in event.get("attendees", []):
        if str(attendee.get("email", "")).lower() == attendee_email.lower():
            response = attendee_status(attendee.get("responseStatus"))
            break
    start, end, _ = event_bounds(event, zone)
    return EventState(
        response=response, cancelled=event.get("status") == "cancelled", start=start, end=end
    )


_DISCOVERY: dict[str, Any] = {}
_DISCOVERY_LOCK = threading.Lock()


def _discovery() -> dict[str, Any]:
    """Calendar v3's discovery document (the copy shipped with the client), parsed once.

    Every owner's client is built from this one document instead of a parsed copy each (about
    0.3 MiB per client). The client library fills in each method's parameters the first time a
    collection (``events()``, ``freebusy()``…) is made, writing the same keys again each later
    time; so the document is prepared here, under a lock, by making every collection once, and
    later clients only overwrite keys already there with the same values, safe across threads.
    """
    with _DISCOVERY_LOCK:
        if not _DISCOVERY:
            document = json.loads(discovery_cache.get_static_doc("calendar", "v3") or "{}")
            warm = build_from_document(document, http=httplib2.Http())
            for name in document.get("resources", {}):
                getattr(warm, fix_method_name(name))()
            _DISCOVERY.update(document)
        return _DISCOVERY


class _HeldEvents:
    """The owner's events of one ``read_owner``, with their times read in ``zone``."""

    __slots__ = ("events", "zone")

    def __init__(self, zone: str, events: list[Timed]) -> None:
        self.zone = zone
        self.events = events


class _NoHttp:
    """The ``http`` the shared collections are built with: every request names its own."""

    timeout = None

    def request(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a Google request went out without its owner's http")


_NO_HTTP = _NoHttp()


class _Api:
    """The collections of the Calendar API this connector calls (see ``_collections``)."""

    __slots__ = ("events", "freebusy")

    def __init__(self, *, events: Any, freebusy: Any) -> None:
        self.events = events
        self.freebusy = freebusy


class _OwnerClient:
    """One owner's client: the shared collections, and the owner's credentials over the
    calling thread's connection. ``execute`` sends a request built from a collection."""

    __slots__ = ("events", "freebusy", "http")

    def __init__(self, api: _Api, http: _OwnerHttp) -> None:
        self.events = api.events
        self.freebusy = api.freebusy
        self.http = http

    def execute(self, request: Any) -> Any:
        return request.execute(http=self.http)


class _OwnerHttp:
    """The ``http`` of one owner's API client: the owner's credentials (refreshed by
    google-auth when they expire, and once after a 401) over the calling thread's connection."""

    def __init__(self, credentials: Credentials, connection: Callable[[], httplib2.Http]) -> None:
        self.credentials = credentials
        self._connection = connection

    def _authorized(self) -> google_auth_httplib2.AuthorizedHttp:
        return google_auth_httplib2.AuthorizedHttp(self.credentials, http=self._connection())

    def request(self, *args: Any, **kwargs: Any) -> Any:
        return self._authorized().request(*args, **kwargs)

    @property
    def timeout(self) -> float | None:
        return self._connection().timeout  # type: ignore[no-any-return]

    def close(self) -> None:
        """Nothing to close: the connections belong to the threads, not to one owner."""


def _check_move(start: datetime, end: datetime) -> None:
    if start.tzinfo is None or end.tzinfo is None or not start < end:
        raise InvalidRequest(
            "a move needs aware start and end, the end after the start", provider=PROVIDER
        )


def _chunks_of_window(window: Interval, span: timedelta) -> Iterator[Interval]:
    start = window.start
    while start < window.end:
        end = min(start + span, window.end)
        yield Interval(start, end)
        start = end


def _merge_touching(blocks: list[BusyBlock]) -> list[BusyBlock]:
    """Merge overlapping or touching opaque blocks (a block split at a chunk edge is one block)."""
    merged: list[BusyBlock] = []
    for block in sorted(blocks, key=lambda b: (b.start, b.end)):
        if merged and block.start <= merged[-1].end:
            last = merged[-1]
            if block.end > last.end:
                merged[-1] = BusyBlock(start=last.start, end=block.end)
        else:
            merged.append(block)
    return merged


def _self_declined(event: Mapping[str, Any]) -> bool:
    if "attendees" not in event:  # no guests (a block of time, focus time): nobody declined
        return False
    return any(
        a.get("self") and a.get("responseStatus") == "declined" for a in event.get("attendees", [])
    )


def _participants(event: Mapping[str, Any]) -> set[str]:
    """Lower-cased e-mails of the organizer and every attendee who did not decline."""
    if "attendees" not in event:  # no guests: the organizer only
        organizer = str(event.get("organizer", {}).get("email", "")).lower()
        return {organizer} if organizer else set()
    people = {
        str(a.get("email", "")).lower()
        for a in event.get("attendees", [])
        if a.get("responseStatus") != "declined"
    }
    organizer = str(event.get("organizer", {}).get("email", "")).lower()
    if organizer:
        people.add(organizer)
    people.discard("")
    return people
