"""Microsoft 365 connector: free/busy, contact history, invites and responses through Graph v1.0.

:class:`GraphCalendar` implements :class:`~scheduler.core.ports.CalendarSource`,
:class:`~scheduler.core.ports.ContactHistory`, :class:`~scheduler.core.ports.OwnerCalendar`,
:class:`~scheduler.core.ports.CalendarWriter` and :class:`~scheduler.core.ports.ResponseReader`.
Tokens come from :mod:`connectors.microsoft_auth`; HTTP, the per-mailbox cap and error
translation from :mod:`connectors.microsoft_http`.

Provider quirks handled here (one test each in ``tests/integration/test_microsoft_connector.py``):

* getSchedule takes at most 20 schedules and a window shorter than 62 days: requests are split
  into ≤20-address batches and ≤61-day windows; blocks repeated at a window seam are merged.
* A schedule Graph cannot read comes back with an ``error`` instead of an HTTP error: that person
  is reported unavailable with the reason, never treated as free.
* The owner is never sent to getSchedule: their own calendar is read through ``calendarView``
  (event detail: all-day, cancelled, their answer, our extended property), held for a planning
  round by ``read_owner`` (:class:`~scheduler.core.ports.OwnerCalendar`) so history and busy
  time share one read. A round with k stakeholders costs the calendarView pages of one window
  plus ceil(k / 20) getSchedule calls.
* Working hours come in the mailbox's zone, often a Windows name: mapped to IANA.
* Duplicate creates: Graph deduplicates a reused ``transactionId`` (observed: 201 with the
  existing event, no second event; not documented by Microsoft). It does not tell us *whether* it
  deduplicated, so before POSTing we look the event up by our extended property
  ``String {GUID} Name goodwillKey`` = idempotency key. Found -> ``created=False``. Not found ->
  POST with ``transactionId`` (a uuid5 of the key), which still protects against a lost
  response racing a retry. Cost: one extra read per booking, zero extra writes.
* Event ids: ``Prefer: IdType="ImmutableId"`` on every request so stored ids survive moves.
* A cancelled event stays readable (Deleted Items, ``isCancelled``): a move reads it first and
  treats a cancelled one as gone rather than PATCHing it.
* Counter-proposals: an attendee who proposes a new time carries ``proposedNewTime``;
  ``event_state`` reports it as ``EventState.proposed``.
"""

from __future__ import annotations

import time as _time
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote

import requests

from connectors.attendees import GRAPH_MAX_ATTENDEES, invitees
from connectors.microsoft_auth import AppOnlyTokens, DelegatedTokens, TokenProvider
from connectors.microsoft_http import PROVIDER, GraphHttp, raise_for_batch_item, user_path
from connectors.microsoft_schedule import (
    MAX_SCHEDULE_WINDOW,
    MAX_SCHEDULES_PER_CALL,
    ScheduleCollector,
    schedule_batches,
    schedule_windows,
)
from connectors.microsoft_wire import (
    address_of,
    event_state_from,
    format_local,
    graph_zone_name,
    parse_date_time_zone,
    parse_response,
    utc_date_time_zone,
    view_busy_block,
)
from connectors.owner_read import OwnerReads, Use
from connectors.tokens import TokenStore
from scheduler.core.clock import Clock
from scheduler.core.errors import (
    ConfigurationError,
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
from scheduler.settings import MicrosoftSettings

__all__ = [
    "EXTENDED_PROPERTY_ID",
    "MAX_BATCH_REQUESTS",
    "MAX_SCHEDULES_PER_CALL",
    "MAX_SCHEDULE_WINDOW",
    "AppOnlyTokens",
    "DelegatedTokens",
    "GraphCalendar",
    "TokenProvider",
    "build_graph_calendar",
    "transaction_id",
]

#: JSON batching: at most 20 requests per ``$batch``.
MAX_BATCH_REQUESTS = 20
#: availabilityViewInterval (minutes, 5..1440). We read ``scheduleItems`` (exact times), not the
#: availabilityView string, so a coarse interval only keeps responses small.
_VIEW_INTERVAL_MIN = 60

#: Our namespace GUID for the named extended property (never change it: lookups depend on it).
_PROPERTY_GUID = "5c1d9a0e-8f2b-4d7e-9a61-3b0c7e2f4a18"
EXTENDED_PROPERTY_ID = f"String {{{_PROPERTY_GUID}}} Name goodwillKey"
_TRANSACTION_NAMESPACE = uuid.UUID(_PROPERTY_GUID)

_IMMUTABLE = 'IdType="ImmutableId"'
_UTC = 'outlook.timezone="UTC"'
#: What the owner's calendarView read asks for: contact history and busy time from one read.
_VIEW_SELECT = "attendees,organizer,start,end,isCancelled,responseStatus,showAs,isAllDay"
_CANCEL_COMMENT = "This meeting was cancelled."


def transaction_id(idempotency_key: str) -> str:
    """The Graph ``transactionId`` for a meeting: a GUID string, stable for the key (uuid5)."""
    return str(uuid.uuid5(_TRANSACTION_NAMESPACE, idempotency_key))


def _odata_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _our_key(event: Mapping[str, Any]) -> str | None:
    """Our idempotency key on an event read with our extended property expanded, else None."""
    for prop in event.get("singleValueExtendedProperties") or []:
        if (
            isinstance(prop, Mapping)
            and str(prop.get("id", "")).lower() == EXTENDED_PROPERTY_ID.lower()
            and isinstance(prop.get("value"), str)
            and prop["value"]
        ):
            return str(prop["value"])
    return None


def _overlaps(event: Mapping[str, Any], start: datetime, end: datetime) -> bool:
    """Whether the event overlaps ``[start, end)`` as calendarView decides; an event whose
    times cannot be read is kept (its reader handles it as it would a listed one)."""
    try:
        return (
            parse_date_time_zone(event["start"]) < end
            and parse_date_time_zone(event["end"]) > start
        )
    except (KeyError, TypeError, ValueError):
        return True


class GraphCalendar:
    """Microsoft 365 calendars through Graph v1.0.

    Args:
        settings: ``graph_base_url``, ``ca_bundle``, ``timeout_s``.
        token_provider: :class:`AppOnlyTokens` (any mailbox the app may read) or
            :class:`DelegatedTokens` (one user's mailbox; getSchedule of colleagues).
        session: HTTP session; default trusts ``settings.ca_bundle``.
        sleep: waits out a short ``Retry-After`` (≤2 s) before one replay.
        max_concurrency_per_mailbox: in-flight cap per mailbox (Outlook allows 4).
        clock: the current time, for an HTTP-date ``Retry-After`` (default: the system clock).
    """

    def __init__(
        self,
        settings: MicrosoftSettings,
        token_provider: TokenProvider,
        *,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = _time.sleep,
        max_concurrency_per_mailbox: int = 4,
        clock: Clock | None = None,
    ) -> None:
        self._http = GraphHttp(
            settings,
            token_provider,
            session=session,
            sleep=sleep,
            max_concurrency_per_mailbox=max_concurrency_per_mailbox,
            clock=clock,
        )
        self._owner_reads = OwnerReads()

    # -- CalendarSource ---------------------------------------------------------------------

    def busy(self, query: BusyQuery) -> BusyResult:
        """Busy blocks for everyone in ``query``: the owner from calendarView, the rest from
        getSchedule.

        ``query.people[0]`` is the policy owner, by convention; every request is made in their
        mailbox. The owner's own calendar comes from ``calendarView`` with event detail (held by
        :meth:`read_owner` in a planning round, else read now), so their busy rules apply in
        full and our own events carry their key. Each other person's ``scheduleItem`` becomes a
        :class:`BusyBlock` carrying its ``show_as``; the core's busy rules decide what blocks
        time. Calls: the owner's calendarView pages (none when held) plus ceil(others / 20)
        getSchedule per ≤61-day window.
        """
        people = list(dict.fromkeys(query.people))
        if not people:
            return BusyResult(blocks={})
        owner = people[0]
        others = [p for p in people[1:] if p.email.lower() != owner.email.lower()]
        own = self._owner_blocks(owner, query.window)
        collector = ScheduleCollector(others)
        for window in schedule_windows(query.window):
            for group in schedule_batches(others):
                collector.add(group, self._get_schedule(owner.email, group, window))
        result = collector.result()
        return BusyResult(
            blocks={owner.email: own, **result.blocks},
            unavailable=result.unavailable,
            working_hours=result.working_hours,
        )

    def _owner_blocks(self, owner: Person, window: Interval) -> list[BusyBlock]:
        blocks = []
        for event in self._owner_view(owner, window.start, window.end, "busy"):
            block = view_busy_block(event, owner.email, _our_key(event))
            if block is not None:
                blocks.append(block)
        return sorted(blocks, key=lambda b: (b.start, b.end))

    # -- OwnerCalendar ----------------------------------------------------------------------

    def read_owner(self, owner: Person, window: Interval) -> None:
        """Read the owner's calendarView over ``window`` once (all pages) and hold it.

        This round's ``last_contacts`` (from ``window.start``) and ``busy`` (to ``window.end``)
        for this owner, on this thread, are served from this read, once each (see
        :mod:`connectors.owner_read`); any other read goes to the provider. Raises what
        the calendarView read raises.
        """
        self._owner_reads.hold(
            owner.email, window, self._calendar_view(owner.email, window.start, window.end)
        )

    def _owner_view(
        self, owner: Person, start: datetime, end: datetime, use: Use
    ) -> list[dict[str, Any]]:
        """The owner's events overlapping ``[start, end)``: held, or read from calendarView."""
        held = self._owner_reads.take(owner.email, start, end, use)
        if held is None:
            return self._calendar_view(owner.email, start, end)
        return [dict(e) for e in held if _overlaps(e, start, end)]

    def _calendar_view(self, mailbox: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
        params = {
            "startDateTime": start.isoformat(),
            "endDateTime": end.isoformat(),
            "$select": _VIEW_SELECT,
            # Our own invites carry this property: not organic contact (an unanswered one must
            # not reset the clock), and in busy time it names the meeting (conflict checks).
            "$expand": f"singleValueExtendedProperties($filter=id eq '{EXTENDED_PROPERTY_ID}')",
            "$top": "100",
        }
        return list(
            self._http.paged(
                f"{user_path(mailbox)}/calendarView",
                mailbox=mailbox,
                what="calendarView",
                params=params,
                prefer=(_UTC, _IMMUTABLE),
            )
        )

    def _get_schedule(
        self, mailbox: str, group: Sequence[Person], window: Interval
    ) -> list[Mapping[str, Any]]:
        what = "getSchedule"
        body = {
            "schedules": [p.email for p in group],
            "startTime": utc_date_time_zone(window.start),
            "endTime": utc_date_time_zone(window.end),
            "availabilityViewInterval": _VIEW_INTERVAL_MIN,
        }
        response = self._http.call(
            "POST",
            f"{user_path(mailbox)}/calendar/getSchedule",
            mailbox=mailbox,
            what=what,
            body=body,
            prefer=(_UTC,),
        )
        value = self._http.json(response, what).get("value", [])
        return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []

    # -- ContactHistory ---------------------------------------------------------------------

    def last_contacts(
        self, owner: Person, emails: Sequence[str], since: datetime, until: datetime
    ) -> Mapping[str, datetime]:
        """End of the latest past meeting with each person in ``emails`` (UTC).

        Reads ``calendarView`` of the owner's calendar for ``[since, until)`` (paged), or takes
        it from the read :meth:`read_owner` holds. An event counts when it is not cancelled, is
        not one of ours (our extended property), the owner did not decline, the person is an
        attendee (or the organizer) who did not decline, and it ended by ``until``.
        """
        wanted = {e.lower(): e for e in emails}
        found: dict[str, datetime] = {}
        for event in self._owner_view(owner, since, until, "history"):
            if event.get("isCancelled") or event.get("singleValueExtendedProperties"):
                continue
            own = event.get("responseStatus")
            if isinstance(own, Mapping) and parse_response(own.get("response")) == (
                AttendeeStatus.DECLINED
            ):
                continue
            try:
                end = parse_date_time_zone(event["end"])
            except (KeyError, TypeError, ValueError):
                continue
            if end > until:
                continue
            present = set()
            organizer = address_of(event.get("organizer"))
            if organizer:
                present.add(organizer)
            for attendee in event.get("attendees") or []:
                status = attendee.get("status") if isinstance(attendee, Mapping) else None
                answer = status.get("response") if isinstance(status, Mapping) else None
                if parse_response(answer) != AttendeeStatus.DECLINED:
                    present.add(address_of(attendee))
            for address in present & wanted.keys():
                email = wanted[address]
                if email not in found or end > found[email]:
                    found[email] = end
        return found

    # -- CalendarWriter ---------------------------------------------------------------------

    def create_event(self, draft: EventDraft) -> CreatedEvent:
        """Create the invite on the organizer's calendar; Graph sends it to every attendee.

        Idempotent on ``draft.idempotency_key`` (see the module docstring). A group's attendees
        are all required attendees of this one event.

        Raises:
            AttendeeLimitExceeded: more attendees than Graph takes on one event (nothing sent).
        """
        organizer = draft.organizer.email
        # Every attendee of the one event (a group's too); refused above Graph's limit, before
        # any request.
        people = invitees(draft, provider=PROVIDER, limit=GRAPH_MAX_ATTENDEES)
        existing = self._find_by_key(organizer, draft.idempotency_key)
        if existing is not None:
            return CreatedEvent(provider_event_id=existing, created=False)
        zone_name, tz = graph_zone_name(draft.organizer.timezone)
        body: dict[str, Any] = {
            "subject": draft.title,
            "body": {"contentType": "text", "content": draft.description},
            "start": {"dateTime": format_local(draft.start, tz), "timeZone": zone_name},
            "end": {"dateTime": format_local(draft.end, tz), "timeZone": zone_name},
            "attendees": [
                {"emailAddress": {"address": p.email, "name": p.name}, "type": "required"}
                for p in people
            ],
            "transactionId": transaction_id(draft.idempotency_key),
            "singleValueExtendedProperties": [
                {"id": EXTENDED_PROPERTY_ID, "value": draft.idempotency_key}
            ],
        }
        if draft.location:
            body["location"] = {"displayName": draft.location}
        if draft.video == "teams":
            body["isOnlineMeeting"] = True
            body["onlineMeetingProvider"] = "teamsForBusiness"
        what = "create event"
        response = self._http.call(
            "POST",
            f"{user_path(organizer)}/events",
            mailbox=organizer,
            what=what,
            body=body,
            prefer=(_IMMUTABLE, _UTC),
        )
        event_id = self._http.json(response, what).get("id")
        if not isinstance(event_id, str) or not event_id:
            raise ProviderUnavailable(f"{what}: response carries no event id", provider=PROVIDER)
        return CreatedEvent(provider_event_id=event_id, created=True)

    def _find_by_key(self, organizer: str, key: str) -> str | None:
        literal = _odata_literal(key)
        params = {
            "$filter": (
                "singleValueExtendedProperties/Any(ep: ep/id eq "
                f"{_odata_literal(EXTENDED_PROPERTY_ID)} and ep/value eq {literal})"
            ),
            "$select": "id",
            "$top": "1",
        }
        what = "find event by key"
        response = self._http.call(
            "GET",
            f"{user_path(organizer)}/events",
            mailbox=organizer,
            what=what,
            params=params,
            prefer=(_IMMUTABLE,),
        )
        for item in self._http.json(response, what).get("value", []) or []:
            if isinstance(item, Mapping) and isinstance(item.get("id"), str):
                return str(item["id"])
        return None

    def find_by_key(self, organizer: Person, idempotency_key: str) -> CreatedEvent | None:
        """The event tagged with ``idempotency_key`` (by its extended property), if any."""
        event_id = self._find_by_key(organizer.email, idempotency_key)
        return None if event_id is None else CreatedEvent(provider_event_id=event_id, created=False)

    def cancel_by_key(self, organizer: Person, idempotency_key: str) -> None:
        """Cancel the event tagged with ``idempotency_key`` if there is one (found by its
        extended property: Graph ids are not derived from our key)."""
        event_id = self._find_by_key(organizer.email, idempotency_key)
        if event_id is not None:
            self.cancel_event(organizer, event_id)

    def cancel_event(self, organizer: Person, provider_event_id: str) -> None:
        """Cancel the meeting (attendees are notified); an event already gone counts as done."""
        try:
            self._http.call(
                "POST",
                f"{user_path(organizer.email)}/events/{quote(provider_event_id, safe='')}/cancel",
                mailbox=organizer.email,
                what="cancel event",
                body={"Comment": _CANCEL_COMMENT},
                prefer=(_IMMUTABLE,),
            )
        except ResourceGone:
            return

    def move_event(
        self, organizer: Person, provider_event_id: str, start: datetime, end: datetime
    ) -> None:
        """Move the same event to ``[start, end)``; Graph sends the update to the attendees.

        One ``GET`` (``isCancelled``, ``start``, ``end``) then one ``PATCH`` carrying only
        ``start``/``end`` as ``dateTimeTimeZone`` in the organizer's zone (as created). The read
        tells a cancelled event (kept in Deleted Items) from a live one, and an event already
        at ``[start, end)`` (a retried move) is not patched again: one update for the attendee.

        Raises:
            ResourceGone: the event is unknown (404/410) or cancelled.
            InvalidRequest: ``start``/``end`` are naive or ``end`` is not after ``start``.
        """
        if start.tzinfo is None or end.tzinfo is None or not start < end:
            raise InvalidRequest(
                "a move needs aware start and end, the end after the start", provider=PROVIDER
            )
        path = f"{user_path(organizer.email)}/events/{quote(provider_event_id, safe='')}"
        what = "get event"
        response = self._http.call(
            "GET",
            path,
            mailbox=organizer.email,
            what=what,
            params={"$select": "isCancelled,start,end"},
            prefer=(_IMMUTABLE, _UTC),
        )
        current = self._http.json(response, what)
        if current.get("isCancelled"):
            raise ResourceGone("move event: the event is cancelled", provider=PROVIDER, status=404)
        try:
            at = (parse_date_time_zone(current["start"]), parse_date_time_zone(current["end"]))
        except (KeyError, TypeError, ValueError):
            at = None  # unreadable: move it anyway
        if at == (start, end):
            return
        zone_name, tz = graph_zone_name(organizer.timezone)
        self._http.call(
            "PATCH",
            path,
            mailbox=organizer.email,
            what="move event",
            body={
                "start": {"dateTime": format_local(start, tz), "timeZone": zone_name},
                "end": {"dateTime": format_local(end, tz), "timeZone": zone_name},
            },
            prefer=(_IMMUTABLE,),
        )

    # -- ResponseReader ---------------------------------------------------------------------

    def event_state(
        self, organizer: Person, provider_event_id: str, attendee_email: str
    ) -> EventState:
        """The attendee's answer, cancellation and times (UTC) of one event.

        Raises:
            ResourceGone: the event no longer exists.
        """
        what = "get event"
        response = self._http.call(
            "GET",
            f"{user_path(organizer.email)}/events/{quote(provider_event_id, safe='')}",
            mailbox=organizer.email,
            what=what,
            params={"$select": "attendees,isCancelled,start,end"},
            prefer=(_IMMUTABLE, _UTC),
        )
        return event_state_from(self._http.json(response, what), attendee_email)

    def event_states(
        self, organizer: Person, provider_event_ids: Sequence[str], attendee_email: str
    ) -> Mapping[str, EventState]:
        """:meth:`event_state` for many events in JSON ``$batch`` calls of ≤20 requests.

        Events that no longer exist (404/410) are absent from the result. A batch holds all of
        the mailbox's concurrency slots, because Graph runs up to 4 items of a batch in parallel.

        Raises:
            ConnectorError: the first other per-item failure (429, 5xx, …), translated.
        """
        states: dict[str, EventState] = {}
        ids = list(dict.fromkeys(provider_event_ids))
        base = user_path(organizer.email)
        for start in range(0, len(ids), MAX_BATCH_REQUESTS):
            chunk = ids[start : start + MAX_BATCH_REQUESTS]
            requests_ = [
                {
                    "id": str(n),
                    "method": "GET",
                    "url": f"{base}/events/{quote(eid, safe='')}"
                    "?$select=attendees,isCancelled,start,end",
                    "headers": {"Prefer": f"{_IMMUTABLE}, {_UTC}"},
                }
                for n, eid in enumerate(chunk)
            ]
            what = "batch get events"
            response = self._http.call(
                "POST",
                "/$batch",
                mailbox=organizer.email,
                what=what,
                body={"requests": requests_},
                weight=len(requests_),
            )
            for item in self._http.json(response, what).get("responses", []) or []:
                index = int(item.get("id", -1))
                if not 0 <= index < len(chunk):
                    continue
                status = int(item.get("status", 500))
                if status in (404, 410):
                    continue
                if status >= 300:
                    raise_for_batch_item(item, what, now=self._http.clock.now())
                body = item.get("body")
                if isinstance(body, Mapping):
                    states[chunk[index]] = event_state_from(body, attendee_email)
        return states


def build_graph_calendar(
    settings: MicrosoftSettings,
    token_store: TokenStore,
    *,
    user_email: str | None = None,
    clock: Clock | None = None,
) -> GraphCalendar:
    """The composition root's factory: app-only when a client secret is configured, else delegated.

    Args:
        settings: the ``microsoft`` settings group.
        token_store: where the encrypted msal cache lives.
        user_email: the signed-in user, required for delegated access (no client secret).
        clock: the process's clock (default: the system clock).

    Raises:
        ConfigurationError: delegated access without ``user_email``, or missing client id.
    """
    tokens: TokenProvider
    if settings.client_secret is not None:
        tokens = AppOnlyTokens(settings, token_store)
    elif user_email:
        tokens = DelegatedTokens(settings, token_store, user_email)
    else:
        raise ConfigurationError(
            "Microsoft delegated access needs the user's e-mail (goodwill connect microsoft "
            "--user EMAIL); or set GOODWILL_MICROSOFT__CLIENT_SECRET for app-only access"
        )
    return GraphCalendar(settings, tokens, clock=clock)
