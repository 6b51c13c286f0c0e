"""How much of the owner's calendar history a planning round reads.

A round looks for organic contact (meetings the owner had with a stakeholder outside goodwill)
over the last :data:`ORGANIC_LOOKBACK`, and records what it finds in the store, which keeps every
contact it was given. So once a round has read the history for a set of stakeholders, the next
round needs only what is new since: it reads from where the last read ended, less
:data:`HISTORY_OVERLAP` (a meeting logged a few days late, an event moved into the past, a
clock a little off), and takes the older contacts from the store. In steady state that is two
weeks plus the horizon instead of 26 weeks plus the horizon: the owner read was ~20% of a
worker's CPU (issue 13).

The whole lookback is read again when the last read was for other stakeholders (one added since
has never been looked for; the key below changes) or another calendar named by the policy
(another provider, URL or calendar id), when there is no last read (a new owner, or
one planned before the watermark existed), when it ended so long ago that the overlap reaches
past the lookback, and when it ends in the future (a clock that went back).

A past event added more than :data:`HISTORY_OVERLAP` after it happened is not seen as contact;
nor, as before, does a deleted one stop counting once recorded. A long meeting in progress at
one round is still found by a later one: every connector counts the events that *ended* in the
range read, whenever they began. Pointing an owner at another calendar through the settings
alone (``GOODWILL_CALDAV__URL``, the ICS directory) is not seen by the key: the older history of
the new calendar is then not read.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from scheduler.core.intervals import Interval
from scheduler.core.policy import Policy

if TYPE_CHECKING:  # a cold `goodwill plan` imports this module, never the records
    from scheduler.app.records import User

__all__ = [
    "HISTORY_OVERLAP",
    "ORGANIC_LOOKBACK",
    "history_key",
    "history_since",
    "owner_window",
]

#: How far back organic contact is looked for in the owner's calendar.
ORGANIC_LOOKBACK = timedelta(weeks=26)

#: A round reads the history again from this long before the last round's read ended.
HISTORY_OVERLAP = timedelta(days=14)


def history_key(policy: Policy) -> str:
    """What a history read was for: the owner, the lookback, the calendar the policy names
    (provider, URL, calendar id) and the stakeholders' e-mails (order and case aside). A round
    may read only what is new when this is unchanged."""
    emails = sorted({s.email.lower() for s in policy.stakeholders})
    cal = policy.calendar
    where = f"{cal.provider} {cal.url or ''} {cal.calendar_id or ''}"
    text = "\n".join([policy.owner.email.lower(), str(ORGANIC_LOOKBACK), where, *emails])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def history_since(user: User, key: str, now: datetime) -> datetime:
    """Where this round's history read starts (see the module docstring)."""
    full = now - ORGANIC_LOOKBACK
    until = user.history_read_until
    if until is None or user.history_read_key != key or until > now:
        return full
    return max(full, until - HISTORY_OVERLAP)


def owner_window(policy: Policy, now: datetime, since: datetime | None = None) -> Interval:
    """What one round reads of the owner's calendar: the history from ``since`` (default: the
    whole lookback), then the horizon."""
    start = now - ORGANIC_LOOKBACK if since is None else since
    return Interval(start, now + policy.availability.horizon)
