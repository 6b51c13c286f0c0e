"""A Microsoft Entra + Graph v1.0 calendar emulator over HTTPS on 127.0.0.1.

Speaks the wire format the real msal and requests clients use:

* Entra: ``GET /{tenant}/v2.0/.well-known/openid-configuration``, ``POST
  /{tenant}/oauth2/v2.0/token`` (client_credentials, refresh_token, device_code with
  ``authorization_pending`` first) and ``POST /{tenant}/oauth2/v2.0/devicecode``. User tokens carry
  an unsigned id_token and ``client_info`` so msal creates an account (see
  ../shared/reference/calendar-apis.md §3.3).
* Graph: ``getSchedule`` computed from stored events (attendee copies of unanswered invites show as
  tentative, declined ones not at all), events create (a reused ``transactionId`` returns the
  existing event with 201 and creates nothing — the behaviour reported for Exchange Online), get,
  list with the extended-property ``$filter``, ``calendarView`` with ``@odata.nextLink`` paging
  (an attendee's copy carries their answer as ``responseStatus`` and, unanswered or tentative,
  shows as tentative, as in getSchedule; a cancelled meeting stays on it with ``isCancelled``),
  ``cancel`` (organizer only; the event is marked cancelled and leaves the calendar), ``PATCH``
  of an event (the organizer's live event; a new start/end is recorded as an update sent to each
  attendee in :attr:`GraphEmulator.updates_sent`), ``$batch``. :meth:`GraphEmulator.respond`
  and :meth:`GraphEmulator.propose_new_time` answer as an attendee would.
* "Sign in with Microsoft" (OpenID Connect): the discovery document also names ``jwks_uri``;
  ``GET /{tenant}/oauth2/v2.0/authorize`` auto-consents as :meth:`GraphEmulator.sign_in_as`
  and the token endpoint's ``authorization_code`` grant (client secret, redirect_uri and PKCE
  checked) returns an RS256 id_token with the nonce; :attr:`GraphEmulator.id_tokens` spoils the
  next one (bad signature, expired, wrong audience …).
* ``Prefer: outlook.timezone`` (Windows or IANA names) and ``IdType="ImmutableId"`` are honoured.

Every request body is validated against ../shared/reference/graph-calendar-schema.json; problems
land in :attr:`GraphEmulator.schema_violations` (tests assert it stays empty).

Faults: :meth:`fail_next` (429 + Retry-After, 503, 504, …), :meth:`drop_next` (the connection closes
without a response), :attr:`delay_s` (slow responses), :meth:`expire_tokens` (access tokens stop
working: the next call gets 401), :meth:`revoke_refresh_tokens` (``invalid_grant``). The emulator
also enforces Outlook's 4-concurrent-requests-per-mailbox limit with 429 ``MailboxConcurrency``
and records the peak in :attr:`max_concurrency`.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import ssl
import threading
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, parse_qsl, quote, unquote, urlencode, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from scheduler.settings import MicrosoftSettings
from tests.emulators.certs import make_loopback_cert
from tests.emulators.graph_schema import GraphSchema
from tests.emulators.oidc_tokens import IdTokenSigner, pkce_ok

__all__ = ["Call", "GraphEmulator", "Mailbox"]

#: The emulator's own Windows-zone table (independent of the connector's CLDR mapping, so a
#: mapping bug in the connector cannot hide behind the same bug here). Unknown names -> 400.
WINDOWS_ZONES: Mapping[str, str] = {
    "UTC": "UTC",
    "GMT Standard Time": "Europe/London",
    "W. Europe Standard Time": "Europe/Berlin",
    "Romance Standard Time": "Europe/Paris",
    "Eastern Standard Time": "America/New_York",
    "Central Standard Time": "America/Chicago",
    "Pacific Standard Time": "America/Los_Angeles",
    "India Standard Time": "Asia/Kolkata",
    "Tokyo Standard Time": "Asia/Tokyo",
    "AUS Eastern Standard Time": "Australia/Sydney",
}

MAILBOX_CONCURRENCY = 4
_FILTER = re.compile(
    r"singleValueExtendedProperties/Any\(ep: ep/id eq '((?:[^']|'')*)' and ep/value eq "
    r"'((?:[^']|'')*)'\)"
)
_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_STATUS_DIGIT = {"free": "0", "workingElsewhere": "0", "tentative": "1", "busy": "2", "oof": "3"}
#: An attendee's answers for which Exchange shows their copy of a busy invite as tentative.
_TENTATIVE_ANSWERS = frozenset({"none", "notResponded", "tentativelyAccepted"})


def _zone(name: str) -> ZoneInfo:
    iana = WINDOWS_ZONES.get(name, name)
    if "/" not in iana and iana != "UTC":
        raise ValueError(f"unknown time zone {name!r}")
    try:
        return ZoneInfo(iana)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc


def _known_zone(name: str) -> bool:
    try:
        _zone(name)
    except ValueError:
        return False
    return True


def _parse_dtz(value: Mapping[str, Any]) -> datetime:
    text = str(value["dateTime"]).split(".")[0].rstrip("Z")
    local = datetime.fromisoformat(text)
    return local.replace(tzinfo=_zone(str(value["timeZone"]))).astimezone(UTC)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class _Reply(Exception):
    """Raised inside routing to answer with an error status."""

    def __init__(self, status: int, code: str, message: str, headers: Mapping[str, str] = {}):
        super().__init__(message)
        self.status = status
        self.body = {"error": {"code": code, "message": message}}
        self.headers = dict(headers)


@dataclass
class Mailbox:
    """A user the emulator knows, with working hours as Exchange reports them."""

    email: str
    name: str = ""
    zone: str = "Pacific Standard Time"
    days: tuple[str, ...] = ("monday", "tuesday", "wednesday", "thursday", "friday")
    start: str = "08:00:00.0000000"
    end: str = "17:00:00.0000000"
    #: ``(responseCode, message)`` returned in getSchedule instead of a schedule.
    error: tuple[str, str] | None = None


@dataclass
class Call:
    """One request as the emulator saw it."""

    method: str
    path: str
    query: dict[str, list[str]]
    mailbox: str | None
    status: int = 0
    body: Any = None
    prefer: str = ""


@dataclass
class _Event:
    id: str
    mailbox: str
    start: datetime
    end: datetime
    data: dict[str, Any]
    transaction_id: str | None = None
    ext: dict[str, str] = field(default_factory=dict)
    cancelled: bool = False


@dataclass
class _Fault:
    kind: str  # "status" | "drop" | "drop_after"
    status: int
    retry_after: str | None
    match: str | None
    remaining: int
    method: str | None = None


class GraphEmulator:
    """Entra + Graph on ``https://127.0.0.1:<port>``; use as a context manager.

    Args:
        directory: where the throwaway TLS certificate goes (a pytest ``tmp_path``).
        tenant: the tenant path segment the authority uses.
        client_id / client_secret: the app registration the token endpoint accepts.
        device_user: who "signs in" at the device-code prompt.
        device_pending_polls: how many polls get ``authorization_pending`` before success.
        max_page_size: the most items one page carries (``$top`` above it is capped).
    """

    def __init__(
        self,
        directory: Path,
        *,
        tenant: str = "contoso",
        client_id: str = "goodwill-app",
        client_secret: str = "app-secret",
        device_user: str = "ann@corp.example",
        device_pending_polls: int = 1,
        max_page_size: int = 1000,
    ) -> None:
        self.tenant = tenant
        self.tenant_id = str(uuid.uuid5(uuid.NAMESPACE_DNS, tenant))
        self.client_id = client_id
        self.client_secret = client_secret
        self.device_user = device_user
        self.device_pending_polls = device_pending_polls
        self.max_page_size = max_page_size
        self.ca_bundle, key = make_loopback_cert(directory / "graph-tls")
        self.schema = GraphSchema(_known_zone)
        self.delay_s = 0.0
        self.enforce_concurrency = True
        self.calls: list[Call] = []
        self.token_requests: list[dict[str, str]] = []
        self.schema_violations: list[str] = []
        self.max_concurrency: dict[str, int] = {}
        self.concurrency_rejections = 0
        #: ``(event id, attendee address)`` for every update Graph sent an attendee (a reschedule).
        self.updates_sent: list[tuple[str, str]] = []
        #: ``(event id, attendee address)`` for every invitation Graph sent (an event created).
        self.invitations_sent: list[tuple[str, str]] = []
        #: ``(event id, attendee address)`` for every cancellation Graph sent (``cancel``).
        self.cancellations_sent: list[tuple[str, str]] = []
        self.mailboxes: dict[str, Mailbox] = {}
        self._events: dict[str, _Event] = {}
        self._faults: list[_Fault] = []
        self._tokens: set[str] = set()
        self._refresh: dict[str, str] = {}  # refresh token -> user
        self._device: dict[str, list[Any]] = {}  # device_code -> [polls so far, scope]
        self._in_flight: dict[str, int] = {}
        self.id_tokens = IdTokenSigner()
        self._oidc_user: str | None = None
        self._oidc_codes: dict[str, dict[str, str]] = {}
        self._lock = threading.RLock()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.ca_bundle, key)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._server.emulator = self  # type: ignore[attr-defined]
        self.base_url = f"https://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    # -- lifecycle ----------------------------------------------------------------------

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> GraphEmulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def graph_base_url(self) -> str:
        return f"{self.base_url}/v1.0"

    def settings(self, **overrides: Any) -> MicrosoftSettings:
        """MicrosoftSettings pointing at this emulator (authority, Graph, CA bundle)."""
        values: dict[str, Any] = {
            "authority_host": self.base_url,
            "tenant": self.tenant,
            "graph_base_url": self.graph_base_url,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "ca_bundle": self.ca_bundle,
            "timeout_s": 5.0,
        }
        values.update(overrides)
        return MicrosoftSettings(**values)

    # -- test-side state ----------------------------------------------------------------

    def add_mailbox(self, email: str, **kwargs: Any) -> Mailbox:
        box = Mailbox(email=email, **kwargs)
        with self._lock:
            self.mailboxes[email.lower()] = box
        return box

    def seed_event(
        self,
        mailbox: str,
        start: datetime,
        end: datetime,
        *,
        show_as: str = "busy",
        subject: str = "Busy",
        attendees: Sequence[tuple[str, str]] = (),
        is_cancelled: bool = False,
        is_all_day: bool = False,
    ) -> str:
        """Put an event on ``mailbox``'s calendar (it is the organizer) and return its id.

        Args:
            attendees: ``(email, responseType)`` pairs, e.g. ``("bob@x", "accepted")``.
            is_all_day: mark it ``isAllDay`` (give midnight-to-midnight times yourself).
        """
        data = {
            "subject": subject,
            "showAs": show_as,
            "isAllDay": is_all_day,
            "attendees": [
                {
                    "emailAddress": {"address": a, "name": a.split("@")[0]},
                    "type": "required",
                    "status": {"response": r, "time": "0001-01-01T00:00:00Z"},
                }
                for a, r in attendees
            ],
        }
        with self._lock:
            event = self._store(mailbox, start.astimezone(UTC), end.astimezone(UTC), data)
            event.cancelled = is_cancelled
            return event.id

    def respond(self, attendee_email: str, event_id: str, response: str) -> None:
        """The attendee answers (``accepted``, ``declined``, ``tentativelyAccepted``)."""
        with self._lock:
            event = self._events[event_id]
            for attendee in event.data["attendees"]:
                if attendee["emailAddress"]["address"].lower() == attendee_email.lower():
                    attendee["status"] = {
                        "response": response,
                        "time": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                    }
                    return
        raise KeyError(f"{attendee_email} is not invited to {event_id}")

    def propose_new_time(
        self,
        attendee_email: str,
        event_id: str,
        start: datetime,
        end: datetime,
        *,
        response: str = "tentativelyAccepted",
    ) -> None:
        """The attendee answers with a counter-proposal, as Graph's ``tentativelyAccept`` (or
        ``decline``) with ``proposedNewTime`` does: the organizer's copy then shows their
        ``status`` and ``proposedNewTime`` (written in the attendee's mailbox zone)."""
        box = self.mailboxes.get(attendee_email.lower())
        zone = box.zone if box is not None else "UTC"
        tz = _zone(zone)
        slot = {
            key: {
                "dateTime": moment.astimezone(tz).strftime("%Y-%m-%dT%H:%M:%S.0000000"),
                "timeZone": zone,
            }
            for key, moment in (("start", start), ("end", end))
        }
        with self._lock:
            event = self._events[event_id]
            for attendee in event.data["attendees"]:
                if attendee["emailAddress"]["address"].lower() == attendee_email.lower():
                    attendee["status"] = {
                        "response": response,
                        "time": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                    }
                    attendee["proposedNewTime"] = slot
                    return
        raise KeyError(f"{attendee_email} is not invited to {event_id}")

    def events_of(self, mailbox: str, *, include_cancelled: bool = False) -> list[dict[str, Any]]:
        """Events organised by ``mailbox`` (a copy of their Graph representation)."""
        with self._lock:
            return [
                self._render(e, "UTC")
                for e in self._events.values()
                if e.mailbox == mailbox.lower() and (include_cancelled or not e.cancelled)
            ]

    def raw_event(self, event_id: str) -> dict[str, Any]:
        """Everything stored for an event, including transactionId and extended properties."""
        with self._lock:
            e = self._events[event_id]
            return {
                **self._render(e, "UTC"),
                "transactionId": e.transaction_id,
                "ext": dict(e.ext),
                "cancelled": e.cancelled,
            }

    # -- faults -------------------------------------------------------------------------

    def fail_next(
        self,
        status: int,
        *,
        times: int = 1,
        retry_after: str | None = None,
        match: str | None = None,
        method: str | None = None,
    ) -> None:
        """Answer the next ``times`` Graph requests with ``status``.

        Only requests whose path contains ``match`` and whose method is ``method`` (when given).
        """
        with self._lock:
            self._faults.append(_Fault("status", status, retry_after, match, times, method))

    def drop_next(
        self,
        *,
        times: int = 1,
        match: str | None = None,
        method: str | None = None,
        after_processing: bool = False,
    ) -> None:
        """Close the connection without answering the next ``times`` Graph requests.

        ``after_processing=True`` carries the request out first (the event *is* created) and then
        loses the response: the case ``transactionId`` exists for.
        """
        with self._lock:
            kind = "drop_after" if after_processing else "drop"
            self._faults.append(_Fault(kind, 0, None, match, times, method))

    def expire_tokens(self) -> None:
        """Every access token issued so far stops working (the next Graph call gets 401)."""
        with self._lock:
            self._tokens.clear()

    def sign_in_as(self, email: str | None) -> None:
        """Who consents at the authorize endpoint from now on (None: the user cancels)."""
        with self._lock:
            self._oidc_user = None if email is None else email.lower()

    def revoke_refresh_tokens(self) -> None:
        with self._lock:
            self._refresh.clear()

    def count(self, method: str | None = None, contains: str | None = None) -> int:
        """Graph calls seen (token endpoint excluded), filtered by method and path substring."""
        with self._lock:
            return sum(
                1
                for c in self.calls
                if (method is None or c.method == method)
                and (contains is None or contains in c.path)
            )

    # -- request handling (called from handler threads) ---------------------------------

    def _take_fault(self, method: str, path: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if (
                    fault.remaining > 0
                    and (fault.match is None or fault.match in path)
                    and (fault.method is None or fault.method == method)
                ):
                    fault.remaining -= 1
                    return fault
        return None

    def _violate(self, problems: Iterable[str]) -> None:
        with self._lock:
            self.schema_violations.extend(problems)

    def handle(self, handler: _Handler, method: str) -> None:
        parts = urlsplit(handler.path)
        path = unquote(parts.path)
        query = parse_qs(parts.query, keep_blank_values=True)
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        if path.startswith("/v1.0/"):
            self._handle_graph(handler, method, path[len("/v1.0") :], query, raw)
        else:
            self._handle_entra(handler, method, path, raw)

    # Entra ------------------------------------------------------------------------------

    def _handle_entra(self, handler: _Handler, method: str, path: str, raw: bytes) -> None:
        base = f"{self.base_url}/{self.tenant}"
        if method == "GET" and path == f"/{self.tenant}/v2.0/.well-known/openid-configuration":
            handler.reply(
                200,
                {
                    "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                    "token_endpoint": f"{base}/oauth2/v2.0/token",
                    "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                    "issuer": f"{self.base_url}/{self.tenant_id}/v2.0",
                    "jwks_uri": f"{base}/discovery/v2.0/keys",
                    "response_types_supported": ["code", "id_token", "code id_token"],
                    "id_token_signing_alg_values_supported": ["RS256"],
                    "scopes_supported": ["openid", "profile", "email", "offline_access"],
                },
            )
            return
        if method == "GET" and path == f"/{self.tenant}/discovery/v2.0/keys":
            handler.reply(200, self.id_tokens.jwks())
            return
        if method == "GET" and path == f"/{self.tenant}/oauth2/v2.0/authorize":
            query = dict(parse_qsl(urlsplit(handler.path).query))
            status, body, headers = self._authorize(query)
            handler.reply(status, body, headers)
            return
        form = dict(parse_qsl(raw.decode()))
        with self._lock:
            self.token_requests.append({k: v for k, v in form.items() if k != "client_secret"})
        if method == "POST" and path == f"/{self.tenant}/oauth2/v2.0/devicecode":
            code = secrets.token_urlsafe(16)
            with self._lock:
                self._device[code] = [0, form.get("scope", "")]
            handler.reply(
                200,
                {
                    "device_code": code,
                    "user_code": "GW-" + code[:6].upper(),
                    "verification_uri": "https://microsoft.com/devicelogin",
                    "expires_in": 900,
                    "interval": 0,
                    "message": f"To sign in, open https://microsoft.com/devicelogin and enter the "
                    f"code GW-{code[:6].upper()} to authenticate.",
                },
            )
            return
        if method == "POST" and path == f"/{self.tenant}/oauth2/v2.0/token":
            status, body = self._token(form)
            handler.reply(status, body)
            return
        handler.reply(404, {"error": "not_found"})

    def _token(self, form: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
        grant = form.get("grant_type", "")
        if form.get("client_id") != self.client_id:
            return 400, {"error": "unauthorized_client", "error_description": "AADSTS700016"}
        if grant == "client_credentials":
            if form.get("client_secret") != self.client_secret:
                return 401, {"error": "invalid_client", "error_description": "AADSTS7000215"}
            return 200, self._access_token()
        if grant == "urn:ietf:params:oauth:grant-type:device_code":
            code = form.get("device_code", "")
            with self._lock:
                if code not in self._device:
                    return 400, {"error": "expired_token", "error_description": "AADSTS70019"}
                self._device[code][0] += 1
                polls, scope = self._device[code]
                if polls <= self.device_pending_polls:
                    return 400, {
                        "error": "authorization_pending",
                        "error_description": "AADSTS70016",
                    }
                del self._device[code]
            return 200, self._user_tokens(self.device_user, str(scope))
        if grant == "authorization_code":
            return self._code_grant(form)
        if grant == "refresh_token":
            with self._lock:
                user = self._refresh.pop(form.get("refresh_token", ""), None)
            if user is None:
                return 400, {
                    "error": "invalid_grant",
                    "error_description": "AADSTS700082: The refresh token has expired.",
                }
            return 200, self._user_tokens(user, form.get("scope", ""))
        return 400, {"error": "unsupported_grant_type"}

    def _authorize(self, q: Mapping[str, str]) -> tuple[int, Any, dict[str, str]]:
        redirect = q.get("redirect_uri", "")
        if q.get("client_id") != self.client_id:
            return 400, {"error": "unauthorized_client", "error_description": "AADSTS700016"}, {}
        if not redirect.startswith(("http://127.0.0.1:", "http://localhost:", "https://")):
            return 400, {"error": "invalid_request", "error_description": "AADSTS50011"}, {}
        if q.get("code_challenge_method") != "S256" or not q.get("code_challenge"):
            return 400, {"error": "invalid_request", "error_description": "AADSTS9002325"}, {}
        with self._lock:
            user = self._oidc_user
            if user is None:
                params = {"error": "access_denied", "state": q.get("state", "")}
            else:
                code = "M." + secrets.token_urlsafe(16)
                self._oidc_codes[code] = {
                    "user": user, "challenge": q["code_challenge"], "redirect_uri": redirect,
                    "nonce": q.get("nonce", ""), "scope": q.get("scope", ""),
                }  # fmt: skip
                params = {"code": code, "state": q.get("state", "")}
        return 302, None, {"Location": f"{redirect}?{urlencode(params)}"}

    def _code_grant(self, form: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
        if form.get("client_secret") != self.client_secret:
            return 401, {"error": "invalid_client", "error_description": "AADSTS7000215"}
        with self._lock:
            grant = self._oidc_codes.pop(form.get("code", ""), None)
        if (
            grant is None
            or form.get("redirect_uri") != grant["redirect_uri"]
            or not pkce_ok(form.get("code_verifier", ""), grant["challenge"])
        ):
            return 400, {"error": "invalid_grant", "error_description": "AADSTS70008"}
        user = grant["user"]
        oid = str(uuid.uuid5(uuid.NAMESPACE_URL, user))
        claims: dict[str, Any] = {
            "iss": f"{self.base_url}/{self.tenant_id}/v2.0",
            "aud": self.client_id,
            "nbf": int(time.time()),
            "oid": oid,
            "sub": oid,
            "tid": self.tenant_id,
            "preferred_username": user,
            "email": user,
            "name": user.split("@")[0].title(),
        }
        if grant["nonce"]:
            claims["nonce"] = grant["nonce"]
        body = self._access_token()
        body.update(scope=grant["scope"], id_token=self.id_tokens.sign(claims))
        return 200, body

    def _access_token(self) -> dict[str, Any]:
        token = "at-" + secrets.token_urlsafe(12)
        with self._lock:
            self._tokens.add(token)
        return {
            "token_type": "Bearer",
            "expires_in": 3599,
            "ext_expires_in": 3599,
            "access_token": token,
        }

    def _user_tokens(self, user: str, scope: str) -> dict[str, Any]:
        oid = str(uuid.uuid5(uuid.NAMESPACE_URL, user))
        refresh = "rt-" + secrets.token_urlsafe(12)
        with self._lock:
            self._refresh[refresh] = user
        now = int(time.time())
        claims = {
            "iss": f"{self.base_url}/{self.tenant_id}/v2.0",
            "aud": self.client_id,
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
            "oid": oid,
            "sub": oid,
            "tid": self.tenant_id,
            "preferred_username": user,
            "name": user.split("@")[0].title(),
        }
        id_token = ".".join(
            [_b64url(b'{"alg":"none","typ":"JWT"}'), _b64url(json.dumps(claims).encode()), ""]
        )
        client_info = _b64url(json.dumps({"uid": oid, "utid": self.tenant_id}).encode())
        body = self._access_token()
        scopes = " ".join(
            s for s in scope.split() if s not in {"openid", "profile", "offline_access"}
        )
        body.update(
            refresh_token=refresh,
            id_token=id_token,
            client_info=client_info,
            scope=scopes or "Calendars.ReadWrite",
        )
        return body

    # Graph ------------------------------------------------------------------------------

    def _mailbox_of(self, path: str, body: Any) -> str | None:
        if path == "/$batch" and isinstance(body, Mapping):
            for item in body.get("requests") or []:
                found = self._mailbox_of(str(item.get("url", "")).split("?")[0], None)
                if found:
                    return found
            return None
        match = re.match(r"/users/([^/]+)", path)
        return match.group(1).lower() if match else None

    def _handle_graph(
        self, handler: _Handler, method: str, path: str, query: dict[str, list[str]], raw: bytes
    ) -> None:
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            handler.reply(400, {"error": {"code": "BadRequest", "message": "Invalid JSON"}})
            return
        mailbox = self._mailbox_of(path, body)
        prefer = handler.headers.get("Prefer", "")
        call = Call(method, path, query, mailbox, body=body, prefer=prefer)
        with self._lock:
            self.calls.append(call)
        weight = 1
        if path == "/$batch" and isinstance(body, Mapping):
            weight = max(1, min(len(body.get("requests") or []), MAILBOX_CONCURRENCY))
        key = mailbox or "-"
        with self._lock:
            self._in_flight[key] = self._in_flight.get(key, 0) + weight
            self.max_concurrency[key] = max(self.max_concurrency.get(key, 0), self._in_flight[key])
            over = self.enforce_concurrency and self._in_flight[key] > MAILBOX_CONCURRENCY
        try:
            if self.delay_s:
                time.sleep(self.delay_s)
            if over:
                with self._lock:
                    self.concurrency_rejections += 1
                status, headers, out = (
                    429,
                    {"Retry-After": "1"},
                    {
                        "error": {
                            "code": "ApplicationThrottled",
                            "message": "Application is over its MailboxConcurrency limit.",
                        }
                    },
                )
            else:
                fault = self._take_fault(method, path)
                if fault is not None and fault.kind == "drop":
                    call.status = -1
                    handler.drop()
                    return
                if fault is not None and fault.kind == "drop_after":
                    status, headers, out = self._graph(
                        method, path, query, body, prefer, handler.headers
                    )
                    call.status = -status
                    handler.drop()
                    return
                if fault is not None:
                    headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
                    status, out = (
                        fault.status,
                        {
                            "error": {
                                "code": "ServiceUnavailable"
                                if fault.status >= 500
                                else "TooManyRequests",
                                "message": "Injected fault.",
                            }
                        },
                    )
                else:
                    status, headers, out = self._graph(
                        method, path, query, body, prefer, handler.headers
                    )
        finally:
            with self._lock:
                self._in_flight[key] -= weight
        call.status = status
        handler.reply(status, out, headers)

    def _graph(
        self,
        method: str,
        path: str,
        query: Mapping[str, list[str]],
        body: Any,
        prefer: str,
        headers: Message,
    ) -> tuple[int, dict[str, str], Any]:
        auth = headers.get("Authorization", "")
        with self._lock:
            valid = auth.startswith("Bearer ") and auth[len("Bearer ") :] in self._tokens
        if not valid:
            return (
                401,
                {},
                {
                    "error": {
                        "code": "InvalidAuthenticationToken",
                        "message": "Access token has expired or is not yet valid.",
                    }
                },
            )
        if path == "/$batch" and method == "POST":
            return 200, {}, self._batch(body)
        return self._route(method, path, query, body, prefer)

    def _route(
        self, method: str, path: str, query: Mapping[str, list[str]], body: Any, prefer: str
    ) -> tuple[int, dict[str, str], Any]:
        try:
            zone = _prefer_zone(prefer)
            m = re.fullmatch(r"/users/([^/]+)(/.*)", path)
            if not m:
                raise _Reply(404, "ResourceNotFound", f"Resource not found for the segment {path}")
            mailbox, rest = m.group(1).lower(), m.group(2)
            with self._lock:
                if rest == "/calendar/getSchedule" and method == "POST":
                    return 200, {}, self._get_schedule(body, zone)
                if rest == "/events" and method == "POST":
                    return 201, {}, self._create(mailbox, body, zone)
                if rest == "/events" and method == "GET":
                    return 200, {}, self._list(mailbox, query, zone, path)
                if rest == "/calendarView" and method == "GET":
                    return 200, {}, self._calendar_view(mailbox, query, zone, path)
                em = re.fullmatch(r"/events/([^/]+)(/cancel)?", rest)
                if em and method == "GET" and not em.group(2):
                    event = self._owned(mailbox, em.group(1))
                    return 200, {}, _select(self._render(event, zone), query)
                if em and method == "POST" and em.group(2):
                    self._cancel(mailbox, em.group(1), body)
                    return 202, {}, None
                if em and method == "PATCH" and not em.group(2):
                    return 200, {}, self._update(mailbox, em.group(1), body, zone)
            raise _Reply(400, "BadRequest", f"Unsupported request {method} {path}")
        except _Reply as reply:
            return reply.status, reply.headers, reply.body

    # Graph operations (hold self._lock) -------------------------------------------------

    def _store(self, mailbox: str, start: datetime, end: datetime, data: dict[str, Any]) -> _Event:
        event_id = "AAkALg" + _b64url(secrets.token_bytes(24))  # immutable-id look-alike
        box = self.mailboxes.get(mailbox.lower())
        data = {
            **data,
            "id": event_id,
            "createdDateTime": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "iCalUId": "040000008200E00074C5B7101A82E008" + secrets.token_hex(16).upper(),
            "isCancelled": False,
            "organizer": {
                "emailAddress": {"address": mailbox, "name": box.name if box else mailbox}
            },
            "responseStatus": {"response": "organizer", "time": "0001-01-01T00:00:00Z"},
        }
        data.setdefault("showAs", "busy")
        event = _Event(event_id, mailbox.lower(), start, end, data)
        self._events[event_id] = event
        return event

    def _render(self, event: _Event, zone: str) -> dict[str, Any]:
        tz = _zone(zone)
        out: dict[str, Any] = json.loads(json.dumps(event.data))
        if event.ext:  # the organizer's copy; _select drops them unless $expand asks
            out["singleValueExtendedProperties"] = [
                {"id": k, "value": v} for k, v in event.ext.items()
            ]
        out["isCancelled"] = event.cancelled
        for key, moment in (("start", event.start), ("end", event.end)):
            out[key] = {
                "dateTime": moment.astimezone(tz).strftime("%Y-%m-%dT%H:%M:%S.0000000"),
                "timeZone": zone,
            }
        if event.transaction_id:
            out["transactionId"] = event.transaction_id
        problems = self.schema.validate("event", out, "response event")
        self.schema_violations.extend(problems)
        return out

    def _owned(self, mailbox: str, event_id: str) -> _Event:
        event = self._events.get(event_id)
        if event is None or event.mailbox != mailbox:
            raise _Reply(
                404, "ErrorItemNotFound", "The specified object was not found in the store."
            )
        return event

    def _create(self, mailbox: str, body: Any, zone: str) -> dict[str, Any]:
        self.schema_violations.extend(self.schema.validate("event", body, "POST event"))
        if not isinstance(body, Mapping):
            raise _Reply(400, "RequestBodyRead", "Body must be an event object.")
        txn = body.get("transactionId")
        if txn:
            for existing in self._events.values():
                if existing.mailbox == mailbox and existing.transaction_id == txn:
                    return self._render(existing, zone)  # 201, the same event, nothing created
        try:
            start, end = _parse_dtz(body["start"]), _parse_dtz(body["end"])
        except (KeyError, TypeError, ValueError) as exc:
            raise _Reply(400, "ErrorInvalidRequest", f"Bad start/end: {exc}") from exc
        if not start < end:
            raise _Reply(400, "ErrorInvalidRequest", "The end must be after the start.")
        data: dict[str, Any] = {
            k: v
            for k, v in body.items()
            if k not in {"start", "end", "transactionId", "singleValueExtendedProperties"}
        }
        data["originalStartTimeZone"] = body["start"]["timeZone"]
        data["originalEndTimeZone"] = body["end"]["timeZone"]
        data["attendees"] = [
            {**a, "status": {"response": "none", "time": "0001-01-01T00:00:00Z"}}
            for a in body.get("attendees") or []
        ]
        if body.get("isOnlineMeeting") and body.get("onlineMeetingProvider") == "teamsForBusiness":
            data["onlineMeeting"] = {
                "joinUrl": "https://teams.microsoft.com/l/meetup-join/" + secrets.token_hex(8)
            }
        event = self._store(mailbox, start, end, data)
        event.transaction_id = txn
        # "When an event is sent, the server sends invitations to all the attendees."
        self.invitations_sent.extend(
            (event.id, a["emailAddress"]["address"].lower()) for a in data["attendees"]
        )
        for prop in body.get("singleValueExtendedProperties") or []:
            event.ext[str(prop.get("id"))] = str(prop.get("value"))
        return self._render(event, zone)

    def _list(
        self, mailbox: str, query: Mapping[str, list[str]], zone: str, path: str
    ) -> dict[str, Any]:
        found = [e for e in self._events.values() if e.mailbox == mailbox and not e.cancelled]
        flt = (query.get("$filter") or [""])[0]
        if flt:
            m = _FILTER.fullmatch(flt)
            if not m:
                raise _Reply(400, "BadRequest", f"Unsupported $filter {flt!r}")
            prop_id, value = m.group(1).replace("''", "'"), m.group(2).replace("''", "'")
            found = [e for e in found if e.ext.get(prop_id) == value]
        return self._page([self._render(e, zone) for e in found], query, path)

    def _calendar_view(
        self, mailbox: str, query: Mapping[str, list[str]], zone: str, path: str
    ) -> dict[str, Any]:
        try:
            lo = datetime.fromisoformat(query["startDateTime"][0])
            hi = datetime.fromisoformat(query["endDateTime"][0])
        except (KeyError, ValueError) as exc:
            raise _Reply(
                400, "ErrorInvalidParameter", "startDateTime/endDateTime required"
            ) from exc
        if lo.tzinfo is None:
            lo, hi = lo.replace(tzinfo=UTC), hi.replace(tzinfo=UTC)
        rows = []
        for event in sorted(self._events.values(), key=lambda e: (e.start, e.id)):
            if not (event.start < hi and lo < event.end):
                continue
            if event.mailbox == mailbox and not event.cancelled:
                rows.append(self._render(event, zone))
                continue
            mine = [
                a
                for a in event.data.get("attendees", [])
                if a["emailAddress"]["address"].lower() == mailbox
            ]
            if mine:  # the attendee's own copy: their answer is its responseStatus
                copy = self._render(event, zone)
                copy.pop("singleValueExtendedProperties", None)  # per-mailbox, not shared
                copy["responseStatus"] = mine[0]["status"]
                answer = mine[0]["status"].get("response", "none")
                if answer in _TENTATIVE_ANSWERS and copy.get("showAs") == "busy":
                    copy["showAs"] = "tentative"  # as getSchedule shows it (see _busy_items)
                rows.append(copy)
        return self._page(rows, query, path)

    def _page(
        self, rows: list[dict[str, Any]], query: Mapping[str, list[str]], path: str
    ) -> dict[str, Any]:
        # Graph pages at most max_page_size items whatever $top asks for.
        top = min(int((query.get("$top") or ["10"])[0]), self.max_page_size)
        skip = int((query.get("$skip") or ["0"])[0])
        page = [_select(r, query) for r in rows[skip : skip + top]]
        out: dict[str, Any] = {"value": page}
        if skip + top < len(rows):
            params = {k: v[0] for k, v in query.items()}
            params["$skip"] = str(skip + top)
            out["@odata.nextLink"] = f"{self.graph_base_url}{quote(path)}?{urlencode(params)}"
        return out

    def _cancel(self, mailbox: str, event_id: str, body: Any) -> None:
        self.schema_violations.extend(self.schema.validate_action("cancel(event)", body or {}))
        event = self._events.get(event_id)
        if event is not None and event.mailbox != mailbox:
            if any(
                a["emailAddress"]["address"].lower() == mailbox
                for a in event.data.get("attendees", [])
            ):
                raise _Reply(
                    400, "ErrorInvalidRequest", "You need to be an organizer to cancel a meeting."
                )
            event = None
        if event is None or event.cancelled:
            # Cancel moves the item to Deleted Items; cancelling it again finds nothing.
            raise _Reply(
                404, "ErrorItemNotFound", "The specified object was not found in the store."
            )
        event.cancelled = True
        self.cancellations_sent.extend(
            (event.id, a["emailAddress"]["address"].lower())
            for a in event.data.get("attendees", [])
        )

    def _update(self, mailbox: str, event_id: str, body: Any, zone: str) -> dict[str, Any]:
        """``PATCH /users/{m}/events/{id}``: the organizer updates their event (200 + the event).

        Only the organizer's own, live event can be updated here (a cancelled one has gone to
        Deleted Items: 404, like a second cancel). A new start/end is a reschedule: Graph sends
        the attendees an update itself (recorded in :attr:`updates_sent`), and a time an
        attendee had proposed no longer applies to the new version, so it is dropped.
        """
        self.schema_violations.extend(self.schema.validate("event", body, "PATCH event"))
        if not isinstance(body, Mapping):
            raise _Reply(400, "RequestBodyRead", "Body must be an event object.")
        event = self._owned(mailbox, event_id)
        if event.cancelled:
            raise _Reply(
                404, "ErrorItemNotFound", "The specified object was not found in the store."
            )
        if "transactionId" in body:
            raise _Reply(400, "ErrorInvalidRequest", "transactionId cannot be changed.")
        try:
            start = _parse_dtz(body["start"]) if "start" in body else event.start
            end = _parse_dtz(body["end"]) if "end" in body else event.end
        except (KeyError, TypeError, ValueError) as exc:
            raise _Reply(400, "ErrorInvalidRequest", f"Bad start/end: {exc}") from exc
        if not start < end:
            raise _Reply(400, "ErrorInvalidRequest", "The end must be after the start.")
        for key, value in body.items():
            if key in {"start", "end", "singleValueExtendedProperties"}:
                continue
            event.data[key] = value
        for prop in body.get("singleValueExtendedProperties") or []:
            event.ext[str(prop.get("id"))] = str(prop.get("value"))
        if (start, end) != (event.start, event.end):
            event.start, event.end = start, end
            if "start" in body:
                event.data["originalStartTimeZone"] = body["start"]["timeZone"]
            if "end" in body:
                event.data["originalEndTimeZone"] = body["end"]["timeZone"]
            for attendee in event.data.get("attendees", []):
                attendee.pop("proposedNewTime", None)
                self.updates_sent.append((event_id, attendee["emailAddress"]["address"].lower()))
        return self._render(event, zone)

    def _get_schedule(self, body: Any, zone: str) -> dict[str, Any]:
        self.schema_violations.extend(self.schema.validate_action("getSchedule", body))
        if not isinstance(body, Mapping):
            raise _Reply(400, "RequestBodyRead", "Body must be an object.")
        params = {k.lower(): v for k, v in body.items()}
        schedules = params.get("schedules") or []
        if len(schedules) > 20:
            raise _Reply(400, "ErrorInvalidParameter", "Too many schedules: the limit is 20.")
        try:
            lo, hi = _parse_dtz(params["starttime"]), _parse_dtz(params["endtime"])
        except (KeyError, TypeError, ValueError) as exc:
            raise _Reply(400, "ErrorInvalidParameter", f"Bad StartTime/EndTime: {exc}") from exc
        if hi - lo >= timedelta(days=62):
            raise _Reply(
                400,
                "ErrorTimeIntervalTooBig",
                "The requested time duration specified is too large. allowed limit = 62 days",
            )
        interval = int(params.get("availabilityviewinterval") or 30)
        if not 5 <= interval <= 1440:
            raise _Reply(400, "ErrorInvalidParameter", "availabilityViewInterval must be 5..1440")
        tz = _zone(zone)
        values = []
        for address in schedules:
            box = self.mailboxes.get(str(address).lower())
            if box is None:
                values.append(
                    {
                        "scheduleId": address,
                        "error": {
                            "message": f"Unable to resolve e-mail address {address} to an "
                            "Active Directory object.",
                            "responseCode": "5009",
                        },
                    }
                )
                continue
            if box.error is not None:
                values.append(
                    {
                        "scheduleId": address,
                        "error": {"responseCode": box.error[0], "message": box.error[1]},
                    }
                )
                continue
            items = []
            for event, status in self._busy_items(box.email.lower(), lo, hi):
                items.append(
                    {
                        "isPrivate": False,
                        "status": status,
                        "subject": event.data.get("subject", ""),
                        "location": "",
                        "start": {
                            "dateTime": event.start.astimezone(tz).strftime(
                                "%Y-%m-%dT%H:%M:%S.0000000"
                            ),
                            "timeZone": zone,
                        },
                        "end": {
                            "dateTime": event.end.astimezone(tz).strftime(
                                "%Y-%m-%dT%H:%M:%S.0000000"
                            ),
                            "timeZone": zone,
                        },
                    }
                )
            values.append(
                {
                    "scheduleId": address,
                    "availabilityView": _availability_view(items, lo, hi, interval),
                    "scheduleItems": items,
                    "workingHours": {
                        "daysOfWeek": list(box.days),
                        "startTime": box.start,
                        "endTime": box.end,
                        "timeZone": {"name": box.zone},
                    },
                }
            )
        for value in values:
            self.schema_violations.extend(
                self.schema.validate("scheduleInformation", value, "response scheduleInformation")
            )
        return {"value": values}

    def _busy_items(self, mailbox: str, lo: datetime, hi: datetime) -> list[tuple[_Event, str]]:
        out = []
        for event in sorted(self._events.values(), key=lambda e: e.start):
            if event.cancelled or not (event.start < hi and lo < event.end):
                continue
            if event.mailbox == mailbox:
                out.append((event, str(event.data.get("showAs", "busy"))))
                continue
            for attendee in event.data.get("attendees", []):
                if attendee["emailAddress"]["address"].lower() != mailbox:
                    continue
                answer = attendee.get("status", {}).get("response", "none")
                if answer == "declined":
                    break
                status = str(event.data.get("showAs", "busy"))
                if answer in _TENTATIVE_ANSWERS and status == "busy":
                    status = "tentative"  # Exchange shows unanswered invites as tentative
                out.append((event, status))
                break
        return out

    def _batch(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, Mapping) or not isinstance(body.get("requests"), list):
            return {"error": {"code": "BadRequest", "message": "requests missing"}}
        items = body["requests"]
        if len(items) > 20:
            return {"error": {"code": "BadRequest", "message": "Batch limit is 20 requests."}}
        responses = []
        for item in items:
            url = urlsplit(str(item.get("url", "")))
            path = unquote(url.path)
            if not path.startswith("/"):
                path = "/" + path
            headers = item.get("headers") or {}
            status, out_headers, out = self._route(
                str(item.get("method", "GET")),
                path,
                parse_qs(url.query),
                item.get("body"),
                str(headers.get("Prefer", "")),
            )
            responses.append(
                {"id": item.get("id"), "status": status, "headers": out_headers, "body": out}
            )
        return {"responses": responses}


def _prefer_zone(prefer: str) -> str:
    m = re.search(r'outlook\.timezone="([^"]+)"', prefer)
    zone = m.group(1) if m else "UTC"
    if not _known_zone(zone):
        raise _Reply(400, "ErrorInvalidTimeZone", f"Unknown time zone {zone!r}")
    return zone


def _select(row: dict[str, Any], query: Mapping[str, list[str]]) -> dict[str, Any]:
    # Like Graph: extended properties come back only when $expand asks for them (by id).
    row = dict(row)
    props = row.pop("singleValueExtendedProperties", None) or []
    expand = (query.get("$expand") or [""])[0]
    if expand.startswith("singleValueExtendedProperties"):
        m = re.search(r"id eq '((?:[^']|'')*)'", expand)
        wanted = m.group(1).replace("''", "'").lower() if m else None
        kept = [p for p in props if wanted is None or str(p.get("id", "")).lower() == wanted]
        if kept:
            row["singleValueExtendedProperties"] = kept
    chosen = (query.get("$select") or [""])[0]
    if not chosen:
        return row
    keep = {"id", "singleValueExtendedProperties", *chosen.split(",")}
    return {k: v for k, v in row.items() if k in keep}


def _availability_view(
    items: list[dict[str, Any]], lo: datetime, hi: datetime, minutes: int
) -> str:
    step = timedelta(minutes=minutes)
    spans = [(_parse_dtz(i["start"]), _parse_dtz(i["end"]), i["status"]) for i in items]
    out = []
    slot = lo
    while slot < hi:
        digit = "0"
        for start, end, status in spans:
            if start < slot + step and slot < end:
                digit = max(digit, _STATUS_DIGIT.get(status, "0"))
        out.append(digit)
        slot += step
    return "".join(out)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # The default backlog of 5 drops SYNs when 10 client threads connect at once, and the
    # kernel's 1 s SYN retransmit then dominates the test's run time.
    request_queue_size = 128


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as Graph and requests' pool expect
    # Headers and body go out in separate writes; without TCP_NODELAY, Nagle + delayed ACK
    # add ~40 ms to every response.
    disable_nagle_algorithm = True
    server: ThreadingHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    @property
    def emulator(self) -> GraphEmulator:
        return self.server.emulator  # type: ignore[attr-defined,no-any-return]

    def do_GET(self) -> None:
        self.emulator.handle(self, "GET")

    def do_POST(self) -> None:
        self.emulator.handle(self, "POST")

    def do_PATCH(self) -> None:
        self.emulator.handle(self, "PATCH")

    def reply(self, status: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        if data:
            self.send_header("Content-Type", "application/json; odata.metadata=minimal")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def drop(self) -> None:
        """Close the TCP connection without any response bytes."""
        self.close_connection = True
        try:
            self.connection.shutdown(2)
        except OSError:
            pass
