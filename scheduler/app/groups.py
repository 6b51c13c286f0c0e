"""Group meetings (lunch groups, introductions) through the store, the booking and the answers.

The core plans them (:func:`scheduler.core.groups.plan_groups`, called by the planner); this
module is what the use cases add around it:

- **planning**: the store's history for the planner (:func:`group_history`: who presented when,
  which groups were last held or are open, who has completed a one-to-one), the people whose
  busy time the round's one batched read must include
  (:func:`scheduler.app.dry_run.group_busy_people`), and the
  plan's group proposals as ``proposed`` meetings (:func:`group_new_meetings`);
- **booking**: why a group meeting may not be booked (:func:`group_refusal`), the re-check of
  the owner and every attendee in one busy read (:func:`group_slot_taken`), and the single
  event with every attendee (:func:`group_draft`);
- **answers**: each attendee's answer, the quorum, and the contact a held meeting counts as
  (:func:`follow_group`).

A group meeting is one meeting row: ``stakeholder_email`` is its first attendee (the presenter
when there is one), ``attendees`` everyone invited (the owner not included).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from scheduler.app.pipeline import Pipeline, idempotency_key
from scheduler.app.ports import StorePort
from scheduler.app.records import ContactSource, Meeting, NewMeeting, RoundMeetings
from scheduler.core.busy import apply_busy_rules
from scheduler.core.group_members import MemberLoad, group_person
from scheduler.core.groups import GroupHistory, GroupProposal
from scheduler.core.intervals import Interval, overlaps_any
from scheduler.core.model import AttendeeStatus, BusyQuery, EventDraft, Person
from scheduler.core.policy import Policy
from scheduler.core.policy.groups import INTRODUCTION
from scheduler.core.ports import CalendarBackend, EventState
from scheduler.core.states import OPEN_STATES, MeetingState

__all__ = [
    "BUSY_READ_LIMITS",
    "HISTORY_LOOKBACK",
    "PRESENTER_DECLINED",
    "below_quorum_text",
    "follow_group",
    "group_backoff_key",
    "group_draft",
    "group_history",
    "group_new_meetings",
    "group_person",
    "group_refusal",
    "group_slot_taken",
    "max_attendees",
    "slot_holder",
]

_S = MeetingState
#: How far back past group meetings and one-to-ones are read for the rotation and the
#: "meet senior people one-to-one first" rule.
HISTORY_LOOKBACK = timedelta(days=730)
#: The most calendars one busy read takes, per provider (Google freeBusy: 50 calendars per
#: query; Graph getSchedule: 20 schedules per call). A group meeting's re-check reads the owner
#: and every attendee at once, so a group meeting invites at most this many minus one.
BUSY_READ_LIMITS: Mapping[str, int] = {"google": 50, "microsoft": 20}
_ANSWERS = (
    AttendeeStatus.ACCEPTED,
    AttendeeStatus.TENTATIVE,
    AttendeeStatus.DECLINED,
    AttendeeStatus.NEEDS_ACTION,
)


def max_attendees(provider: str) -> int | None:
    """The most attendees (the owner not counted) one group meeting may invite on ``provider``
    so that its re-check is one busy read; None: no such limit."""
    limit = BUSY_READ_LIMITS.get(provider)
    return None if limit is None else limit - 1


def slot_holder(m: Meeting) -> str:
    """Who an open meeting is "with" for the planner: the stakeholder of a one-to-one; for a
    group meeting a marker that is nobody's e-mail, so it blocks the owner's slot and counts
    once towards the caps without counting as anyone's open one-to-one."""
    return f"group:{m.group_name}:{m.id}" if m.is_group else m.stakeholder_email


def group_backoff_key(name: str) -> str:
    """The etiquette-status key of a group's decline back-off (``group:NAME``; nobody's
    e-mail, so no stakeholder's status)."""
    return f"{_BACKOFF_PREFIX}{name}"


_BACKOFF_PREFIX = "group:"


# -- planning ---------------------------------------------------------------------------------


def group_history(
    store: StorePort,
    user_id: int,
    now: datetime,
    *,
    backoff_until: Mapping[str, datetime] | None = None,
    load: MemberLoad | None = None,
    meetings: RoundMeetings | None = None,
) -> GroupHistory:
    """What the planner needs to know of the owner's group meetings and one-to-ones.

    A group counts as held by a completed meeting; the presenter of every held or open meeting
    counts as having presented then, unless they declined it; a meeting that ended while being
    booked (claimed, then cancelled without an event: the slot was taken) is a slot not to
    propose again. Read in two
    queries, by user. ``backoff_until``: the user's back-offs by status key (a declined group's
    under :func:`group_backoff_key`); ``load``: what members have from other owners;
    ``meetings``: the round's meetings, read with ``history_since = now - HISTORY_LOOKBACK``
    (then nothing is read here).
    """
    since = now - HISTORY_LOOKBACK
    last_held: dict[str, datetime] = {}
    open_groups: set[str] = set()
    presented: dict[str, dict[str, datetime]] = {}
    open_intros: set[str] = set()
    taken: dict[str, list[Interval]] = {}
    # etiquette.max_per_stakeholder_per_week: the owner's open and held meetings per person.
    attended: dict[str, list[datetime]] = {}
    groups = meetings.groups if meetings is not None else store.group_meetings(user_id, since=since)
    for m in groups:
        name = m.group_name or ""
        if m.state in OPEN_STATES or m.state == _S.COMPLETED:
            for email in m.attendees:
                attended.setdefault(email.lower(), []).append(m.start)
        if m.state == _S.CANCELLED and m.attempts and m.end > now and not m.provider_event_id:
            taken.setdefault(name, []).append(Interval(m.start, m.end))
        if m.state in OPEN_STATES:
            if name == INTRODUCTION:
                open_intros.update(m.attendees[1:])
            else:
                open_groups.add(name)
        if m.state not in OPEN_STATES and m.state != _S.COMPLETED:
            continue
        if m.state == _S.COMPLETED and m.start > last_held.get(name, since):
            last_held[name] = m.start
        if m.presenter and not presenter_declined(m):
            seen = presented.setdefault(name, {})
            seen[m.presenter] = max(m.start, seen.get(m.presenter, m.start))
    completed = (
        meetings.completed
        if meetings is not None
        else store.meetings_between(user_id, since, now, states=[_S.COMPLETED])
    )
    return GroupHistory(
        last_held=last_held,
        open_groups=open_groups,
        presented=presented,
        one_to_one_done={m.stakeholder_email for m in completed if not m.is_group},
        open_introductions=open_intros,
        declined_until={
            key.removeprefix(_BACKOFF_PREFIX): until
            for key, until in (backoff_until or {}).items()
            if key.startswith(_BACKOFF_PREFIX)
        },
        taken=taken,
        load=load,
        attended=_with_one_to_ones(attended, completed),
    )


def _with_one_to_ones(
    attended: dict[str, list[datetime]], completed: Sequence[Meeting]
) -> dict[str, list[datetime]]:
    """``attended`` plus the held one-to-ones (open ones reach the planner as ``existing``)."""
    for m in completed:
        if not m.is_group:
            attended.setdefault(m.stakeholder_email.lower(), []).append(m.start)
    return attended


def _within_limit(g: GroupProposal, provider: str) -> GroupProposal:
    """``g`` with no more attendees than one busy read of ``provider`` takes (presenter kept)."""
    most = max_attendees(provider)
    if most is None or len(g.attendees) <= most:
        return g
    why = (
        f"invites {most} of {len(g.attendees)}: one {provider} busy read takes at most "
        f"{most + 1} calendars (you and {most} attendees)"
    )
    return replace(
        g,
        attendees=g.attendees[:most],
        quorum=min(g.quorum, most),
        reason=f"{g.reason}; {why}" if g.reason else why,
    )


def group_new_meetings(
    p: Pipeline, user_id: int, proposals: Sequence[GroupProposal], provider: str
) -> list[NewMeeting]:
    """The plan's group proposals as meetings to write: always ``proposed`` (the owner
    approves every group meeting), keyed by (user, group, start) so a retried round writes
    each once."""
    out: list[NewMeeting] = []
    for g in proposals:
        g = _within_limit(g, provider)
        if not g.attendees:
            continue
        out.append(
            NewMeeting(
                stakeholder_email=g.attendees[0],
                kind=g.kind,
                start=g.start,
                end=g.end,
                mode="propose",
                idempotency_key=idempotency_key(
                    user_id, f"group:{g.group}", g.start, secret=p.key_secret
                ),
                provider=provider,
                reason=g.reason,
                state=_S.PROPOSED,
                attendees=tuple(e.lower() for e in g.attendees),
                group_name=g.group,
                presenter=g.presenter,
                quorum=g.quorum,
            )
        )
    return out


# -- booking ----------------------------------------------------------------------------------


def group_refusal(policy: Policy, m: Meeting, provider: str) -> tuple[MeetingState, str] | None:
    """Why a group meeting may not be booked (the state it goes to and why), or None."""
    if m.group_name != INTRODUCTION and not any(g.name == m.group_name for g in policy.groups):
        return _S.CANCELLED, f"group {m.group_name} no longer in the policy"
    allowed = {d.lower() for d in policy.allowed_domains}
    outside = [e for e in m.attendees if e.rsplit("@", 1)[-1].lower() not in allowed]
    if outside:
        return _S.FAILED, f"domain not allowed: {len(outside)} attendee(s) outside allowed_domains"
    most = max_attendees(provider)
    if most is not None and len(m.attendees) > most:
        return _S.FAILED, (
            f"too many attendees: {len(m.attendees)} is more than the {most} one {provider} "
            f"busy read can re-check with you; lower the group's size in the policy"
        )
    return None


def group_slot_taken(
    p: Pipeline, policy: Policy, backend: CalendarBackend, m: Meeting
) -> str | None:
    """Re-read the owner and every attendee in one busy read for the meeting's slot.

    The slot is taken (the reason returned) when the owner is busy (with the buffer), their
    calendar cannot be read, or fewer than the quorum of attendees are still free; else None.
    Raises ConnectorError.
    """
    owner = policy.owner.person
    buffer = policy.availability.buffer
    people = (owner, *(group_person(policy, e) for e in m.attendees))
    with p.provider_call(backend.provider, "recheck"):
        result = backend.source.busy(
            BusyQuery(window=Interval(m.start - buffer, m.end + buffer), people=people)
        )
    rules = policy.availability.busy
    blocks = {k.lower(): v for k, v in result.blocks.items()}
    unavailable = {k.lower() for k in result.unavailable}
    slot = Interval(m.start, m.end)
    own = owner.email.lower()
    if own in unavailable or overlaps_any(
        slot.padded(buffer), apply_busy_rules(blocks.get(own, []), rules)
    ):
        return "slot_taken: you are no longer free"
    free = [
        e
        for e in m.attendees
        if e not in unavailable
        and not overlaps_any(slot, apply_busy_rules(blocks.get(e, []), rules))
    ]
    need = m.quorum or 1
    if len(free) < need:
        return f"slot_taken: only {len(free)} of {len(m.attendees)} attendees free, quorum {need}"
    return None


def group_draft(policy: Policy, m: Meeting) -> EventDraft:
    """ONE event with every attendee (the first as ``attendee``), the presenter named."""
    owner = policy.owner.person
    people = [group_person(policy, e) for e in m.attendees]
    group = next((g for g in policy.groups if g.name == m.group_name), None)
    location = group.location if group is not None else policy.meeting.location
    video = group.video if group is not None else policy.meeting.video
    what = "Lunch" if m.kind == "lunch" else "Coffee"
    names = ", ".join(_name(x) for x in people)
    if m.group_name == INTRODUCTION:
        title = f"{what}: {owner.first_name}, {names}"
        lines = [f"Hi {names},", "", f"{what} together: a chance for all of us to meet."]
    else:
        title = f"{what}: {m.group_name}"
        lines = [f"Hi all ({names}),", "", f"Our {m.group_name} {what.lower()}."]
    if m.presenter:
        lines += ["", f"Presenting this time: {_name(group_person(policy, m.presenter))}."]
    if location:
        lines += ["", f"Where: {location}"]
    lines += [
        "",
        "If the time doesn't suit, decline: it goes ahead while enough of us can come.",
        "",
        owner.first_name,
        "",
        "— scheduled with goodwill",
    ]
    return EventDraft(
        idempotency_key=m.idempotency_key,
        organizer=owner,
        attendee=people[0],
        extra_attendees=tuple(people[1:]),
        start=m.start,
        end=m.end,
        title=title,
        description="\n".join(lines),
        location=location,
        video=None if video == "none" else video,
    )


def _name(person: Person) -> str:
    return person.name or person.email.split("@")[0]


# -- answers ----------------------------------------------------------------------------------


def below_quorum_text(declined: int, invited: int, quorum: int) -> str:
    """The owner's notice: ``group below quorum: 2 of 4 declined (needs 3)``."""
    return f"group below quorum: {declined} of {invited} declined (needs {quorum})"


_BELOW = re.compile(r"(\d+) of (\d+) declined \(needs (\d+)\)")


def below_quorum_counts(detail: str) -> tuple[int, int, int] | None:
    """``(declined, invited, quorum)`` of a :func:`below_quorum_text` notice (None: not one)."""
    found = _BELOW.search(detail)
    return (int(found[1]), int(found[2]), int(found[3])) if found else None


#: The audit row that tells the owner the presenter declined a group meeting that still
#: stands (no name in it: the page and digest name the presenter from the meeting).
PRESENTER_DECLINED = "presenter declined"


def presenter_declined(m: Meeting) -> bool:
    """Whether the group meeting's presenter declined it (then nobody presents)."""
    return bool(m.presenter) and dict(m.attendee_status).get(m.presenter or "") == (
        AttendeeStatus.DECLINED.value
    )


def _standing(answers: Mapping[str, str]) -> int:
    """Attendees still coming or not yet answered."""
    return sum(1 for a in answers.values() if a != AttendeeStatus.DECLINED.value)


def follow_group(
    p: Pipeline,
    m: Meeting,
    states: Mapping[str, EventState],
    now: datetime,
) -> int:
    """Mirror a group event's per-attendee answers onto its meeting (``states``: each
    attendee's view of the one event, read by the caller). Returns the changes written.

    The meeting stands while accepted + not yet answered ≥ quorum; when declines take it below,
    the owner is told (an audit row :func:`below_quorum_text`); it is never cancelled for that.
    When the presenter declines a meeting that still stands, the owner is told (an audit row
    :data:`PRESENTER_DECLINED`; the event is left as it is). It is ``accepted`` once the
    quorum has accepted. Once its end has passed it is completed
    when anyone accepted (a contact for every attendee who did not decline), else cancelled.
    """
    first = states[m.attendees[0]]
    if first.cancelled:
        return int(p.store.transition(
            m.id, _S.CANCELLED, actor="sync", now=now, detail="cancelled at the provider"
        ))  # fmt: skip
    changed = 0
    if (first.start, first.end) != (m.start, m.end):
        changed += int(p.store.reschedule(m.id, first.start, first.end, now=now, actor="sync"))
    before = dict(m.attendee_status)
    after = dict(before)
    for email in m.attendees:
        answer = states[email].response
        if answer in _ANSWERS and before.get(email) != answer.value:
            changed += int(p.store.set_attendee_status(m.id, email, answer, now=now))
            after[email] = answer.value
    quorum = m.quorum or 1
    if _standing(before) >= quorum > _standing(after):
        declined = len(after) - _standing(after)
        p.store.record_event(
            now=now, actor="sync", user_id=m.user_id, meeting_id=m.id,
            detail=below_quorum_text(declined, len(after), quorum),
        )  # fmt: skip
        changed += 1
    elif (
        m.presenter
        and before.get(m.presenter) != AttendeeStatus.DECLINED.value
        and after.get(m.presenter) == AttendeeStatus.DECLINED.value
        and _standing(after) >= quorum
    ):
        p.store.record_event(
            now=now, actor="sync", user_id=m.user_id, meeting_id=m.id,
            detail=f"{PRESENTER_DECLINED}: the meeting stands without a presenter",
        )  # fmt: skip
        changed += 1
    accepted = sum(1 for a in after.values() if a == AttendeeStatus.ACCEPTED.value)
    state = m.state
    if (
        state in (_S.BOOKED, _S.TENTATIVE)
        and accepted >= quorum
        and p.store.transition(
            m.id, _S.ACCEPTED, actor="sync", now=now, expect=state, detail="quorum accepted"
        )
    ):
        state, changed = _S.ACCEPTED, changed + 1
    if first.end <= now:
        changed += _end_group(p, m, state, after, first.end, now)
    return changed


def _end_group(
    p: Pipeline,
    m: Meeting,
    state: MeetingState,
    answers: Mapping[str, str],
    end: datetime,
    now: datetime,
) -> int:
    """The slot has passed: completed (a contact per attendee who did not decline) when anyone
    accepted or said maybe, else cancelled."""
    came = {AttendeeStatus.ACCEPTED.value, AttendeeStatus.TENTATIVE.value}
    if not any(a in came for a in answers.values()):
        return int(p.store.transition(
            m.id, _S.CANCELLED, actor="sync", now=now, expect=state,
            detail="nobody accepted the group meeting",
        ))  # fmt: skip
    if not p.store.transition(
        m.id, _S.COMPLETED, actor="sync", now=now, expect=state, detail="meeting took place"
    ):
        return 0
    for email, answer in answers.items():
        if answer != AttendeeStatus.DECLINED.value:
            p.store.record_contact(m.user_id, email, end, ContactSource.GOODWILL)
    return 1
