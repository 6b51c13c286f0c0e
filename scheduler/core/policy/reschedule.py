"""What goodwill does when a booked coffee gets a conflict: ``reschedule:`` in the policy.

A booked, tentative or accepted meeting still ahead is *conflicted* when an event that is busy
under that person's busy rules now overlaps it, for the owner or the stakeholder (our own event
never counts). Then, by mode:

- ``auto``: find a new slot under the same rules and caps and move the same event;
- ``ask``: propose a new time linked to the meeting; approving it moves the event;
- ``notify``: tell the owner and leave the meeting as it is.

Within ``not_within`` of the start, only ``notify``: nobody's calendar moves at the last minute.
``reschedule`` sits at the top level of the policy and may be overridden per tier; senior
stakeholders and the ``mentor`` tier default to ``ask``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from scheduler.core.policy.fields import Duration

if TYPE_CHECKING:
    from scheduler.core.policy.schema import Policy, Stakeholder

__all__ = ["DEFAULT_NOT_WITHIN", "RescheduleMode", "RescheduleRule", "reschedule_rule"]

RescheduleMode = Literal["ask", "auto", "notify"]

#: Within this of its start, a conflict on a meeting is only reported, unless a policy says
#: otherwise (``reschedule.not_within``).
DEFAULT_NOT_WITHIN = timedelta(hours=20)

#: Tiers whose people are asked before their coffee moves, unless the tier says otherwise.
ASK_FIRST_TIERS = frozenset({"mentor"})


class RescheduleRule(BaseModel):
    """``reschedule: {mode: ask | auto | notify, not_within: 20h}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: RescheduleMode = "auto"
    not_within: Duration = Field(default=DEFAULT_NOT_WITHIN)


def reschedule_rule(policy: Policy, s: Stakeholder) -> RescheduleRule:
    """The rule for ``s``: the tier's own ``reschedule`` wins; seniors and mentors ask first;
    else the policy's top-level rule."""
    tier = policy.tiers.get(s.tier)
    if tier is not None and tier.reschedule is not None:
        return tier.reschedule
    top = policy.reschedule
    if s.senior or s.tier in ASK_FIRST_TIERS:
        return top.model_copy(update={"mode": "ask"}) if top.mode == "auto" else top
    return top
