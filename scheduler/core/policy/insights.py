"""Relationship insights settings: the sources of power a ``power`` tag may name, and when the
report suggests a mentor.

Power tags name one of six sources of power (resource, technical skill, knowledge,
performance, formal position, access) or a name the policy adds with ``power_sources:``. A tag
is compared in lower case with spaces and hyphens read as ``_`` (``Technical skill``,
``technical-skill`` and ``technical_skill`` are one source); the spellings used before the
sources were checked keep working (:data:`POWER_ALIASES`: ``position``, ``expertise``,
``network``…). Tags, like notes and tiers, are private to the owner: only the owner's report
reads them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from scheduler.core.durations import SpecError, SubPath

__all__ = [
    "POWER_ALIASES",
    "POWER_SOURCES",
    "Insights",
    "check_power_sources",
    "known_sources",
    "power_problems",
    "power_source",
]

#: The six sources of power, in the order the report lists them.
POWER_SOURCES: tuple[str, ...] = (
    "resource",
    "technical_skill",
    "knowledge",
    "performance",
    "formal_position",
    "access",
)

#: Other spellings of the six (singular/plural, older tags), after normalising.
POWER_ALIASES: dict[str, str] = {
    "resources": "resource",
    "budget": "resource",
    "technical": "technical_skill",
    "technical_skills": "technical_skill",
    "skill": "technical_skill",
    "skills": "technical_skill",
    "expertise": "technical_skill",
    "position": "formal_position",
    "formal": "formal_position",
    "authority": "formal_position",
    "network": "access",
    "connections": "access",
}

_SEPARATORS = re.compile(r"[\s\-]+")


def _normalise(tag: str) -> str:
    return _SEPARATORS.sub("_", tag.strip().lower())


def known_sources(extra: Iterable[str] = ()) -> tuple[str, ...]:
    """The six sources, then the policy's own names (normalised, without repeats)."""
    out = list(POWER_SOURCES)
    for name in extra:
        name = _normalise(name)
        if name not in out:
            out.append(name)
    return tuple(out)


def power_source(tag: str, extra: Iterable[str] = ()) -> str | None:
    """The source a tag names (one of :func:`known_sources`), or None when it names none."""
    name = _normalise(tag)
    name = POWER_ALIASES.get(name, name)
    return name if name in known_sources(extra) else None


def power_problems(
    at: SubPath, tags: Sequence[str], extra: Iterable[str]
) -> list[tuple[SubPath, str]]:
    """One problem per tag that names no known source, at ``at + (n,)``; the message names
    the six sources, never the tag or the policy's own names (a bad file's issues are
    logged)."""
    problems: list[tuple[SubPath, str]] = []
    names = known_sources(extra)
    # Neither the tag nor the policy's own source names are repeated: a bad file's issues
    # reach the service's log.
    own = "your power_sources" if len(names) > len(POWER_SOURCES) else "yours with power_sources"
    for n, tag in enumerate(tags):
        if power_source(tag, names) is None:
            message = (
                f"this tag names no known source of power; known sources: "
                f"{', '.join(POWER_SOURCES)} (spaces or hyphens for _ are fine), or {own}"
            )
            problems.append(((*at, n), message))
    return problems


def check_power_sources(value: Any) -> tuple[str, ...]:
    """``power_sources:``: extra names of sources, each non-empty text."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple):
        raise SpecError(f"expected a list of names like [network, budget], got {value!r}")
    problems: list[tuple[SubPath, str]] = []
    names: list[str] = []
    for n, item in enumerate(value):
        if not isinstance(item, str) or not _normalise(item):
            problems.append(((n,), f"expected a name like sponsorship, got {item!r}"))
        else:
            names.append(_normalise(item))
    if problems:
        raise SpecError(problems)
    return tuple(dict.fromkeys(names))


class Insights(BaseModel):
    """``insights:``: when the report suggests asking a senior stakeholder to be a mentor.

    Attributes:
        mentor_meetings: completed meetings with the same senior person ...
        mentor_months: ... within this many months (30-day months, counted back from now).
        outside_days: the report's share of meetings outside your department looks back this
            many days.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    mentor_meetings: int = Field(4, ge=1, le=1000)
    mentor_months: int = Field(6, ge=1, le=120)
    outside_days: int = Field(90, ge=1, le=3650)
