"""The dry run: read what one plan needs through the ports and plan it, writing nothing.

``goodwill plan`` runs this from a cold start, and the planning round
(:func:`scheduler.app.planning.plan_user`) runs it with the store's side. It imports the core and
the policy only, not the store-facing use cases (booking, decisions, groups, registration): a
cold ``plan`` loads what it uses (issue 13).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from scheduler.app.history_window import ORGANIC_LOOKBACK, owner_window
from scheduler.core.booked import calendar_meetings
from scheduler.core.cadence import assess
from scheduler.core.group_members import group_person
from scheduler.core.groups import GroupHistory, group_people
from scheduler.core.intervals import Interval
from scheduler.core.model import BusyQuery, BusyResult, Person
from scheduler.core.planner import ExistingMeeting, Plan, StakeholderLoad, plan
from scheduler.core.policy import Policy
from scheduler.core.ports import CalendarSource, ContactHistory, OwnerCalendar

__all__ = ["StoredState", "dry_run_plan", "group_busy_people", "merge_contacts"]


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
    load: StakeholderLoad | None = None,
    known: StoredState | None = None,
) -> Plan:
    """Read what the plan needs through the ports and plan one cycle. Writes nothing.

    ``known`` (from :func:`scheduler.app.planning.stored_state`) supplies the store's side at
    once: recorded contacts, open meetings, back-offs, pauses and the stakeholders' load; it
    overrides the single arguments.

    Only the owner's and the *due* stakeholders' calendars are read (one batched call), so a
    stakeholder who is not due is never looked at.
    """
    owner_paused_until, groups = None, None
    if known is not None:
        goodwill_contacts, existing = known.goodwill_contacts, known.existing
        backoff_until, paused, load = known.backoff_until, known.paused, known.load
        owner_paused_until, groups = known.owner_paused_until, known.group_history
    emails = [s.email.lower() for s in policy.stakeholders]
    organic: Mapping[str, datetime] = {}
    if history is not None:
        if isinstance(source, OwnerCalendar):  # one owner read serves history and busy
            source.read_owner(policy.owner.person, owner_window(policy, now))
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
    members: list[Person] = group_busy_people(policy, contacts)
    if owner_paused_until is not None and owner_paused_until > now:
        due, members = [], []  # the owner paused goodwill: no stakeholder's calendar is read
    window = Interval(now, now + policy.availability.horizon)
    # ONE batched read: the owner, the due stakeholders and every group member.
    people = _distinct(policy.owner.person, *(policy.person_of(d.stakeholder) for d in due))
    people = _distinct(*people, *members)
    busy: BusyResult = source.busy(BusyQuery(window=window, people=people))
    if known is None:  # no store: goodwill's future events on the calendars are the open ones
        existing = [*existing, *calendar_meetings(busy, policy.owner.email, emails, now)]
    return plan(
        policy,
        now=now,
        busy=busy,
        last_contacts=contacts,
        existing=existing,
        backoff_until=backoff_until,
        paused=paused,
        load=load,
        owner_paused_until=owner_paused_until,
        group_history=groups,
    )


def _distinct(*people: Person) -> tuple[Person, ...]:
    """``people`` in order, each e-mail once (letter case ignored)."""
    seen: dict[str, Person] = {}
    for person in people:
        seen.setdefault(person.email.lower(), person)
    return tuple(seen.values())


@dataclass(frozen=True, slots=True)
class StoredState:
    """What the store knows that a plan must respect (read only; a dry run uses it too)."""

    goodwill_contacts: dict[str, datetime]
    existing: list[ExistingMeeting]
    backoff_until: dict[str, datetime]
    #: Paused stakeholders (lower-cased e-mail -> why, e.g. "snoozed by you").
    paused: dict[str, str]
    load: StakeholderLoad
    #: The owner paused goodwill until then (None: not paused): nothing is proposed.
    owner_paused_until: datetime | None = None
    #: Past and open group meetings, for the group planner (None: none read).
    group_history: GroupHistory | None = None


def group_busy_people(policy: Policy, contacts: Mapping[str, datetime]) -> list[Person]:
    """The group members and introduction people whose busy time the round reads."""
    return [group_person(policy, e) for e in group_people(policy, contacts)]
