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
``Retry-After``. Retrying is the worker layer's job, driven by the error class.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from contextlib import contextmanager
from email.utils import parsedate_to_datetime
from typing import Any

import httplib2
from google.auth.exceptions import RefreshError, TransportError
from googleapiclient.errors import HttpError

from scheduler.core.errors import (
    AuthorizationRevoked,
    CalendarUnavailable,
    ConnectorError,
    InvalidRequest,
    ProviderUnavailable,
    RateLimited,
    ResourceGone,
)

__all__ = ["PROVIDER", "google_errors", "http_error_reasons", "retry_after_seconds"]

PROVIDER = "google"

#: 403 reasons that mean "slow down", not "no permission" (Calendar API errors guide).
_RATE_LIMIT_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded", "quotaExceeded"})


@contextmanager
def google_errors(action: str, *, not_found: type[ConnectorError] = ResourceGone) -> Iterator[None]:
    """Run Google client calls, re-raising their failures as goodwill errors.

    Args:
        action: what was being done (``"freeBusy query"``), for the message. Never an e-mail.
        not_found: the error a 404 means here: :class:`ResourceGone` for an event,
            :class:`CalendarUnavailable` for a calendar.
    """
    try:
        yield
    except HttpError as exc:
        raise _from_http_error(exc, action, not_found) from exc
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
    exc: HttpError, action: str, not_found: type[ConnectorError]
) -> ConnectorError:
    status = int(exc.resp.status)
    reasons = http_error_reasons(exc)
    label = f"Google Calendar {action} failed: HTTP {status} {','.join(reasons)}".rstrip()
    if status == 429 or (status == 403 and _RATE_LIMIT_REASONS.intersection(reasons)):
        return RateLimited(
            label,
            retry_after_s=retry_after_seconds(exc.resp),
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


def retry_after_seconds(headers: Any) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date), else None.

    An HTTP-date is measured against the response's own ``Date`` header, so no local clock is
    needed; without a ``Date`` header a date form gives None (the worker backs off instead).
    """
    value = headers.get("retry-after") if hasattr(headers, "get") else None
    if not value:
        return None
    text = str(value).strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    served = headers.get("date")
    if not served:
        return None
    try:
        delta = parsedate_to_datetime(text) - parsedate_to_datetime(str(served))
    except (TypeError, ValueError):
        return None
    return max(0.0, delta.total_seconds())


def _refresh_reason(exc: RefreshError) -> str:
    """The OAuth ``error`` code of a refused refresh (``invalid_grant``), without any e-mail."""
    for arg in exc.args[1:]:
        if isinstance(arg, dict) and isinstance(arg.get("error"), str):
            return str(arg["error"])
    return "refresh refused"
