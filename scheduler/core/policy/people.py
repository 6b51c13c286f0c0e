"""The people of a policy: stakeholders, their defaults, the tiers they belong to, and the
checks that span them (tiers defined, domains allowed, no duplicates, aliases).

Split from :mod:`scheduler.core.policy.schema`, which re-exports every name.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from scheduler.core.durations import SpecError, SubPath, format_duration
from scheduler.core.policy.fields import (
    Cadence,
    Email,
    Hours,
    Mode,
    TimeZone,
    _all_ranges,
    _as_tuple_of_text,
    _domain,
    _fits,
    _outside,
)
from scheduler.core.policy.groups import via_problems
from scheduler.core.policy.insights import power_problems
from scheduler.core.policy.meetings import MeetingOverride, fit_problems, merge_meeting
from scheduler.core.policy.reschedule import RescheduleRule

if TYPE_CHECKING:
    from scheduler.core.policy.schema import Availability, MeetingDefaults, Owner

__all__ = [
    "Section",
    "Stakeholder",
    "StakeholderDefaults",
    "Tier",
    "stakeholder_problems",
    "valid_stakeholder",
]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StakeholderDefaults(Section):
    """Fallbacks for stakeholders whose entry does not say."""

    timezone: TimeZone | None = None
    working_hours: Hours | None = None


class Tier(Section):
    """How often to meet everyone in the tier, and whether booking needs approval."""

    every: Cadence
    #: Late only after this long (planning still starts at ``every``); None: at ``every``.
    at_most: Cadence | None = None
    mode: Mode = "propose"
    #: What to do when a booked coffee in this tier gets a conflict (None: the policy's rule).
    reschedule: RescheduleRule | None = None
    #: This tier's meeting, merged field by field over the policy's ``meeting:``.
    meeting: MeetingOverride | None = None

    @model_validator(mode="after")
    def _at_most_after_every(self) -> Tier:
        if self.at_most is not None and self.at_most < self.every:
            raise SpecError(
                [
                    (
                        ("at_most",),
                        f"at_most ({format_duration(self.at_most)}) is shorter than every "
                        f"({format_duration(self.every)}); make at_most at least "
                        f"{format_duration(self.every)} or leave it out",
                    )
                ]
            )
        return self

    @property
    def late_after(self) -> timedelta:
        """How long after the last meeting someone of this tier counts as late."""
        return self.at_most if self.at_most is not None else self.every


class Stakeholder(Section):
    """One person the owner wants to keep in touch with.

    ``notes``, ``tier`` and ``power`` are private to the owner and never go into invites.
    """

    email: Email
    name: str
    tier: str
    timezone: TimeZone | None = None
    working_hours: Hours | None = None
    department: str | None = None
    power: tuple[str, ...] = ()
    senior: bool = False
    paused_until: date | None = None
    mode: Mode | None = None
    notes: str | None = None
    #: Other addresses this person answers invitations from (a personal account, an old
    #: address): an e-mailed reply from one of them is applied as theirs.
    aliases: tuple[Email, ...] = ()
    #: This person's meeting, merged over the tier's and the policy's ``meeting:``.
    meeting: MeetingOverride | None = None
    #: ``to_meet``: not met yet, never invited cold; ``via`` (another stakeholder) introduces
    #: them (:mod:`scheduler.core.policy.groups`, :mod:`scheduler.core.introductions`).
    status: Literal["active", "to_meet"] = "active"
    via: Email | None = None

    _power_list = field_validator("power", mode="before")(_as_tuple_of_text)
    _alias_list = field_validator("aliases", mode="before")(_as_tuple_of_text)


def valid_stakeholder(raw: Any) -> Stakeholder | None:
    try:
        return Stakeholder.model_validate(raw)
    except ValidationError:
        return None


def stakeholder_problems(
    people: list[tuple[int, Stakeholder]], data: Mapping[str, Any]
) -> SpecError | None:
    """Checks across fields, given the policy fields validated so far (``info.data``)."""
    tiers: dict[str, Tier] | None = data.get("tiers")
    domains: list[str] | None = data.get("allowed_domains")
    owner: Owner | None = data.get("owner")
    meeting: MeetingDefaults | None = data.get("meeting")
    problems: list[tuple[SubPath, str]] = []
    first_seen: dict[str, int] = {}
    for index, person in people:
        if tiers is not None and person.tier not in tiers:
            problems.append(((index, "tier"), _undefined_tier(person.tier, tiers)))
        if domains and _domain(person.email) not in domains:
            problems.append(((index, "email"), _outside(person.email, domains, "fix the address")))
        if owner is not None and person.email == owner.email:
            message = f"{person.email} is the owner's own address; remove this stakeholder"
            problems.append(((index, "email"), message))
        if person.email in first_seen:
            message = (
                f"{person.email} is listed twice (first as "
                f"stakeholders[{first_seen[person.email]}]); keep one entry"
            )
            problems.append(((index, "email"), message))
        else:
            first_seen[person.email] = index
        problems.extend(_alias_problems(index, person, people, domains, owner))
        if "power_sources" in data:
            problems.extend(power_problems((index, "power"), person.power, data["power_sources"]))
        tier = tiers.get(person.tier) if tiers else None
        if person.meeting is not None or (tier is not None and tier.meeting is not None):
            problems.extend(_meeting_problems(index, person, data))
        elif (
            meeting is not None
            and tiers is not None  # when tiers failed, a tier's meeting length is unknown
            and person.working_hours is not None
            and not _fits(meeting.duration, _all_ranges(person.working_hours))
        ):
            message = (
                f"a {format_duration(meeting.duration)} meeting fits in none of these "
                f"working-hours ranges; lengthen them or shorten meeting.duration"
            )
            problems.append(((index, "working_hours"), message))
    problems.extend(via_problems(people))
    return SpecError(problems) if problems else None


def _meeting_problems(
    index: int, person: Stakeholder, data: Mapping[str, Any]
) -> list[tuple[SubPath, str]]:
    """The fit rules for a stakeholder whose meeting differs from ``meeting:``."""
    meeting: MeetingDefaults | None = data.get("meeting")
    availability: Availability | None = data.get("availability")
    tier = (data.get("tiers") or {}).get(person.tier)
    if meeting is None or availability is None:
        return []
    effective = merge_meeting(meeting, tier.meeting if tier else None, person.meeting)
    own = person.meeting
    if own is not None and own.duration is not None:
        at: SubPath = (index, "meeting", "duration")
        hours = person.working_hours
        return fit_problems(effective.duration, effective.kind, availability, at=at, hours=hours)
    problems: list[tuple[SubPath, str]] = []
    if own is not None and own.kind is not None:
        problems = fit_problems(
            effective.duration, effective.kind, availability, at=(index, "meeting", "kind")
        )
    if tier is not None and tier.meeting is not None and tier.meeting.duration is not None:
        source = f"tiers.{person.tier}.meeting.duration"
    elif "tiers" in data:
        source = "meeting.duration"
    else:
        return problems  # tiers failed: which length applies is unknown until they are fixed
    # The tier's meeting was checked with the tier: only the person's own hours are left.
    if person.working_hours is not None and not _fits(
        effective.duration, _all_ranges(person.working_hours)
    ):
        message = (
            f"a {format_duration(effective.duration)} meeting fits in none of these "
            f"working-hours ranges; lengthen them or shorten {source}"
        )
        problems.append(((index, "working_hours"), message))
    return problems


#: The most aliases one stakeholder may list.
MAX_ALIASES = 20


def _alias_problems(
    index: int,
    person: Stakeholder,
    people: list[tuple[int, Stakeholder]],
    domains: list[str] | None,
    owner: Owner | None,
) -> list[tuple[SubPath, str]]:
    """An alias answers for ``person`` only: it must be in the allowed domains and belong to
    nobody else in the file (the owner, another stakeholder, or another's alias)."""
    problems: list[tuple[SubPath, str]] = []
    if len(person.aliases) > MAX_ALIASES:
        problems.append(
            (
                (index, "aliases"),
                f"{len(person.aliases)} aliases; list at most {MAX_ALIASES} addresses",
            )
        )
    for n, alias in enumerate(person.aliases):
        at: SubPath = (index, "aliases", n)
        if domains and _domain(alias) not in domains:
            problems.append((at, _outside(alias, domains, "remove this alias")))
        elif alias == person.email or alias in person.aliases[:n]:
            problems.append((at, f"{alias} is listed already for this stakeholder; remove it"))
        elif owner is not None and alias == owner.email:
            problems.append((at, f"{alias} is the owner's own address; remove this alias"))
        else:
            other = next(
                (
                    (i, o)
                    for i, o in people
                    if i != index and (alias == o.email or alias in o.aliases)
                ),
                None,
            )
            if other is not None:
                problems.append(
                    (
                        at,
                        f"{alias} belongs to stakeholders[{other[0]}] ({other[1].email}); an "
                        "address may answer for one person only, remove it here or there",
                    )
                )
    return problems


def _undefined_tier(name: str, tiers: Mapping[str, Tier]) -> str:
    if not tiers:
        return (
            f"unknown tier '{name}'; no tiers are defined — add a tiers: section like "
            f"{{peer: {{every: 8w}}}}"
        )
    close = difflib.get_close_matches(name, list(tiers), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"unknown tier '{name}'; defined tiers: {', '.join(tiers)}{hint}"
