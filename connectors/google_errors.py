"""Translation of Google client errors into :mod:`scheduler.core.errors`, in one context manager.

========================================================  =========================================
Google / transport failure                                goodwill error
========================================================  =========================================
429; 403 ``rateLimitExceeded``/``userRateLimitExceeded``   :class:`RateLimited` (``Retry-After``)
/``quotaExceeded``
5xx, socket timeout, dropped connection, DNS, refused     :class:`ProviderUnavailable`
token endpoint 5xx / ``temporarily_unavailable``          :class:`ProviderUnavailable`
401 (google-auth already refreshed and replayed)          :class:`AuthorizationRevoked`
``invalid_grant`` and other refusals at the token URL     :class:`AuthorizationRevoked`
404, 410                                                  ``not_found`` (:class:`ResourceGone`)
other 403 (``forbidden``, ``forbiddenForServiceAccounts``) :class:`CalendarUnavailable`
400 and other 4xx (409 keeps ``status=409``)              :class:`InvalidRequest`
========================================================  =========================================

The client's own retries (``execute(num_retries=...)``) are never used: they ignore
``Retry-After``. Retrying is the worker layer's job, driven by the error class. ``Retry-After`` is
read by :func:`connectors.http_common.parse_retry_after`; an HTTP-date counts from the connector's
injected clock.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import httplib2
from google.auth.exceptions import RefreshError, TransportError
from googleapiclient.errors import HttpError

from connectors.http_common import parse_retry_after
from scheduler.core.clock import Clock
from scheduler.core.errors import (
    AuthorizationRevoked,
    CalendarUnavailable,
    ConnectorError,
    InvalidRequest,
    ProviderUnavailable,
    RateLimited,
    ResourceGone,
)

__all__ = ["PROVIDER", "google_errors", "http_error_reasons"]

PROVIDER = "google"

#: 403 reasons that mean "slow down", not "no permission" (Calendar API errors guide).
_RATE_LIMIT_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded", "quotaExceeded"})


@contextmanager
def google_errors(
    action: str, *, clock: Clock, not_found: type[ConnectorError] = ResourceGone
) -> Iterator[None]:
    """Run Google client calls, re-raising their failures as goodwill errors.

    Args:
        action: what was being done (``"freeBusy query"``), for the message. Never an e-mail.
        clock: the connector's injected clock; an HTTP-date ``Retry-After`` counts from it.
        not_found: the error a 404 means here: :class:`ResourceGone` for an event,
            :class:`CalendarUnavailable` for a calendar.
    """
    try:
        yield
    except HttpError as exc:
        raise _from_http_error(exc, action, not_found, clock.now()) from exc
    except RefreshError as exc:
        if exc.retryable:
            raise ProviderUnavailable(
                f"Google token endpoint failed during {action}; retry later", provider=PROVIDER
            ) from exc
        raise AuthorizationRevoked(
            f"Google refused to refresh the grant during {action} ({_refresh_reason(exc)}); "
            "the user must reconnect with `goodwill connect google`",
            provider=PROVIDER,
        ) from exc
    except (TransportError, httplib2.HttpLib2Error, http.client.HTTPException, OSError) as exc:
        # OSError covers TimeoutError/socket.timeout, ConnectionResetError and refused sockets.
        raise ProviderUnavailable(
            f"Google Calendar unreachable during {action}: {type(exc).__name__}",
            provider=PROVIDER,
        ) from exc


def _from_http_error(
    exc: HttpError, action: str, not_found: type[ConnectorError], now: datetime
) -> ConnectorError:
    status = int(exc.resp.status)
    reasons = http_error_reasons(exc)
    label = f"Google Calendar {action} failed: HTTP {status} {','.join(reasons)}".rstrip()
    if status == 429 or (status == 403 and _RATE_LIMIT_REASONS.intersection(reasons)):
        return RateLimited(
            label,
            retry_after_s=parse_retry_after(_header(exc.resp, "retry-after"), now),
            provider=PROVIDER,
            status=status,
        )
    if status >= 500:
        return ProviderUnavailable(label, provider=PROVIDER, status=status)
    if status == 401:
        return AuthorizationRevoked(
            f"{label}; the grant no longer works even after a refresh, reconnect the account",
            provider=PROVIDER,
            status=status,
        )
    if status in (404, 410):
        return not_found(label, provider=PROVIDER, status=status)
    if status == 403:
        return CalendarUnavailable(label, provider=PROVIDER, status=status)
    return InvalidRequest(label, provider=PROVIDER, status=status)


def http_error_reasons(exc: HttpError) -> list[str]:
    """The ``error.errors[].reason`` values of a Google error body (empty if unparsable)."""
    try:
        content = exc.content.decode("utf-8") if isinstance(exc.content, bytes) else exc.content
        data: Any = json.loads(content)
        errors = data["error"].get("errors", [])
        return [str(e["reason"]) for e in errors if isinstance(e, dict) and "reason" in e]
    except (ValueError, KeyError, TypeError, AttributeError):
        return []


def _header(headers: Any, name: str) -> str | None:
    """One header of an httplib2 response (a dict with lower-case keys), None when absent."""
    value = headers.get(name) if hasattr(headers, "get") else None
    return None if value is None else str(value)


def _refresh_reason(exc: RefreshError) -> str:
    """The OAuth ``error`` code of a refused refresh (``invalid_grant``), without any e-mail."""
    for arg in exc.args[1:]:
        if isinstance(arg, dict) and isinstance(arg.get("error"), str):
            return str(arg["error"])
    return "refresh refused"
