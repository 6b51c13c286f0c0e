"""The words in an invite: a friendly title and body with a reason to meet.

Only what the stakeholder may see goes in: names, their department, the place. Policy notes,
tiers, "power" tags and seniority never appear (tests pin this).
"""

from __future__ import annotations

from scheduler.core.model import Person
from scheduler.core.policy import Policy, Stakeholder

__all__ = ["invite_text"]


def _reason(stakeholder: Stakeholder) -> str:
    if stakeholder.department:
        return f"what's new in {stakeholder.department} and what you're working on"
    return "what you're working on these days"


def invite_text(policy: Policy, stakeholder: Stakeholder, person: Person) -> tuple[str, str]:
    """(title, description) for an invite from ``policy.owner`` to ``stakeholder``."""
    owner = policy.owner.person
    meeting = policy.meeting_of(stakeholder)  # the tier's or their own kind, place, title
    title = meeting.render_title(owner, person)
    reason = _reason(stakeholder)
    if meeting.description is not None:
        return title, meeting.render_description(owner, person, reason=reason)
    what = "lunch" if meeting.kind == "lunch" else "a coffee"
    lines = [
        f"Hi {person.first_name},",
        "",
        f"It would be great to catch up over {what} — I'd love to hear {reason}, "
        "and to share what's keeping me busy.",
    ]
    if meeting.location:
        lines += ["", f"Where: {meeting.location}"]
    lines += [
        "",
        "If the time doesn't suit, decline or suggest another — no hard feelings.",
        "",
        owner.first_name,
        "",
        "— scheduled with goodwill",
    ]
    return title, "\n".join(lines)
