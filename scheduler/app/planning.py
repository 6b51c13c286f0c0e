"""Use cases: glue between the pure core and the ports. No vendor SDK here either."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime, timedelta

from scheduler.core.cadence import assess
from scheduler.core.intervals import Interval
from scheduler.core.model import BusyQuery, BusyResult
from scheduler.core.planner import ExistingMeeting, Plan, plan
from scheduler.core.policy import Policy
from scheduler.core.ports import CalendarSource, ContactHistory

__all__ = ["ORGANIC_LOOKBACK", "dry_run_plan", "merge_contacts"]

#: How far back organic contact is looked for in the owner's calendar.
ORGANIC_LOOKBACK = timedelta(weeks=26)


def merge_contacts(*sources: Mapping[str, datetime]) -> dict[str, datetime]:
    """Latest contact per lower-cased e-mail across sources."""
    out: dict[str, datetime] = {}
    for source in sources:
        for email, met in source.items():
            key = email.lower()
            if key not in out or met > out[key]:
                out[key] = met
    return out


def dry_run_plan(
    policy: Policy,
    *,
    source: CalendarSource,
    history: ContactHistory | None,
    now: datetime,
    goodwill_contacts: Mapping[str, datetime] | None = None,
    existing: Sequence[ExistingMeeting] = (),
    backoff_until: Mapping[str, datetime] | None = None,
    paused: Collection[str] = (),
) -> Plan:
    """Read what the plan needs through the ports and plan one cycle. Writes nothing.

    Only the owner's and the *due* stakeholders' calendars are read (one batched call), so a
    stakeholder who is not due is never looked at.
    """
    emails = [s.email.lower() for s in policy.stakeholders]
    organic: Mapping[str, datetime] = {}
    if history is not None:
        organic = history.last_contacts(policy.owner.person, emails, now - ORGANIC_LOOKBACK, now)
    contacts = merge_contacts(organic, goodwill_contacts or {})
    open_emails = {m.stakeholder.lower() for m in existing if m.open and m.end > now}
    due, _ = assess(
        policy,
        now=now,
        last_contacts=contacts,
        open_meetings=open_emails,
        backoff_until=backoff_until,
    )
    paused_set = {e.lower() for e in paused}
    due = [d for d in due if d.stakeholder.email.lower() not in paused_set]
    window = Interval(now, now + policy.availability.horizon)
    people = (policy.owner.person, *(policy.person_of(d.stakeholder) for d in due))
    busy: BusyResult = source.busy(BusyQuery(window=window, people=people))
    return plan(
        policy,
        now=now,
        busy=busy,
        last_contacts=contacts,
        existing=existing,
        backoff_until=backoff_until,
        paused=paused,
    )
