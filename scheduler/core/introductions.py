"""Introductions through a person in common. Pure.

A stakeholder ``{email: X, status: to_meet, via: Y}`` is never invited cold:

- until a meeting with X has completed (X is in the planner's ``last_contacts``), X gets no
  one-to-one proposal and joins no group;
- the next one-to-one proposal with Y carries a private note for the owner, "ask Y to introduce
  you to X" (:attr:`~scheduler.core.planner.Proposal.owner_note`; never in invite text);
- with ``introductions: {mode: meeting}``, :func:`scheduler.core.groups.plan_groups` proposes a
  three-person meeting (owner, Y, X), group ``"introduction"``, in propose mode;
- once any meeting with X completed, X is an ordinary stakeholder of their tier.

An introduction waits while Y is still to be met themselves (A via B via C: C introduces B
first, then B introduces A).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from scheduler.core.cadence import Due, Skip, SkipCode
from scheduler.core.policy import Policy, Stakeholder

__all__ = [
    "Pending",
    "hold_back_unmet",
    "introduction_notes",
    "is_unmet",
    "pending_introductions",
    "waiting_reason",
]


@dataclass(frozen=True, slots=True)
class Pending:
    """X (``person``) is to be introduced by Y (``via``), who is met already or not to_meet."""

    person: Stakeholder
    via: Stakeholder


def is_unmet(s: Stakeholder, last_contacts: Mapping[str, datetime]) -> bool:
    """Whether ``s`` is ``to_meet`` and no meeting with them has completed yet."""
    return s.status == "to_meet" and s.email.lower() not in last_contacts


def pending_introductions(policy: Policy, last_contacts: Mapping[str, datetime]) -> list[Pending]:
    """The introductions to ask for now, in policy order.

    An unmet X whose ``via`` is itself unmet waits (its own introduction comes first).
    """
    out: list[Pending] = []
    for s in policy.stakeholders:
        if not is_unmet(s, last_contacts) or s.via is None:
            continue
        via = policy.stakeholder(s.via)
        if via is not None and not is_unmet(via, last_contacts):
            out.append(Pending(s, via))
    return out


def introduction_notes(policy: Policy, last_contacts: Mapping[str, datetime]) -> dict[str, str]:
    """Lower-cased e-mail of Y -> the owner's private note for the next one-to-one with Y."""
    asks: dict[str, list[str]] = {}
    for p in pending_introductions(policy, last_contacts):
        asks.setdefault(p.via.email.lower(), []).append(f"{p.person.name} ({p.person.email})")
    return {
        via: f"ask {_first(policy, via)} to introduce you to {' and '.join(names)}"
        for via, names in asks.items()
    }


def waiting_reason(policy: Policy, s: Stakeholder) -> str:
    """Why an unmet ``to_meet`` stakeholder gets no invite of their own."""
    via = policy.stakeholder(s.via) if s.via else None
    who = via.name if via is not None else (s.via or "someone you have in common")
    return f"to meet: waiting for {who} to introduce you; never invited cold"


def _first(policy: Policy, email: str) -> str:
    s = policy.stakeholder(email)
    return policy.person_of(s).first_name if s is not None else email


def hold_back_unmet(
    policy: Policy, due: list[Due], last_contacts: Mapping[str, datetime], skipped: list[Skip]
) -> list[Due]:
    """``due`` without the unmet ``to_meet`` stakeholders, each skipped saying who introduces
    them (no one-to-one is ever proposed to someone not met yet)."""
    keep: list[Due] = []
    for d in due:
        if is_unmet(d.stakeholder, last_contacts):
            reason = waiting_reason(policy, d.stakeholder)
            skipped.append(Skip(d.stakeholder.email.lower(), SkipCode.TO_MEET, reason))
        else:
            keep.append(d)
    return keep
