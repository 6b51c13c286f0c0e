"""HTTP details shared by every connector that talks HTTP (Google, Graph, CalDAV, ICS feeds).

Pure: no I/O, no clock of its own. The time a header is measured against is passed in, and comes
from the connector's injected :class:`~scheduler.core.clock.Clock`.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

__all__ = ["parse_retry_after"]


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` header value (RFC 9110 §10.2.3), or None.

    Both forms are read: delay-seconds (``"120"``; a fraction is tolerated) and an HTTP-date
    (``"Fri, 31 Dec 1999 23:59:59 GMT"``, or the obsolete RFC 850 / asctime forms), which counts
    from ``now``. A negative delay or a date already past gives 0: retry at once.

    Args:
        value: the header as received, None when absent.
        now: the current time, aware; from the injected clock, never the wall clock.

    Returns:
        Seconds (``>= 0``), or None when the header is absent, empty or not understood (then the
        caller backs off on its own schedule).

    >>> now = datetime(1999, 12, 31, 23, 59, 0, tzinfo=UTC)
    >>> parse_retry_after("120", now), parse_retry_after("Fri, 31 Dec 1999 23:59:59 GMT", now)
    (120.0, 59.0)
    >>> parse_retry_after("Fri, 31 Dec 1999 23:00:00 GMT", now), parse_retry_after("soon", now)
    (0.0, None)
    """
    if now.tzinfo is None:
        raise ValueError("parse_retry_after needs an aware now")
    text = (value or "").strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000": UTC with no claim about the local zone (RFC 5322)
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())
