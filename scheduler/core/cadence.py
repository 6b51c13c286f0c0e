"""Cadence: which stakeholders are due, and in what order.

Rules (issue "The core"):

- Last contact is the latest completed goodwill meeting or organic meeting, whichever is later.
- Due date = last contact + the tier's interval. Never met = due now. A tier's ``at_most``
  (``every: 4w, at_most: 6w``) changes nothing here: planning starts at ``every``; only the
  report waits until ``at_most`` before it calls someone late (:func:`late_at`).
- A stakeholder whose due date is within the planning horizon is *due*: the slot search for them
  starts no earlier than ``due_at - interval / 8``, so a 4-weekly mentor met on the 3rd is not
  offered a slot on the 4th just because the horizon reaches that far.
- Paused (``paused_until`` in the future), backing off after a decline, or already holding an
  open goodwill meeting: skipped with the reason.
- When time is scarce, most overdue relative to the interval goes first, then tier order, then
  e-mail (so the order is deterministic). Never met counts as due now (0 intervals overdue).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from scheduler.core.policy import Policy, Stakeholder

__all__ = [
    "EARLY_FRACTION",
    "NEVER_MET_OVERDUE",
    "Due",
    "Skip",
    "SkipCode",
    "assess",
    "backoff_after_decline",
    "late_at",
    "next_due",
]

#: A due stakeholder may be met this fraction of the interval before the due date.
EARLY_FRACTION = 8
#: How overdue someone never met counts, in intervals (for ordering only): due now, not
#: overdue, so a mentor two weeks late goes before a peer you have simply not met yet.
NEVER_MET_OVERDUE = 0.0


class SkipCode(StrEnum):
    """Why a stakeholder gets no proposal this cycle (stable, for scripts and the report)."""

    NOT_DUE = "not_due"
    PAUSED = "paused"
    BACKOFF = "backoff"
    OPEN_MEETING = "open_meeting"
    CALENDAR_UNAVAILABLE = "calendar_unavailable"
    NO_COMMON_SLOT = "no_common_slot"
    CAP_REACHED = "cap_reached"
    #: The stakeholder already has enough goodwill coffees that week (or, for a senior, a new
    #: goodwill invite today) across every owner.
    STAKEHOLDER_BUSY = "stakeholder_busy"
    #: ``status: to_meet``, not met yet: never invited cold, waiting for the introduction.
    TO_MEET = "to_meet"


@dataclass(frozen=True, slots=True)
class Skip:
    stakeholder: str
    code: SkipCode
    reason: str


@dataclass(frozen=True, slots=True)
class Due:
    """A stakeholder to plan for. ``not_before`` bounds the slot search from below."""

    stakeholder: Stakeholder
    last_contact: datetime | None
    due_at: datetime
    not_before: datetime
    overdue: float  # intervals past due (negative: not yet due)

    @property
    def why(self) -> str:
        if self.last_contact is None:
            return "never met"
        return f"last met {self.last_contact:%Y-%m-%d}, due {self.due_at:%Y-%m-%d}"


def assess(
    policy: Policy,
    *,
    now: datetime,
    last_contacts: Mapping[str, datetime],
    open_meetings: Collection[str] = (),
    backoff_until: Mapping[str, datetime] | None = None,
) -> tuple[list[Due], list[Skip]]:
    """Split the policy's stakeholders into due (priority order) and skipped.

    Args:
        policy: the owner's validated policy.
        now: aware UTC "now" (injected clock).
        last_contacts: latest contact per lower-cased e-mail (goodwill or organic), aware UTC.
        open_meetings: lower-cased e-mails that already have an open goodwill meeting.
        backoff_until: lower-cased e-mail -> aware UTC end of a decline back-off.
    """
    backoff = backoff_until or {}
    horizon_end = now + policy.availability.horizon
    owner_today = now.astimezone(ZoneInfo(policy.owner.timezone)).date()
    open_set = {e.lower() for e in open_meetings}
    due: list[Due] = []
    skipped: list[Skip] = []
    for s in policy.stakeholders:
        email = s.email.lower()
        if s.paused_until is not None and s.paused_until > owner_today:
            skipped.append(Skip(email, SkipCode.PAUSED, f"paused until {s.paused_until:%Y-%m-%d}"))
            continue
        until = backoff.get(email)
        if until is not None and until > now:
            skipped.append(
                Skip(email, SkipCode.BACKOFF, f"backing off after a decline until {until:%Y-%m-%d}")
            )
            continue
        if email in open_set:
            skipped.append(
                Skip(email, SkipCode.OPEN_MEETING, "already has an open goodwill meeting")
            )
            continue
        every = policy.tier_of(s).every
        last = last_contacts.get(email)
        if last is None:
            due_at, overdue, not_before = now, NEVER_MET_OVERDUE, now
        else:
            due_at = last + every
            overdue = (now - due_at) / every
            not_before = max(now, due_at - every / EARLY_FRACTION)
        if not_before >= horizon_end:
            skipped.append(
                Skip(
                    email,
                    SkipCode.NOT_DUE,
                    f"not due: last met {last:%Y-%m-%d}, next due {due_at:%Y-%m-%d}"
                    if last
                    else "not due",
                )
            )
            continue
        due.append(Due(s, last, due_at, not_before, overdue))
    due.sort(key=lambda d: (-d.overdue, policy.tier_rank(d.stakeholder.tier), d.stakeholder.email))
    return due, skipped


def next_due(
    policy: Policy, stakeholder: Stakeholder, last_contact: datetime | None, now: datetime
) -> datetime:
    """When ``stakeholder`` is next due (now if never met)."""
    if last_contact is None:
        return now
    return last_contact + policy.tier_of(stakeholder).every


def late_at(
    policy: Policy, stakeholder: Stakeholder, last_contact: datetime | None, now: datetime
) -> datetime:
    """When ``stakeholder`` counts as late: last contact + the tier's ``at_most`` (its
    ``every`` without one); now if never met. Planning still starts at :func:`next_due`."""
    if last_contact is None:
        return now
    return last_contact + policy.tier_of(stakeholder).late_after


def backoff_after_decline(
    policy: Policy, stakeholder: Stakeholder, declined_at: datetime
) -> datetime:
    """End of the back-off after a decline: ``decline_backoff`` × interval, at least a week."""
    every = policy.tier_of(stakeholder).every
    return declined_at + max(every * policy.etiquette.decline_backoff, timedelta(days=7))
