"""A Google Calendar v3 wire-protocol emulator: a real HTTP server on 127.0.0.1.

The real google-api-python-client and google-auth talk to it over loopback (point
``api_endpoint`` at :attr:`GoogleEmulator.api_endpoint` and ``token_uri`` at
:attr:`GoogleEmulator.token_uri`). It implements what goodwill uses, with Google's semantics:

- ``POST /token``: ``refresh_token`` grant (registered tokens; unknown or revoked ->
  ``invalid_grant``) and the service-account ``jwt-bearer`` grant (the assertion's ``sub`` is
  the user; ``aud`` is not checked because google-auth always sends Google's own token URL),
  and the ``authorization_code`` grant of the installed-app flow (PKCE S256 checked).
- ``GET /o/oauth2/auth``: the consent screen; signs in ``login_hint`` (or
  :attr:`GoogleEmulator.consenting_user`) and redirects to the loopback ``redirect_uri``.
- "Sign in with Google" (OpenID Connect, :attr:`GoogleEmulator.discovery_url`): discovery,
  ``GET /oidc/auth`` (auto-consents as :meth:`GoogleEmulator.sign_in_as`), ``POST /oidc/token``
  (``authorization_code``: client id/secret, redirect_uri and the PKCE verifier checked; an RS256
  id_token with the nonce) and ``GET /oidc/certs`` (JWKS). :attr:`GoogleEmulator.id_tokens`
  spoils the next id_token (bad signature, expired, wrong audience …).
- ``POST freeBusy``: computed from stored events - opaque, not cancelled, not declined by that
  calendar's owner; unknown calendars -> per-calendar ``notFound``; :meth:`forbid` -> a
  configurable per-calendar reason.
- ``events.insert`` (409 ``duplicate`` on a reused id, cancelled events included),
  ``get``, ``list`` (``timeMin``/``timeMax``/``singleEvents``/``pageToken`` with a small page
  size), ``delete`` (sets ``status: cancelled``; 410 ``deleted`` the second time), ``patch``
  and ``update`` (patch semantics as documented: objects merge, arrays are replaced; a cancelled
  event can be patched, as Google keeps deleted events; an empty time range -> 400; a move shows
  at once in the attendee's view and in freeBusy, which are computed from the same event).
- Partial responses: the ``fields`` system parameter on any API call returns only the fields
  it names (:mod:`tests.emulators.google_fields`; a malformed one -> 400 ``invalidParameter``).
- An event lives on its organizer's calendar; attendees see it on theirs (same id), which is how
  an invite blocks an attendee's free/busy until they decline.

Every request body is checked against the calendar v3 discovery schema
(:mod:`tests.emulators.google_schema`); a bad body gets a 400 *and* lands in
:attr:`GoogleEmulator.schema_violations`, which tests assert is empty.

Faults are injected on demand with :attr:`GoogleEmulator.faults` (429 + Retry-After, 5xx, slow
responses, dropped connections before or after the change is applied, 401, ``invalid_grant``),
queued one by one or drawn at random for a fraction of the calls (:meth:`Faults.random`).
:attr:`GoogleEmulator.calls` logs ``(method, path)`` of every request so tests can count calls.

Recurring events are not expanded: the emulator stores single events only.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import random
import socket
import threading
import time
import urllib.parse
import uuid
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from zoneinfo import ZoneInfo

from tests.emulators.google_fields import FieldsError, parse_fields, select_fields
from tests.emulators.google_schema import CalendarSchema
from tests.emulators.oidc_tokens import IdTokenSigner, pkce_ok

__all__ = ["Fault", "Faults", "GoogleEmulator", "InjectedFault", "RecordedRequest", "make_fault"]

FaultKind = Literal["status", "slow", "drop", "drop_after", "unauthorized", "invalid_grant"]

_JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
_API = "/calendar/v3"


@dataclass
class Fault:
    """One injected failure. ``path`` is a substring of the URL path; None matches any API call.

    Kinds:
        status: answer ``status`` with a Google error body (``reason``), plus ``Retry-After``.
        slow: sleep ``delay_s`` seconds, then answer normally.
        drop: read the request, then close the socket without a reply (nothing applied).
        drop_after: apply the request, then close the socket without a reply.
        unauthorized: answer 401 ``authError`` (the client refreshes its token and replays).
        invalid_grant: token endpoint answers 400 ``invalid_grant`` (path defaults to ``/token``).
    """

    kind: FaultKind
    status: int = 500
    reason: str = "backendError"
    retry_after: str | None = None
    delay_s: float = 0.0
    path: str | None = None
    method: str | None = None

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method.upper() != method:
            return False
        if self.path is None:
            return path.startswith(_API)
        return self.path in path


def make_fault(
    kind: FaultKind,
    *,
    status: int | None = None,
    reason: str | None = None,
    retry_after: str | float | None = None,
    delay_s: float = 0.0,
    path: str | None = None,
    method: str | None = None,
) -> Fault:
    """A :class:`Fault` with Google's default status and reason for ``kind``.

    Example: ``make_fault("status", status=429, retry_after=1)``.
    """
    default_status = {"status": 500, "unauthorized": 401, "invalid_grant": 400}.get(kind, 500)
    code = status if status is not None else default_status
    default_reason = {
        429: "rateLimitExceeded",
        403: "rateLimitExceeded",
        401: "authError",
        404: "notFound",
        400: "badRequest",
    }.get(code, "backendError")
    if kind == "invalid_grant" and path is None:
        path = "/token"
    return Fault(
        kind=kind,
        status=code,
        reason=reason or default_reason,
        retry_after=None if retry_after is None else str(retry_after),
        delay_s=delay_s,
        path=path,
        method=method,
    )


@dataclass(frozen=True)
class InjectedFault:
    """A fault that was served: which request got it, and what it was."""

    method: str
    path: str
    kind: FaultKind
    status: int
    delay_s: float
    random: bool


class Faults:
    """A queue of faults consumed by matching requests, in order, plus an optional random mode.

    Queued faults win; when none matches and :meth:`random` is on, each matching request fails
    with probability ``rate`` (one of ``kinds``, uniformly). Every served fault is logged in
    :attr:`injected`.
    """

    def __init__(self) -> None:
        self._queue: deque[Fault] = deque()
        self._lock = threading.Lock()
        self._random: tuple[float, tuple[Fault, ...], random.Random, Fault] | None = None
        self.injected: list[InjectedFault] = []

    def queue(
        self,
        kind: FaultKind,
        *,
        times: int = 1,
        status: int | None = None,
        reason: str | None = None,
        retry_after: str | float | None = None,
        delay_s: float = 0.0,
        path: str | None = None,
        method: str | None = None,
    ) -> None:
        """Make the next ``times`` matching requests fail with ``kind``.

        Example: ``faults.queue("status", status=429, retry_after=7)``.
        """
        fault = make_fault(
            kind,
            status=status,
            reason=reason,
            retry_after=retry_after,
            delay_s=delay_s,
            path=path,
            method=method,
        )
        with self._lock:
            self._queue.extend(copy.copy(fault) for _ in range(times))

    def random(
        self,
        rate: float,
        kinds: Sequence[Fault],
        *,
        seed: int = 0,
        path: str | None = None,
        method: str | None = None,
    ) -> None:
        """Fail a fraction ``rate`` (0..1) of the matching requests with one of ``kinds``.

        ``path``/``method`` filter like a queued fault (None: every API call, never the token
        endpoint). Draws come from ``random.Random(seed)``; which request gets which draw still
        depends on thread timing. Example::

            faults.random(0.2, [make_fault("status", status=503),
                                make_fault("slow", delay_s=2.0)], seed=7)
        """
        if not 0.0 <= rate <= 1.0:
            raise ValueError("rate must be between 0 and 1")
        if not kinds:
            raise ValueError("kinds must name at least one fault")
        scope = Fault("status", path=path, method=method)
        with self._lock:
            self._random = (rate, tuple(kinds), random.Random(seed), scope)

    def stop_random(self) -> None:
        """Turn the random mode off (queued faults are kept)."""
        with self._lock:
            self._random = None

    def take(self, method: str, path: str) -> Fault | None:
        with self._lock:
            chosen: Fault | None = None
            drawn = False
            for fault in self._queue:
                if fault.matches(method, path):
                    self._queue.remove(fault)
                    chosen = fault
                    break
            if chosen is None and self._random is not None:
                rate, kinds, rng, scope = self._random
                if scope.matches(method, path) and rng.random() < rate:
                    chosen, drawn = rng.choice(kinds), True
            if chosen is not None:
                self.injected.append(
                    InjectedFault(
                        method, path, chosen.kind, chosen.status, chosen.delay_s, random=drawn
                    )
                )
            return chosen

    def pending(self) -> int:
        with self._lock:
            return len(self._queue)

    def clear(self) -> None:
        """Drop the queued faults and turn the random mode off."""
        with self._lock:
            self._queue.clear()
            self._random = None


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    user: str | None = None


@dataclass
class _Calendar:
    email: str
    timezone: str
    events: dict[str, dict[str, Any]] = field(default_factory=dict)


class _Reply(Exception):
    """Raised inside a route to answer with ``status`` and ``body``."""

    def __init__(
        self, status: int, body: Any = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}


def _error(status: int, reason: str, message: str, *, domain: str = "global") -> _Reply:
    return _Reply(
        status,
        {
            "error": {
                "code": status,
                "message": message,
                "errors": [{"domain": domain, "reason": reason, "message": message}],
            }
        },
    )


class GoogleEmulator:
    """Google Calendar v3 + OAuth token endpoint on ``127.0.0.1``; use as a context manager.

    Args:
        page_size: the most events one ``events.list`` page returns (small, so pagination runs).
    """

    def __init__(self, *, page_size: int = 5) -> None:
        self.page_size = page_size
        self.calls: list[tuple[str, str]] = []
        self.requests: list[RecordedRequest] = []
        self.token_requests: list[dict[str, Any]] = []
        self.schema_violations: list[str] = []
        #: ``(kind, event id, guest e-mail)`` for each mail Google sends a guest because a
        #: request said ``sendUpdates=all``: kind ``invite`` (events.insert) or ``cancel``
        #: (events.delete). Updates are counted from the PATCH requests themselves.
        self.notified: list[tuple[str, str, str]] = []
        self.faults = Faults()
        self.schema = CalendarSchema()
        self._calendars: dict[str, _Calendar] = {}
        self._refresh_tokens: dict[str, str] = {}
        self._auth_codes: dict[str, tuple[str, str, str]] = {}  # code -> user, challenge, scope
        #: Who signs in at the consent screen; None: whoever ``login_hint`` names.
        self.consenting_user: str | None = None
        self._access_tokens: dict[str, str] = {}
        self._forbidden: dict[str, str] = {}
        # OpenID Connect sign-in (the owner's page).
        self.oidc_client_id = "goodwill-web.apps.googleusercontent.com"
        self.oidc_client_secret = "web-client-secret"
        self.id_tokens = IdTokenSigner()
        self.oidc_token_requests: list[dict[str, str]] = []
        self._oidc_user: tuple[str, bool] | None = None
        self._oidc_codes: dict[str, dict[str, str]] = {}
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> GoogleEmulator:
        handler = _make_handler(self)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.02},  # stop() waits at most one poll
            name="google-emulator",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> GoogleEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("emulator not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def api_endpoint(self) -> str:
        return f"{self.base_url}{_API}/"

    @property
    def token_uri(self) -> str:
        return f"{self.base_url}/token"

    # -- setup -------------------------------------------------------------------------------

    def add_calendar(self, email: str, timezone: str = "UTC") -> None:
        with self._lock:
            self._calendars.setdefault(email.lower(), _Calendar(email.lower(), timezone))

    def add_refresh_token(self, refresh_token: str, email: str) -> None:
        """Register a per-user OAuth refresh token for ``email`` (adds the calendar if new)."""
        self.add_calendar(email)
        with self._lock:
            self._refresh_tokens[refresh_token] = email.lower()

    def revoke(self, refresh_token: str) -> None:
        """The user revoked access: the token endpoint now answers ``invalid_grant``."""
        with self._lock:
            self._refresh_tokens.pop(refresh_token, None)

    def expire_tokens(self) -> None:
        """Every issued access token stops working (the client must refresh)."""
        with self._lock:
            self._access_tokens.clear()

    def forbid(self, email: str, reason: str = "forbidden") -> None:
        """Make a calendar unreadable: freeBusy reports ``reason``, events calls answer 403."""
        with self._lock:
            self._forbidden[email.lower()] = reason

    def seed(self, calendar_email: str, event: dict[str, Any]) -> str:
        """Put ``event`` on ``calendar_email`` as if its owner created it; returns the id.

        The body is schema-checked like an insert (violations are recorded). ``organizer`` may be
        given to seed an invitation from someone else.
        """
        problems = self.schema.check_event_insert(event)
        if problems:
            self.schema_violations.extend(f"seed: {p}" for p in problems)
            raise ValueError(f"seeded event is not schema-valid: {problems}")
        with self._lock:
            calendar = self._calendar(calendar_email)
            stored = self._store(calendar, event, conference=True)
            return str(stored["id"])

    def respond(
        self, calendar_owner_email: str, event_id: str, attendee_email: str, status: str
    ) -> None:
        """``attendee_email`` answers the event on ``calendar_owner_email``'s calendar."""
        with self._lock:
            event = self._calendar(calendar_owner_email).events[event_id]
            for attendee in event.get("attendees", []):
                if attendee.get("email", "").lower() == attendee_email.lower():
                    attendee["responseStatus"] = status
                    event["updated"] = _now()
                    return
        raise KeyError(f"{attendee_email} is not invited to {event_id}")

    # -- inspection --------------------------------------------------------------------------

    def events(
        self, calendar_email: str, *, include_cancelled: bool = False
    ) -> list[dict[str, Any]]:
        """Events organised on ``calendar_email`` (copies)."""
        with self._lock:
            calendar = self._calendar(calendar_email)
            return [
                copy.deepcopy(e)
                for e in calendar.events.values()
                if include_cancelled or e.get("status") != "cancelled"
            ]

    def count(self, method: str, path_suffix: str) -> int:
        """How many requests with ``method`` had a path ending in ``path_suffix``."""
        return sum(1 for m, p in self.calls if m == method and p.endswith(path_suffix))

    def requests_to(self, method: str, path_suffix: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == method and r.path.endswith(path_suffix)]

    # -- request handling (called by the handler thread) -------------------------------------

    def _handle(
        self, method: str, raw_path: str, headers: dict[str, str], raw_body: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        url = urllib.parse.urlsplit(raw_path)
        path = url.path
        query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        try:
            if path == "/token" and method == "POST":
                return 200, self._token(raw_body), {}
            if path == "/o/oauth2/auth" and method == "GET":
                return self._authorize(query)
            if path.startswith(("/.well-known/", "/oidc/")):
                return self._oidc(method, path, query, headers, raw_body)
            user = self._authenticate(headers.get("authorization", ""))
            body = json.loads(raw_body) if raw_body else None
            self.requests.append(RecordedRequest(method, path, query, body, user))
            reply = self._route(method, path, query, body, user)
            if "fields" in query:  # a partial response: only the fields asked for
                try:
                    reply = select_fields(reply, parse_fields(query["fields"][-1]))
                except FieldsError as exc:
                    raise _error(400, "invalidParameter", str(exc)) from exc
            return 200, reply, {}
        except _Reply as reply:
            return reply.status, reply.body, reply.headers

    def _route(
        self, method: str, path: str, query: dict[str, list[str]], body: Any, user: str
    ) -> Any:
        if not path.startswith(_API + "/"):
            raise _error(404, "notFound", "Not Found")
        parts = [urllib.parse.unquote(p) for p in path[len(_API) + 1 :].split("/")]
        if parts == ["freeBusy"] and method == "POST":
            return self._freebusy(body)
        if len(parts) >= 3 and parts[0] == "calendars" and parts[2] == "events":
            calendar = self._own_calendar(parts[1], user)
            if len(parts) == 3 and method == "GET":
                return self._list(calendar, query)
            if len(parts) == 3 and method == "POST":
                return self._insert(calendar, query, body)
            if len(parts) == 4 and method == "GET":
                return self._render(self._visible(calendar, parts[3]), calendar)
            if len(parts) == 4 and method == "DELETE":
                return self._delete(calendar, parts[3], query)
            if len(parts) == 4 and method in ("PATCH", "PUT"):
                return self._modify(calendar, parts[3], body, replace=method == "PUT")
        raise _error(404, "notFound", "Not Found")

    # -- OpenID Connect sign-in ----------------------------------------------------------------

    @property
    def discovery_url(self) -> str:
        return f"{self.base_url}/.well-known/openid-configuration"

    def sign_in_as(self, email: str | None, *, email_verified: bool = True) -> None:
        """Who consents at ``/oidc/auth`` from now on (None: the user cancels)."""
        with self._lock:
            self._oidc_user = None if email is None else (email.lower(), email_verified)

    def _oidc(
        self,
        method: str,
        path: str,
        query: Mapping[str, list[str]],
        headers: Mapping[str, str],
        raw_body: bytes,
    ) -> tuple[int, Any, dict[str, str]]:
        base = self.base_url
        if path == "/.well-known/openid-configuration" and method == "GET":
            return 200, {
                "issuer": base,
                "authorization_endpoint": f"{base}/oidc/auth",
                "token_endpoint": f"{base}/oidc/token",
                "jwks_uri": f"{base}/oidc/certs",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "scopes_supported": ["openid", "email", "profile"],
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post", "client_secret_basic",
                ],
                "code_challenge_methods_supported": ["plain", "S256"],
                "claims_supported": ["aud", "email", "email_verified", "exp", "iat", "iss",
                                     "sub", "nonce"],
            }, {}  # fmt: skip
        if path == "/oidc/certs" and method == "GET":
            return 200, self.id_tokens.jwks(), {}
        if path == "/oidc/auth" and method == "GET":
            return self._oidc_authorize({k: v[0] for k, v in query.items()})
        if path == "/oidc/token" and method == "POST":
            return self._oidc_token(raw_body, headers)
        raise _error(404, "notFound", "Not Found")

    def _oidc_authorize(self, q: Mapping[str, str]) -> tuple[int, Any, dict[str, str]]:
        redirect = q.get("redirect_uri", "")
        if q.get("client_id") != self.oidc_client_id:
            raise _Reply(400, {"error": "invalid_client"})
        if not redirect.startswith(("http://127.0.0.1:", "http://localhost:")):
            raise _Reply(400, {"error": "redirect_uri_mismatch"})
        if q.get("response_type") != "code" or "openid" not in q.get("scope", "").split():
            raise _Reply(400, {"error": "invalid_request"})
        if q.get("code_challenge_method") != "S256" or not q.get("code_challenge"):
            raise _Reply(400, {"error": "invalid_request", "error_description": "PKCE S256"})
        with self._lock:
            user = self._oidc_user
            if user is None:
                params = {"error": "access_denied", "state": q.get("state", "")}
            else:
                code = "4/oidc-" + uuid.uuid4().hex
                self._oidc_codes[code] = {
                    "email": user[0], "verified": "true" if user[1] else "false",
                    "challenge": q["code_challenge"], "redirect_uri": redirect,
                    "nonce": q.get("nonce", ""),
                }  # fmt: skip
                params = {"code": code, "state": q.get("state", "")}
        return 302, None, {"Location": f"{redirect}?{urllib.parse.urlencode(params)}"}

    def _oidc_token(
        self, raw_body: bytes, headers: Mapping[str, str]
    ) -> tuple[int, Any, dict[str, str]]:
        form = {k: v[0] for k, v in urllib.parse.parse_qs(raw_body.decode()).items()}
        client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        basic = headers.get("authorization", "")
        if basic.startswith("Basic "):
            pair = base64.b64decode(basic[6:]).decode()
            client_id, _, secret = (urllib.parse.unquote(x) for x in pair.partition(":"))
        with self._lock:
            self.oidc_token_requests.append(
                {k: v for k, v in form.items() if k not in ("client_secret", "code_verifier")}
            )
            if client_id != self.oidc_client_id or secret != self.oidc_client_secret:
                return 401, {"error": "invalid_client"}, {}
            if form.get("grant_type") != "authorization_code":
                return 400, {"error": "unsupported_grant_type"}, {}
            grant = self._oidc_codes.pop(form.get("code", ""), None)
        if (
            grant is None
            or form.get("redirect_uri") != grant["redirect_uri"]
            or not pkce_ok(form.get("code_verifier", ""), grant["challenge"])
        ):
            return 400, {"error": "invalid_grant", "error_description": "Bad Request"}, {}
        claims: dict[str, Any] = {
            "iss": self.base_url,
            "aud": self.oidc_client_id,
            "azp": self.oidc_client_id,
            "sub": str(int(hashlib.sha256(grant["email"].encode()).hexdigest()[:15], 16)),
            "email": grant["email"],
            "email_verified": grant["verified"] == "true",
        }
        if grant["nonce"]:
            claims["nonce"] = grant["nonce"]
        return 200, {
            "access_token": "ya29.oidc-" + uuid.uuid4().hex,
            "expires_in": 3599,
            "token_type": "Bearer",
            "scope": "openid email profile",
            "id_token": self.id_tokens.sign(claims),
        }, {}  # fmt: skip

    @property
    def auth_uri(self) -> str:
        """The OAuth consent endpoint (installed-app flow); signs in ``login_hint`` at once."""
        return f"{self.base_url}/o/oauth2/auth"

    def _authorize(self, query: Mapping[str, list[str]]) -> tuple[int, Any, dict[str, str]]:
        """The user consents: 302 back to the loopback redirect with a one-time code (PKCE)."""
        q = {k: v[0] for k, v in query.items()}
        if q.get("code_challenge_method") != "S256" or not q.get("code_challenge"):
            raise _Reply(
                400, {"error": "invalid_request", "error_description": "PKCE S256 required"}
            )
        redirect = q.get("redirect_uri", "")
        if not redirect.startswith(("http://127.0.0.1:", "http://localhost:")):
            raise _Reply(400, {"error": "redirect_uri_mismatch"})
        hint = q.get("login_hint") or ""
        email = (hint if self.consenting_user is None else self.consenting_user).lower()
        code = "4/" + uuid.uuid4().hex
        with self._lock:
            self._auth_codes[code] = (email, q["code_challenge"], q.get("scope", ""))
            if email:
                self._calendars.setdefault(email, _Calendar(email, "UTC"))
        params = urllib.parse.urlencode({"code": code, "state": q.get("state", "")})
        return 302, None, {"Location": f"{redirect}?{params}"}

    def _token(self, raw_body: bytes) -> dict[str, Any]:
        form = {k: v[0] for k, v in urllib.parse.parse_qs(raw_body.decode()).items()}
        grant = form.get("grant_type", "")
        record: dict[str, Any] = {"grant_type": grant, "scope": form.get("scope")}
        with self._lock:
            if grant == "refresh_token":
                user = self._refresh_tokens.get(form.get("refresh_token", ""))
                record.update(refresh_token=form.get("refresh_token"))
            elif grant == "authorization_code":
                email, challenge, scope = self._auth_codes.pop(form.get("code", ""), ("", "", ""))
                verifier = form.get("code_verifier", "")
                digest = hashlib.sha256(verifier.encode()).digest()
                expected = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
                user = email if email and expected == challenge else None
                record.update(code_ok=user is not None, redirect_uri=form.get("redirect_uri"))
                if user is not None:
                    refresh = "1//" + uuid.uuid4().hex
                    self._refresh_tokens[refresh] = user
                    token = "ya29." + uuid.uuid4().hex
                    self._access_tokens[token] = user
                    self.token_requests.append(record)
                    return {
                        "access_token": token,
                        "refresh_token": refresh,
                        "expires_in": 3599,
                        "token_type": "Bearer",
                        "scope": scope,  # granted = requested (no granular consent here)
                    }
            elif grant == _JWT_GRANT:
                claims = _jwt_claims(form.get("assertion", ""))
                record.update(claims=claims)
                record["scope"] = claims.get("scope")
                subject = str(claims.get("sub") or claims.get("iss") or "")
                record["sub"] = subject
                user = subject.lower() if subject.lower() in self._calendars else None
            else:
                self.token_requests.append(record)
                raise _Reply(400, {"error": "unsupported_grant_type"})
            self.token_requests.append(record)
            if user is None:
                raise _Reply(
                    400,
                    {
                        "error": "invalid_grant",
                        "error_description": "Token has been expired or revoked.",
                    },
                )
            token = "ya29." + uuid.uuid4().hex
            self._access_tokens[token] = user
        return {"access_token": token, "expires_in": 3599, "token_type": "Bearer"}

    def _authenticate(self, authorization: str) -> str:
        token = authorization.removeprefix("Bearer ").strip()
        with self._lock:
            user = self._access_tokens.get(token)
        if user is None:
            raise _error(401, "authError", "Request had invalid authentication credentials.")
        return user

    def _calendar(self, email: str) -> _Calendar:
        try:
            return self._calendars[email.lower()]
        except KeyError:
            raise _error(404, "notFound", "Not Found") from None

    def _own_calendar(self, calendar_id: str, user: str) -> _Calendar:
        email = user if calendar_id == "primary" else calendar_id.lower()
        if email != user:
            # goodwill only ever touches the authenticated user's own calendar.
            raise _error(404, "notFound", "Not Found")
        with self._lock:
            calendar = self._calendar(email)
            reason = self._forbidden.get(email)
        if reason is not None:
            raise _error(403, reason, "The caller does not have permission")
        return calendar

    # -- freeBusy ----------------------------------------------------------------------------

    def _freebusy(self, body: Any) -> dict[str, Any]:
        self._validate("freeBusy", self.schema.check_freebusy(body))
        start, end = _parse_dt(body["timeMin"]), _parse_dt(body["timeMax"])
        if end <= start:
            raise _error(400, "timeRangeEmpty", "The specified time range is empty.")
        if end - start > timedelta(days=90):
            raise _error(400, "timeRangeTooLong", "The requested time range is too long.")
        if len(body["items"]) > 50:
            raise _error(400, "tooManyCalendarsRequested", "Too many calendars requested.")
        calendars: dict[str, Any] = {}
        with self._lock:
            for item in body["items"]:
                cal_id = item["id"]
                key = cal_id.lower()
                if key in self._forbidden:
                    calendars[cal_id] = {
                        "errors": [{"domain": "global", "reason": self._forbidden[key]}],
                        "busy": [],
                    }
                elif key not in self._calendars:
                    calendars[cal_id] = {
                        "errors": [{"domain": "global", "reason": "notFound"}],
                        "busy": [],
                    }
                else:
                    calendars[cal_id] = {"busy": self._busy(self._calendars[key], start, end)}
        return {
            "kind": "calendar#freeBusy",
            "timeMin": body["timeMin"],
            "timeMax": body["timeMax"],
            "calendars": calendars,
        }

    def _busy(self, calendar: _Calendar, start: datetime, end: datetime) -> list[dict[str, str]]:
        spans: list[tuple[datetime, datetime]] = []
        for event in self._view(calendar):
            if event.get("status") == "cancelled" or event.get("transparency") == "transparent":
                continue
            if _response_of(event, calendar.email) == "declined":
                continue
            ev_start, ev_end = _bounds(event, calendar.timezone)
            lo, hi = max(ev_start, start), min(ev_end, end)
            if lo < hi:
                spans.append((lo, hi))
        merged: list[list[datetime]] = []
        for lo, hi in sorted(spans):
            if merged and lo <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], hi)
            else:
                merged.append([lo, hi])
        return [{"start": _rfc3339(lo), "end": _rfc3339(hi)} for lo, hi in merged]

    # -- events ------------------------------------------------------------------------------

    def _view(self, calendar: _Calendar) -> Iterator[dict[str, Any]]:
        """The events on ``calendar``: its own, then invitations organised on other calendars."""
        yield from calendar.events.values()
        for other in self._calendars.values():
            if other is calendar:
                continue
            for event in other.events.values():
                if event["id"] not in calendar.events and _is_attendee(event, calendar.email):
                    yield event

    def _visible(self, calendar: _Calendar, event_id: str) -> dict[str, Any]:
        with self._lock:
            for event in self._view(calendar):
                if event["id"] == event_id:
                    return event
        raise _error(404, "notFound", "Not Found")

    def _render(self, event: dict[str, Any], viewer: _Calendar) -> dict[str, Any]:
        """The event as ``viewer`` sees it: ``self`` flags set, others' private fields hidden."""
        with self._lock:
            out = copy.deepcopy(event)
        organizer = out.get("organizer", {})
        if organizer.get("email", "").lower() == viewer.email:
            organizer["self"] = True
        elif "extendedProperties" in out:
            out["extendedProperties"].pop("private", None)
        for attendee in out.get("attendees", []):
            if attendee.get("email", "").lower() == viewer.email:
                attendee["self"] = True
        return out

    def _list(self, calendar: _Calendar, query: dict[str, list[str]]) -> dict[str, Any]:
        q = {k: v[-1] for k, v in query.items()}
        time_min = _parse_dt(q["timeMin"]) if "timeMin" in q else None
        time_max = _parse_dt(q["timeMax"]) if "timeMax" in q else None
        show_deleted = q.get("showDeleted") == "true"
        if q.get("orderBy") == "startTime" and q.get("singleEvents") != "true":
            raise _error(400, "badRequest", "The requested ordering is not available.")
        try:
            offset = int(q.get("pageToken", "0"))
            max_results = int(q.get("maxResults", "250"))
        except ValueError:
            raise _error(400, "invalid", "Invalid value") from None
        with self._lock:
            matching: list[tuple[datetime, dict[str, Any]]] = []
            for event in self._view(calendar):
                if event.get("status") == "cancelled" and not show_deleted:
                    continue
                ev_start, ev_end = _bounds(event, calendar.timezone)
                if time_min is not None and ev_end <= time_min:
                    continue
                if time_max is not None and ev_start >= time_max:
                    continue
                matching.append((ev_start, event))
        matching.sort(key=lambda pair: (pair[0], pair[1]["id"]))
        size = max(1, min(max_results, self.page_size))
        page = matching[offset : offset + size]
        out: dict[str, Any] = {
            "kind": "calendar#events",
            "summary": calendar.email,
            "timeZone": calendar.timezone,
            "items": [self._render(e, calendar) for _, e in page],
        }
        if offset + size < len(matching):
            out["nextPageToken"] = str(offset + size)
        return out

    def _insert(
        self, calendar: _Calendar, query: dict[str, list[str]], body: Any
    ) -> dict[str, Any]:
        self._validate("events.insert", self.schema.check_event_insert(body))
        for attendee in body.get("attendees", []):
            if "email" not in attendee:
                raise _error(400, "required", "Missing attendee email.")
        conference = query.get("conferenceDataVersion", ["0"])[-1] == "1"
        with self._lock:
            event_id = body.get("id")
            if event_id is not None and any(e["id"] == event_id for e in self._view(calendar)):
                raise _error(409, "duplicate", "The requested identifier already exists.")
            stored = self._store(calendar, body, conference=conference)
            self._notify("invite", stored, query)
        return self._render(stored, calendar)

    def _store(
        self, calendar: _Calendar, body: dict[str, Any], *, conference: bool
    ) -> dict[str, Any]:
        event = copy.deepcopy(body)
        event_id = event.setdefault("id", uuid.uuid4().hex)
        stamp = _now()
        event.update(
            kind="calendar#event",
            etag=f'"{uuid.uuid4().int % 10**16}"',
            htmlLink=f"https://calendar.google.com/calendar/event?eid={event_id}",
            created=stamp,
            updated=stamp,
            iCalUID=f"{event_id}@google.com",
            creator={"email": calendar.email},
            sequence=0,
        )
        event.setdefault("status", "confirmed")
        event.setdefault("eventType", "default")
        event.setdefault("organizer", {"email": calendar.email})
        event.setdefault("reminders", {"useDefault": True})
        for attendee in event.get("attendees", []):
            attendee.setdefault("responseStatus", "needsAction")
            if attendee.get("email", "").lower() == event["organizer"].get("email", "").lower():
                attendee["organizer"] = True
        if "conferenceData" in event:
            if conference:
                _start_conference(event)
            else:
                # "Version 0 assumes no conference data support and ignores conference data."
                del event["conferenceData"]
        calendar.events[event_id] = event
        return event

    def _delete(self, calendar: _Calendar, event_id: str, query: dict[str, list[str]]) -> None:
        with self._lock:
            event = calendar.events.get(event_id)
            if event is None:
                raise _error(404, "notFound", "Not Found")
            if event.get("status") == "cancelled":
                raise _error(410, "deleted", "Resource has been deleted")
            event["status"] = "cancelled"
            event["updated"] = _now()
            event["sequence"] = int(event.get("sequence", 0)) + 1
            self._notify("cancel", event, query)
        raise _Reply(204)

    def _notify(self, kind: str, event: dict[str, Any], query: dict[str, list[str]]) -> None:
        """Record the mail each guest (not the organizer) gets when ``sendUpdates=all``."""
        if query.get("sendUpdates", [""])[-1] != "all":
            return
        organizer = str(event.get("organizer", {}).get("email", "")).lower()
        for attendee in event.get("attendees", []):
            email = str(attendee.get("email", "")).lower()
            if email and email != organizer:
                self.notified.append((kind, str(event["id"]), email))

    def _modify(
        self, calendar: _Calendar, event_id: str, body: Any, *, replace: bool
    ) -> dict[str, Any]:
        problems = (
            self.schema.check_event_update(body) if replace else self.schema.check_event_patch(body)
        )
        self._validate("events.update" if replace else "events.patch", problems)
        if body.get("id", event_id) != event_id:
            raise _error(400, "invalid", "The event id cannot be changed.")
        with self._lock:
            event = calendar.events.get(event_id)
            if event is None:
                raise _error(404, "notFound", "Not Found")
            server_fields: dict[str, Any] = {
                k: event[k]
                for k in (
                    "id",
                    "kind",
                    "etag",
                    "htmlLink",
                    "created",
                    "iCalUID",
                    "creator",
                    "organizer",
                )
                if k in event
            }
            before = copy.deepcopy(event)
            if replace:
                event.clear()
                event.update(copy.deepcopy(body))
                event.setdefault("status", "confirmed")
            else:
                _merge(event, copy.deepcopy(body))
            try:
                new_start, new_end = _bounds(event, calendar.timezone)
            except (KeyError, TypeError, ValueError):
                event.clear()
                event.update(before)
                raise _error(400, "invalid", "Invalid start or end.") from None
            if not new_start < new_end:
                event.clear()
                event.update(before)
                raise _error(400, "timeRangeEmpty", "The specified time range is empty.")
            event.update(server_fields)
            event["updated"] = _now()
            event["sequence"] = int(event.get("sequence", 0)) + 1
            for attendee in event.get("attendees", []):
                attendee.setdefault("responseStatus", "needsAction")
        return self._render(event, calendar)

    def _validate(self, what: str, problems: list[str]) -> None:
        if problems:
            self.schema_violations.extend(f"{what}: {p}" for p in problems)
            raise _error(400, "invalid", "; ".join(problems))


# -- HTTP plumbing ---------------------------------------------------------------------------


def _make_handler(emulator: GoogleEmulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            # Headers and body go out in two writes; without TCP_NODELAY, Nagle plus the
            # client's delayed ACK adds ~40 ms to every reply.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output clean

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            if len(raw) < length:
                # The client went away mid-body (killed): a real server never sees this request.
                self.close_connection = True
                return
            path = urllib.parse.urlsplit(self.path).path
            with emulator._lock:
                emulator.calls.append((self.command, path))
            fault = emulator.faults.take(self.command, path)
            headers = {k.lower(): v for k, v in self.headers.items()}
            if fault is not None:
                if fault.kind == "slow":
                    time.sleep(fault.delay_s)
                elif fault.kind == "drop":
                    self._drop()
                    return
                elif fault.kind == "drop_after":
                    emulator._handle(self.command, self.path, headers, raw)
                    self._drop()
                    return
                elif fault.kind == "unauthorized":
                    self._reply(*_as_reply(_error(401, "authError", "Invalid Credentials")))
                    return
                elif fault.kind == "invalid_grant":
                    self._reply(
                        400,
                        {
                            "error": "invalid_grant",
                            "error_description": "Token has been expired or revoked.",
                        },
                        {},
                    )
                    return
                else:
                    reply = _error(fault.status, fault.reason, f"injected {fault.status}")
                    if fault.retry_after is not None:
                        reply.headers["Retry-After"] = fault.retry_after
                    self._reply(*_as_reply(reply))
                    return
            self._reply(*emulator._handle(self.command, self.path, headers, raw))

        def _drop(self) -> None:
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

        def _reply(self, status: int, body: Any, headers: dict[str, str]) -> None:
            data = b"" if body is None or status == 204 else json.dumps(body).encode()
            try:
                self.send_response(status)
                if data:
                    self.send_header("Content-Type", "application/json; charset=UTF-8")
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except OSError:
                # The client gave up (timeout test): nothing to answer.
                self.close_connection = True

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    return Handler


def _as_reply(reply: _Reply) -> tuple[int, Any, dict[str, str]]:
    return reply.status, reply.body, reply.headers


# -- small helpers ---------------------------------------------------------------------------


def _now() -> str:
    return _rfc3339(datetime.now(UTC).replace(microsecond=0))


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _parse_dt(text: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise _error(400, "invalid", f"Bad date-time {text!r}") from None
    if parsed.tzinfo is None:
        raise _error(400, "invalid", f"A time zone offset is required: {text!r}")
    return parsed.astimezone(UTC)


def _bounds(event: dict[str, Any], timezone: str) -> tuple[datetime, datetime]:
    """An event's [start, end) in UTC; all-day dates are midnights in the calendar's zone."""
    out: list[datetime] = []
    for key in ("start", "end"):
        moment = event[key]
        if "dateTime" in moment:
            parsed = datetime.fromisoformat(moment["dateTime"])
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=ZoneInfo(moment.get("timeZone") or timezone))
            out.append(parsed.astimezone(UTC))
        else:
            day = date.fromisoformat(moment["date"])
            local = datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(timezone))
            out.append(local.astimezone(UTC))
    return out[0], out[1]


def _is_attendee(event: dict[str, Any], email: str) -> bool:
    return any(a.get("email", "").lower() == email for a in event.get("attendees", []))


def _response_of(event: dict[str, Any], email: str) -> str | None:
    for attendee in event.get("attendees", []):
        if attendee.get("email", "").lower() == email:
            return str(attendee.get("responseStatus", "needsAction"))
    return None


def _jwt_claims(assertion: str) -> dict[str, Any]:
    try:
        payload = assertion.split(".")[1]
        padded = payload + "=" * (-len(payload) % 4)
        claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(padded))
    except (IndexError, ValueError):
        raise _Reply(
            400, {"error": "invalid_grant", "error_description": "Bad assertion."}
        ) from None
    return claims


def _merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    """Patch semantics: objects merge recursively, everything else (arrays too) is replaced."""
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = value


def _start_conference(event: dict[str, Any]) -> None:
    request = event["conferenceData"].get("createRequest")
    if not request:
        return
    code = uuid.uuid5(uuid.NAMESPACE_URL, str(request.get("requestId"))).hex
    conference_id = f"{code[:3]}-{code[3:7]}-{code[7:10]}"
    request["status"] = {"statusCode": "success"}
    event["conferenceData"].update(
        conferenceId=conference_id,
        conferenceSolution={"key": {"type": "hangoutsMeet"}, "name": "Google Meet"},
        entryPoints=[
            {
                "entryPointType": "video",
                "uri": f"https://meet.google.com/{conference_id}",
                "label": f"meet.google.com/{conference_id}",
            }
        ],
    )
