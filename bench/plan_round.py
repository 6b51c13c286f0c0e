"""The planning round both API-call benchmarks run: the owner's policy and past meetings.

The benchmarks' owner is Alex (Europe/London); every stakeholder is a peer met every 4 weeks over
a 14-day horizon, and the owner's past meetings lie 5 to 26 weeks back (inside the 26 weeks of
history a round reads, older than the cadence), so every stakeholder is due.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from scheduler.core.model import Person
from scheduler.core.policy import Policy, load_policy_text

__all__ = ["past_meetings", "policy_for"]


def policy_for(owner: Person, provider: str, people: list[Person]) -> Policy:
    """The owner's policy: every stakeholder a peer met every 4 weeks, a 14-day horizon."""
    lines = "".join(
        f"  - {{email: {p.email}, name: {p.name}, tier: peer, timezone: {p.timezone}}}\n"
        for p in people
    )
    text = (
        f"owner: {{email: {owner.email}, name: {owner.name}, timezone: {owner.timezone}}}\n"
        f"calendar: {{provider: {provider}}}\n"
        "meeting: {kind: coffee, duration: 30m}\n"
        "availability:\n"
        '  working_hours: {mon-fri: "09:00-17:00"}\n'
        "  horizon: 14d\n"
        "tiers:\n"
        "  peer: {every: 4w, mode: propose}\n"
        f"stakeholders:\n{lines}"
        "allowed_domains: [corp.example]\n"
    )
    return load_policy_text(text, source="bench.yaml", fmt="yaml")


def past_meetings(rng: random.Random, start: datetime, per_week: int) -> list[datetime]:
    """Start times of the owner's past meetings: weeks 5-26 before ``start``, working hours."""
    return [
        start - timedelta(weeks=week) + timedelta(days=rng.randrange(5), hours=rng.randrange(8, 17))
        for week in range(5, 27)
        for _ in range(per_week)
    ]
