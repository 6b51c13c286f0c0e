"""HTTP plumbing for Microsoft Graph: auth, the per-mailbox concurrency cap, errors, paging.

Everything that talks to Graph goes through :meth:`GraphHttp.call`, so there is one place where

* the bearer token is attached, and a 401 triggers exactly one token refresh and replay;
* at most ``max_concurrency_per_mailbox`` requests per mailbox are in flight — Outlook's service
  limit is 4 concurrent requests per app per mailbox, beyond which Graph answers 429
  "MailboxConcurrency" (learn.microsoft.com/graph/throttling-limits, "Outlook service limits");
* HTTP statuses and ``requests`` exceptions become :mod:`scheduler.core.errors` classes
  (:func:`raise_for_status`).

Retries live in the worker layer (``RateLimited.retry_after_s``). The only retry here is a single
replay of a 429 whose ``Retry-After`` is at most :data:`SHORT_RETRY_AFTER_S` seconds: waiting
that long in-process is cheaper than a round trip through the queue, and every request we send is
safe to replay (reads, ``transactionId``-deduplicated creates, cancels where 404 counts as done).
``Retry-After`` is read by :func:`connectors.http_common.parse_retry_after`; an HTTP-date counts
from the injected clock.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlsplit

import requests

from connectors.http_common import parse_retry_after
from connectors.microsoft_auth import TokenProvider, pinned_session
from scheduler.core.clock import Clock, SystemClock
from scheduler.core.errors import (
    AuthorizationRevoked,
    CalendarUnavailable,
    InvalidRequest,
    ProviderUnavailable,
    RateLimited,
    ResourceGone,
)
from scheduler.settings import MicrosoftSettings

__all__ = [
    "SHORT_RETRY_AFTER_S",
    "GraphHttp",
    "MailboxGate",
    "raise_for_batch_item",
    "raise_for_status",
    "user_path",
]

PROVIDER = "microsoft"

#: A 429 asking us to wait at most this long (seconds) is waited out and replayed once in-process.
SHORT_RETRY_AFTER_S = 2.0

JSON = dict[str, Any]


def user_path(mailbox: str) -> str:
    """``/users/{mailbox}`` with the address safely quoted for a URL path."""
    return f"/users/{quote(mailbox, safe='@')}"


class MailboxGate:
    """Caps concurrent requests per mailbox (Outlook allows 4 per app per mailbox).

    A counting gate rather than one ``BoundedSemaphore`` per mailbox because a JSON ``$batch``
    takes several slots at once: Graph fans a batch out to Outlook up to 4 items in parallel, so a
    batch holds ``min(items, limit)`` slots. Taking several slots atomically under one condition
    variable cannot deadlock the way acquiring a semaphore several times can.
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("max concurrency per mailbox must be at least 1")
        self.limit = limit
        self._cond = threading.Condition()
        self._in_flight: dict[str, int] = {}

    @contextmanager
    def hold(self, mailbox: str, weight: int = 1) -> Iterator[None]:
        key = mailbox.lower()
        need = max(1, min(weight, self.limit))
        with self._cond:
            while self._in_flight.get(key, 0) + need > self.limit:
                self._cond.wait()
            self._in_flight[key] = self._in_flight.get(key, 0) + need
        try:
            yield
        finally:
            with self._cond:
                left = self._in_flight[key] - need
                if left:
                    self._in_flight[key] = left
                else:
                    del self._in_flight[key]
                self._cond.notify_all()


def _error_text(response: requests.Response) -> str:
    try:
        error = response.json().get("error", {})
        return f"{error.get('code', '')}: {error.get('message', '')}".strip(": ")
    except (ValueError, AttributeError):
        return response.reason or ""


def raise_for_status(response: requests.Response, what: str, *, now: datetime) -> None:
    """Raise the scheduler error for a non-2xx Graph response; return for 2xx.

    429 (and 503/504 carrying ``Retry-After``) -> :class:`RateLimited`; other 5xx ->
    :class:`ProviderUnavailable`; 401 -> :class:`AuthorizationRevoked`; 403 ->
    :class:`CalendarUnavailable`; 404/410 -> :class:`ResourceGone`; other 4xx ->
    :class:`InvalidRequest`.

    Args:
        now: the injected clock's time; an HTTP-date ``Retry-After`` counts from it.
    """
    status = response.status_code
    if status < 400:
        return
    message = f"{what}: HTTP {status} {_error_text(response)}".strip()
    retry_after = parse_retry_after(response.headers.get("Retry-After"), now)
    if status == 429 or (status in (503, 504) and retry_after is not None):
        raise RateLimited(message, retry_after_s=retry_after, provider=PROVIDER, status=status)
    if status >= 500:
        raise ProviderUnavailable(message, provider=PROVIDER, status=status)
    if status == 401:
        raise AuthorizationRevoked(message, provider=PROVIDER, status=status)
    if status == 403:
        raise CalendarUnavailable(message, provider=PROVIDER, status=status)
    if status in (404, 410):
        raise ResourceGone(message, provider=PROVIDER, status=status)
    raise InvalidRequest(message, provider=PROVIDER, status=status)


class GraphHttp:
    """Authenticated, capped, error-translating Graph requests.

    Args:
        settings: ``graph_base_url``, ``ca_bundle`` and ``timeout_s`` (connect and read, seconds).
        tokens: where bearer tokens come from.
        session: the HTTP session; default one trusting ``settings.ca_bundle``.
        sleep: waits out short ``Retry-After`` values (injected so tests need not sleep).
        max_concurrency_per_mailbox: in-flight cap per mailbox (Outlook's limit is 4).
        clock: the current time, for an HTTP-date ``Retry-After`` (default: the system clock).
    """

    def __init__(
        self,
        settings: MicrosoftSettings,
        tokens: TokenProvider,
        *,
        session: requests.Session | None = None,
        sleep: Callable[[float], None],
        max_concurrency_per_mailbox: int = 4,
        clock: Clock | None = None,
    ) -> None:
        self.clock: Clock = clock or SystemClock()
        self.base_url = settings.graph_base_url.rstrip("/")
        self._origin = "{0.scheme}://{0.netloc}".format(urlsplit(self.base_url))
        self._tokens = tokens
        self._session = session or pinned_session(settings)
        self._verify: bool | str = str(settings.ca_bundle) if settings.ca_bundle else True
        self._timeout_s = settings.timeout_s
        self._sleep = sleep
        self.gate = MailboxGate(max_concurrency_per_mailbox)

    def call(
        self,
        method: str,
        path_or_url: str,
        *,
        mailbox: str,
        what: str,
        params: Mapping[str, str] | None = None,
        body: JSON | None = None,
        prefer: Sequence[str] = (),
        weight: int = 1,
    ) -> requests.Response:
        """Send one request and return the 2xx response.

        Args:
            path_or_url: a path under ``graph_base_url`` (``/users/x/events``) or an absolute
                ``@odata.nextLink`` on the same host.
            mailbox: whose mailbox this touches (for the concurrency cap).
            what: a short description for error messages (never contains personal data).
            prefer: ``Prefer`` preferences, sent comma-separated in one header (RFC 7240).
            weight: concurrency slots this request takes (a ``$batch`` takes several).

        Raises:
            ConnectorError: the translated failure (see :func:`raise_for_status`).
        """
        url = self._url(path_or_url)
        headers = {"Accept": "application/json"}
        if prefer:
            headers["Prefer"] = ", ".join(prefer)
        refreshed = False
        short_retried = False
        while True:
            headers["Authorization"] = (
                f"Bearer {self._tokens.access_token(force_refresh=refreshed)}"
            )
            response = self._send(method, url, mailbox, what, headers, params, body, weight)
            if response.status_code == 401 and not refreshed:
                refreshed = True  # the token expired or was revoked server-side: refresh once
                continue
            if response.status_code == 429 and not short_retried:
                wait = parse_retry_after(response.headers.get("Retry-After"), self.clock.now())
                if wait is not None and wait <= SHORT_RETRY_AFTER_S:
                    short_retried = True
                    self._sleep(wait)
                    continue
            raise_for_status(response, what, now=self.clock.now())
            return response

    def _url(self, path_or_url: str) -> str:
        if path_or_url.startswith("https://") or path_or_url.startswith("http://"):
            # Only follow links back to Graph itself: a nextLink elsewhere would leak the token.
            if not path_or_url.startswith(self._origin + "/"):
                raise InvalidRequest(
                    "Graph returned a link to another host; refusing to follow it",
                    provider=PROVIDER,
                )
            return path_or_url
        return self.base_url + path_or_url

    def _send(
        self,
        method: str,
        url: str,
        mailbox: str,
        what: str,
        headers: Mapping[str, str],
        params: Mapping[str, str] | None,
        body: JSON | None,
        weight: int,
    ) -> requests.Response:
        try:
            with self.gate.hold(mailbox, weight):
                return self._session.request(
                    method,
                    url,
                    headers=dict(headers),
                    params=dict(params) if params else None,
                    json=body,
                    timeout=self._timeout_s,
                    verify=self._verify,
                )
        except requests.Timeout as exc:
            raise ProviderUnavailable(f"{what}: timed out", provider=PROVIDER) from exc
        except requests.RequestException as exc:
            # ConnectionError (refused, reset, dropped mid-response), ChunkedEncodingError, ...
            raise ProviderUnavailable(
                f"{what}: connection failed ({type(exc).__name__})", provider=PROVIDER
            ) from exc

    def json(self, response: requests.Response, what: str) -> JSON:
        """The response body as a JSON object (``{}`` for an empty 202/204)."""
        if not response.content:
            return {}
        try:
            data = response.json()
        except ValueError as exc:
            raise ProviderUnavailable(f"{what}: response is not JSON", provider=PROVIDER) from exc
        if not isinstance(data, dict):
            raise ProviderUnavailable(f"{what}: unexpected response shape", provider=PROVIDER)
        return data

    def paged(
        self,
        path: str,
        *,
        mailbox: str,
        what: str,
        params: Mapping[str, str],
        prefer: Sequence[str] = (),
        max_pages: int = 1000,
    ) -> Iterator[JSON]:
        """Yield every item of a collection, following ``@odata.nextLink``.

        ``max_pages`` bounds a misbehaving server that never stops paging.
        """
        next_url: str | None = path
        first = True
        for _ in range(max_pages):
            if next_url is None:
                return
            response = self.call(
                "GET",
                next_url,
                mailbox=mailbox,
                what=what,
                params=params if first else None,  # nextLink already carries the query
                prefer=prefer,
            )
            first = False
            page = self.json(response, what)
            items = page.get("value", [])
            if isinstance(items, list):
                yield from (item for item in items if isinstance(item, dict))
            link = page.get("@odata.nextLink")
            next_url = link if isinstance(link, str) else None
        raise ProviderUnavailable(f"{what}: more than {max_pages} pages", provider=PROVIDER)


class _BatchItemResponse(requests.Response):
    """A ``$batch`` item dressed as a response so one translation function handles both."""

    def __init__(self, item: Mapping[str, Any]) -> None:
        super().__init__()
        self.status_code = int(item.get("status", 500))
        headers = item.get("headers")
        if isinstance(headers, Mapping):
            self.headers.update({str(k): str(v) for k, v in headers.items()})
        body = item.get("body")
        self._content = json.dumps(body).encode() if body is not None else b""


def raise_for_batch_item(item: Mapping[str, Any], what: str, *, now: datetime) -> None:
    """:func:`raise_for_status` for one item of a JSON ``$batch`` response."""
    raise_for_status(_BatchItemResponse(item), what, now=now)
