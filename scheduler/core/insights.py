"""Relationship insights for the owner's report (pure): which sources of power the list covers,
how many meetings crossed the owner's department, and whom to consider as a mentor.

Everything here reads private policy fields (``power``, ``senior``, departments) and goes only
into the owner's own report (:mod:`scheduler.core.report`): never into invites, logs or
metrics.

- **power coverage**: per source (:func:`scheduler.core.policy.insights.known_sources`), the
  stakeholders whose ``power`` tags name it; a source nobody covers gives the warning
  ``nobody in your list covers: resource`` (once any stakeholder has a tag: a list without
  tags says nothing about power).
- **outside your department**: of the ``completed`` meetings that ended in the last
  ``insights.outside_days`` days (default 90) with a stakeholder of the policy, the share with
  someone whose ``department`` is not ``owner.department`` (compared without case). Meetings
  with someone of no department are counted as ``unknown`` and left out of the share; without
  ``owner.department`` there is no share.
- **mentor suggestions**: a ``senior`` stakeholder with at least ``insights.mentor_meetings``
  completed meetings (default 4) that ended in the last ``insights.mentor_months`` months
  (default 6, 30-day months): "consider asking X to be your mentor". Only a suggestion: nothing
  changes in the policy. People in a tier whose name says mentor are not suggested again.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from scheduler.core.policy import Policy
from scheduler.core.policy.insights import known_sources, power_source
from scheduler.core.states import MeetingState

__all__ = [
    "Insights",
    "MentorSuggestion",
    "OutsideShare",
    "SourceCoverage",
    "build_insights",
]

#: A month, for ``insights.mentor_months``.
MONTH = timedelta(days=30)


class _Meeting(Protocol):
    @property
    def stakeholder_email(self) -> str: ...
    @property
    def end(self) -> datetime: ...
    @property
    def state(self) -> MeetingState: ...


@dataclass(frozen=True, slots=True)
class SourceCoverage:
    """The stakeholders (e-mails) whose power tags name ``source``."""

    source: str
    stakeholders: tuple[str, ...]

    @property
    def warning(self) -> str | None:
        label = self.source.replace("_", " ")
        return None if self.stakeholders else f"nobody in your list covers: {label}"


@dataclass(frozen=True, slots=True)
class OutsideShare:
    """Completed meetings of the last ``days`` days, and how many crossed ``department``."""

    department: str | None
    days: int
    meetings: int
    outside: int
    unknown: int

    @property
    def share(self) -> float | None:
        """outside / (meetings - unknown); None without a department or a meeting to count."""
        known = self.meetings - self.unknown
        if self.department is None or known == 0:
            return None
        return round(self.outside / known, 3)


@dataclass(frozen=True, slots=True)
class MentorSuggestion:
    email: str
    name: str
    completed: int
    months: int

    @property
    def text(self) -> str:
        return (
            f"consider asking {self.name} ({self.email}) to be your mentor: {self.completed} "
            f"meetings in the last {self.months} months"
        )


@dataclass(frozen=True, slots=True)
class Insights:
    power: tuple[SourceCoverage, ...]
    outside: OutsideShare
    mentors: tuple[MentorSuggestion, ...]

    @property
    def tagged(self) -> bool:
        """Whether any stakeholder has a power tag (without any, coverage is unknown)."""
        return any(c.stakeholders for c in self.power)

    @property
    def warnings(self) -> tuple[str, ...]:
        """One per source nobody covers; none while no stakeholder is tagged at all."""
        if not self.tagged:
            return ()
        return tuple(w for c in self.power if (w := c.warning) is not None)


def build_insights(policy: Policy, *, now: datetime, meetings: Iterable[_Meeting]) -> Insights:
    """The insights of ``policy``'s owner from their meetings (any state; completed count)."""
    completed = [m for m in meetings if m.state == MeetingState.COMPLETED and m.end <= now]
    return Insights(
        power=_power(policy),
        outside=_outside(policy, now, completed),
        mentors=_mentors(policy, now, completed),
    )


def _power(policy: Policy) -> tuple[SourceCoverage, ...]:
    names = known_sources(policy.power_sources)
    by_source: dict[str, list[str]] = {name: [] for name in names}
    for s in policy.stakeholders:
        for tag in s.power:
            source = power_source(tag, names)
            if source is not None and s.email not in by_source[source]:
                by_source[source].append(s.email)
    return tuple(SourceCoverage(name, tuple(by_source[name])) for name in names)


def _outside(policy: Policy, now: datetime, completed: Sequence[_Meeting]) -> OutsideShare:
    days = policy.insights.outside_days
    since = now - timedelta(days=days)
    own = policy.owner.department
    own_key = own.strip().casefold() if own else None
    counted = outside = unknown = 0
    for m in completed:
        s = policy.stakeholder(m.stakeholder_email)
        if s is None or m.end < since:
            continue
        counted += 1
        if not s.department:
            unknown += 1
        elif own_key is not None and s.department.strip().casefold() != own_key:
            outside += 1
    return OutsideShare(own, days, counted, outside, unknown)


def _mentors(
    policy: Policy, now: datetime, completed: Sequence[_Meeting]
) -> tuple[MentorSuggestion, ...]:
    settings = policy.insights
    since = now - settings.mentor_months * MONTH
    out: list[MentorSuggestion] = []
    for s in policy.stakeholders:
        if not s.senior or "mentor" in s.tier.lower():
            continue
        count = sum(
            1 for m in completed if m.stakeholder_email.lower() == s.email and m.end >= since
        )
        if count >= settings.mentor_meetings:
            out.append(MentorSuggestion(s.email, s.name, count, settings.mentor_months))
    return tuple(out)
