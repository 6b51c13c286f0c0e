"""A meeting kind per tier and per stakeholder: ``tiers.NAME.meeting`` and
``stakeholders[i].meeting`` override the policy's ``meeting:`` field by field.

The effective meeting of a stakeholder is ``meeting:`` with the tier's override merged over it,
then the stakeholder's own (:func:`merge_meeting`; :meth:`Policy.meeting_of
<scheduler.core.policy.schema.Policy.meeting_of>` is the accessor). A field left out (or null)
keeps the value below it. A change of ``kind`` while the title is still the built-in one gets
the built-in title of its kind ("Lunch: …" instead of "Coffee: …").
The fit rules of ``meeting:`` (a preferred window and a working-hours range long enough, a lunch
inside ``availability.lunch_window``) apply to every effective meeting, reported at the
override's own line (:func:`fit_problems`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, field_validator

from scheduler.core.durations import SpecError, SubPath, format_duration, format_time_ranges
from scheduler.core.policy.fields import (
    _TITLE_PLACEHOLDERS,
    MeetingLength,
    _all_ranges,
    _check_template,
    _fits,
)

if TYPE_CHECKING:
    from scheduler.core.model import WeeklyHours
    from scheduler.core.policy.people import Tier
    from scheduler.core.policy.schema import Availability, MeetingDefaults

__all__ = [
    "DEFAULT_TITLES",
    "MeetingOverride",
    "fit_problems",
    "merge_meeting",
    "tier_meeting_problems",
]

Kind = Literal["coffee", "lunch"]
Video = Literal["meet", "teams", "none"]

#: The title of each kind when no ``title`` is written.
DEFAULT_TITLES: dict[str, str] = {
    "coffee": "Coffee: {owner.first_name} / {stakeholder.first_name}",
    "lunch": "Lunch: {owner.first_name} / {stakeholder.first_name}",
}


class MeetingOverride(BaseModel):
    """Fields of ``meeting:`` a tier or stakeholder changes; the rest come from ``meeting:``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Kind | None = None
    duration: MeetingLength | None = None
    location: str | None = None
    video: Video | None = None
    title: str | None = None
    description: str | None = None

    @field_validator("title")
    @classmethod
    def _title(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.strip():
            raise SpecError("expected a non-empty title like 'Lunch: {owner.first_name}'")
        return _check_template(value, _TITLE_PLACEHOLDERS)

    @field_validator("description")
    @classmethod
    def _description(cls, value: str | None) -> str | None:
        return None if value is None else _check_template(value, _TITLE_PLACEHOLDERS | {"reason"})


def merge_meeting(default: MeetingDefaults, *overrides: MeetingOverride | None) -> MeetingDefaults:
    """``default`` (a ``MeetingDefaults``) with each override's given fields merged over it,
    in order (the tier's, then the stakeholder's)."""
    given = [o for o in overrides if o is not None]
    if not given:
        return default
    update: dict[str, Any] = {}
    for override in given:
        for name in MeetingOverride.model_fields:
            value = getattr(override, name)
            if value is not None:
                update[name] = value
    kind = update.get("kind", default.kind)
    if "title" not in update and default.title in DEFAULT_TITLES.values():
        update["title"] = DEFAULT_TITLES.get(kind, default.title)
    return default.model_copy(update=update)


def fit_problems(
    duration: timedelta,
    kind: str,
    availability: Availability,
    *,
    at: SubPath,
    hours: WeeklyHours | None = None,
) -> list[tuple[SubPath, str]]:
    """Why a ``duration`` meeting of ``kind`` cannot be placed, each reported at ``at``.

    ``hours`` are a stakeholder's own working hours, when the policy gives them.
    """
    length = format_duration(duration)
    where = at
    problems: list[tuple[SubPath, str]] = []
    if availability.windows and not _fits(duration, availability.windows):
        problems.append(
            (
                where,
                f"a {length} meeting is longer than every preferred window "
                f"({format_time_ranges(availability.windows)}); shorten this duration or widen "
                "availability.windows",
            )
        )
    if not _fits(duration, _all_ranges(availability.working_hours)):
        problems.append(
            (
                where,
                f"a {length} meeting is longer than every working-hours range; shorten this "
                "duration or lengthen availability.working_hours",
            )
        )
    if hours is not None and not _fits(duration, _all_ranges(hours)):
        problems.append(
            (
                where,
                f"a {length} meeting fits in none of this stakeholder's working-hours ranges; "
                "shorten this duration or lengthen their working_hours",
            )
        )
    if kind == "lunch" and duration > availability.lunch_window.duration:
        problems.append(
            (
                where,
                f"a {length} lunch does not fit the lunch window {availability.lunch_window}; "
                "shorten this duration or widen availability.lunch_window",
            )
        )
    return problems


def tier_meeting_problems(
    tiers: Mapping[str, Tier], data: Mapping[str, Any]
) -> list[tuple[SubPath, str]]:
    """The fit rules for each tier whose meeting changes ``kind`` or ``duration``, given the
    policy fields validated so far (``availability`` and ``meeting``)."""
    availability: Availability | None = data.get("availability")
    meeting: MeetingDefaults | None = data.get("meeting")
    if availability is None or meeting is None:
        return []
    problems: list[tuple[SubPath, str]] = []
    for name, tier in tiers.items():
        own = tier.meeting
        if own is None or (own.duration is None and own.kind is None):
            continue
        at: SubPath = (name, "meeting", "kind" if own.duration is None else "duration")
        effective = merge_meeting(meeting, own)
        problems.extend(fit_problems(effective.duration, effective.kind, availability, at=at))
    return problems
