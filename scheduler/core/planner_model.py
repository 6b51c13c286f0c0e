"""What the planner takes and gives: meetings already booked, other owners' load, the plan.

:mod:`scheduler.core.planner` re-exports every name here; import them from there.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from scheduler.core.cadence import Skip
from scheduler.core.groups import GroupProposal, GroupSkip

__all__ = ["ALTERNATIVES", "ExistingMeeting", "Plan", "Proposal", "StakeholderLoad"]

#: How many other slots a proposal keeps for the owner to choose from.
ALTERNATIVES = 3


@dataclass(frozen=True, slots=True)
class ExistingMeeting:
    """A goodwill meeting already in the store (counts towards caps; blocks its slot)."""

    stakeholder: str
    start: datetime
    end: datetime
    open: bool = True


@dataclass(frozen=True, slots=True)
class StakeholderLoad:
    """What the people being asked already have from goodwill, across every owner.

    Attributes:
        weekly_cap: at most this many goodwill coffees per stakeholder per week (ISO week in
            the stakeholder's zone), whoever the owners are.
        meetings: lower-cased e-mail -> starts of the goodwill meetings other owners have with
            that person (open, booked or held).
        invited_today: lower-cased e-mails who got a new goodwill invite from another owner in
            the last day (a senior is asked at most once a day).
    """

    weekly_cap: int = 2
    meetings: Mapping[str, Sequence[datetime]] = field(default_factory=dict)
    invited_today: Collection[str] = ()


@dataclass(frozen=True, slots=True)
class Proposal:
    """A slot to propose. ``start``/``end`` are aware UTC."""

    stakeholder: str
    name: str
    tier: str
    start: datetime
    end: datetime
    kind: str
    mode: str
    reason: str
    #: Up to :data:`ALTERNATIVES` other slots under the same rules, other days first.
    alternatives: tuple[tuple[datetime, datetime], ...] = ()
    #: Private to the owner ("ask Y to introduce you to X"); never in invite text.
    owner_note: str = ""


@dataclass(frozen=True, slots=True)
class Plan:
    proposals: tuple[Proposal, ...] = ()
    skipped: tuple[Skip, ...] = ()
    notes: tuple[str, ...] = field(default=())
    #: Group meetings and introductions (:mod:`scheduler.core.groups`), always propose mode.
    group_proposals: tuple[GroupProposal, ...] = ()
    group_skipped: tuple[GroupSkip, ...] = ()

    def as_json(self) -> dict[str, list[dict[str, object]]]:
        """The ``goodwill plan --json`` shape (a public contract: extend, never rename)."""
        return {
            "proposals": [
                {
                    "stakeholder": p.stakeholder,
                    "start": _z(p.start),
                    "end": _z(p.end),
                    "kind": p.kind,
                    "mode": p.mode,
                    "reason": p.reason,
                    "alternatives": [[_z(a), _z(b)] for a, b in p.alternatives],
                    # private to the owner ("" when none); the JSON is the owner's own output
                    "owner_note": p.owner_note,
                }
                for p in self.proposals
            ],
            "skipped": [
                {"stakeholder": s.stakeholder, "reason": s.reason, "code": s.code.value}
                for s in self.skipped
            ],
            "group_proposals": [g.as_json() for g in self.group_proposals],
            "group_skipped": [g.as_json() for g in self.group_skipped],
        }


def _z(moment: datetime) -> str:
    return moment.astimezone(ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%M:%SZ")
