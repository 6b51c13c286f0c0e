"""The ``groups:`` and ``introductions:`` sections of a policy, and the ``via`` checks.

A *group* is a recurring meeting of the owner with several members (a lunch with a rotating
presenter)::

    groups:
      - name: platform-lunch
        members: [maria@corp.example, jon@corp.example, omar@corp.example, raj@corp.example]
        every: 4w
        kind: lunch
        duration: 60m
        size: "3..6"          # attendees besides the owner; "4" means exactly 4
        quorum: 0.6           # share of the invited attendees who must be free
        presenter: rotate     # or none
        avoid_together: [[maria@corp.example, jon@corp.example]]
        mix_departments: 2

*Introductions*: a stakeholder ``{status: to_meet, via: y@…}`` is never invited cold; the owner
is reminded to ask Y at their next one-to-one, and with ``introductions: {mode: meeting}`` a
three-person meeting (owner, Y, X) is proposed.

Checks that need only one group run in :class:`Group`; those that need the rest of the policy
(members known, the owner not a member, lunch fits the lunch window, unique names) in
:func:`group_problems`, called by :class:`~scheduler.core.policy.schema.Policy`. Every problem
names its sub-path, so the loader reports ``FILE:LINE: groups[0].members[2]: …``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    model_validator,
)

from scheduler.core.durations import SpecError, SubPath, format_duration
from scheduler.core.policy.fields import Cadence, Email, MeetingLength, _domain, _outside
from scheduler.core.policy.meetings import fit_problems

if TYPE_CHECKING:
    from scheduler.core.policy.people import Stakeholder
    from scheduler.core.policy.schema import Availability

__all__ = [
    "INTRODUCTION",
    "MAX_GROUPS",
    "MAX_GROUP_SIZE",
    "Group",
    "Introductions",
    "SizeRange",
    "cross_problems",
    "group_problems",
    "introduction_problems",
    "member_problems",
    "salvage_group",
    "unparsed_group_problems",
    "via_problems",
]

#: The ``group`` of an introduction meeting; no group may take this name.
INTRODUCTION = "introduction"
#: Most attendees one group meeting may invite (calendar providers limit attendee counts).
MAX_GROUP_SIZE = 50
#: Most entries under ``groups``.
MAX_GROUPS = 50
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _.-]{0,79}")
#: Validation context key: build a :class:`Group` without raising its own problems.
_LENIENT = "goodwill_lenient_group"
#: Which checks of a group read which fields: a field that failed to parse silences them.
_READS: dict[str, frozenset[str]] = {
    "name": frozenset({"name"}),
    "members": frozenset({"members"}),
    "avoid_together": frozenset({"avoid_together", "members"}),
    "quorum": frozenset({"quorum"}),
    "size": frozenset({"size", "members"}),
    "duration": frozenset({"duration", "kind"}),
}


class Section(BaseModel):
    """As :class:`scheduler.core.policy.people.Section` (which imports this module)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True, slots=True)
class SizeRange:
    """How many attendees (the owner not counted) one meeting of a group invites."""

    low: int
    high: int

    def __str__(self) -> str:
        return str(self.low) if self.low == self.high else f"{self.low}..{self.high}"


def _size(value: Any) -> SizeRange:
    if isinstance(value, SizeRange):
        return value
    example = f'like "4..8" (4 to 8 attendees besides you) or 4, at most {MAX_GROUP_SIZE}'
    if isinstance(value, int) and not isinstance(value, bool):
        low = high = value
    elif isinstance(value, str) and re.fullmatch(r"\s*\d{1,3}\s*(\.\.\s*\d{1,3}\s*)?", value):
        parts = [int(p) for p in value.split("..")]
        low, high = parts[0], parts[-1]
    else:
        raise SpecError(f"expected a size {example}, got {value!r}")
    if not 1 <= low <= high <= MAX_GROUP_SIZE:
        raise SpecError(f"expected a size {example} with the smaller number first, got {value!r}")
    return SizeRange(low, high)


#: ``size: "4..8"`` or ``size: 4``, attendees besides the owner.
GroupSize = Annotated[
    SizeRange,
    PlainValidator(_size),
    PlainSerializer(str, return_type=str, when_used="json"),
    WithJsonSchema({"type": ["string", "integer"], "examples": ["4..8", 4]}),
]


class Group(Section):
    """One recurring group meeting. Members are stakeholders or addresses in allowed domains."""

    name: str
    members: tuple[Email, ...]
    every: Cadence = timedelta(weeks=4)
    kind: Literal["coffee", "lunch"] = "lunch"
    duration: MeetingLength = timedelta(minutes=60)
    size: GroupSize = SizeRange(2, 8)
    quorum: float = Field(0.6, allow_inf_nan=False)
    presenter: Literal["rotate", "none"] = "rotate"
    avoid_together: tuple[tuple[Email, ...], ...] = ()
    mix_departments: int = Field(1, ge=1, le=MAX_GROUP_SIZE)
    location: str | None = None
    video: Literal["meet", "teams", "none"] = "none"

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> Group:
        if info.context and info.context.get(_LENIENT):
            return self  # salvage_group reports these problems itself
        problems = self.own_problems()
        if problems:
            raise SpecError(problems)
        return self

    def own_problems(self) -> list[tuple[SubPath, str]]:
        """The checks that need only this group, each at its sub-path within the group."""
        problems: list[tuple[SubPath, str]] = []
        if not _NAME.fullmatch(self.name):
            problems.append(
                (("name",), f"expected a short name like platform-lunch, got {self.name!r}")
            )
        elif self.name.lower() == INTRODUCTION:
            problems.append((("name",), f"'{INTRODUCTION}' is reserved; choose another name"))
        first: dict[str, int] = {}
        for n, email in enumerate(self.members):
            if email in first:
                problems.append(
                    (
                        ("members", n),
                        f"{email} is listed twice (first as members[{first[email]}]); keep one",
                    )
                )
            first.setdefault(email, n)
        problems.extend(self._pair_problems(set(first)))
        if not 0 < self.quorum <= 1:
            problems.append(
                (
                    ("quorum",),
                    f"quorum is the share of invited attendees who must be free, above 0 and at "
                    f"most 1 (like 0.6), got {self.quorum}",
                )
            )
        if len(first) < self.size.low:
            problems.append(
                (
                    ("size",),
                    f"size {self.size} needs at least {self.size.low} members but the group has "
                    f"{len(first)}; add members or lower the size",
                )
            )
        return problems

    def _pair_problems(self, members: set[str]) -> list[tuple[SubPath, str]]:
        problems: list[tuple[SubPath, str]] = []
        for i, pair in enumerate(self.avoid_together):
            if len(pair) != 2 or pair[0] == pair[1]:
                message = "expected a pair of two different members, like [a@corp.example, b@…]"
                problems.append((("avoid_together", i), f"{message}, got {list(pair)}"))
                continue
            for n, email in enumerate(pair):
                if email not in members:
                    problems.append(
                        (
                            ("avoid_together", i, n),
                            f"{email} is not a member of this group; a pair to keep apart must "
                            f"be two of its members (add them to members or fix the address)",
                        )
                    )
        return problems

    def keeps_apart(self, a: str, b: str) -> bool:
        """Whether ``a`` and ``b`` (lower-case) are never invited together."""
        return any({a, b} == set(pair) for pair in self.avoid_together)


class Introductions(Section):
    """``introductions:``: how a stakeholder ``status: to_meet`` is met through ``via``.

    Attributes:
        mode: ``note`` reminds the owner at the next one-to-one with the person in common;
            ``meeting`` also proposes a three-person meeting (always propose mode).
        kind, duration: of that meeting.
    """

    mode: Literal["note", "meeting"] = "note"
    kind: Literal["coffee", "lunch"] = "coffee"
    duration: MeetingLength = timedelta(minutes=30)


def introduction_problems(
    value: Introductions, availability: Availability | None
) -> list[tuple[SubPath, str]]:
    """In ``mode: meeting``, the three-person meeting must fit like any other: working hours,
    preferred windows, a lunch in the lunch window (``mode: note`` proposes no meeting)."""
    if value.mode != "meeting" or availability is None:
        return []
    return fit_problems(value.duration, value.kind, availability, at=("duration",))


def group_problems(groups: Sequence[Group], data: Mapping[str, Any]) -> SpecError | None:
    """Checks across the policy, given the fields validated so far (``info.data``)."""
    problems = cross_problems([(i, g, frozenset()) for i, g in enumerate(groups)], data)
    for index, group in enumerate(groups):
        problems.extend(member_problems(index, group.members, data))
    return SpecError(problems) if problems else None


def cross_problems(
    entries: Sequence[tuple[int, Group, frozenset[str]]], data: Mapping[str, Any]
) -> list[tuple[SubPath, str]]:
    """Unique names, and each group's meeting fitting the policy's hours (working hours,
    preferred windows, a lunch in the lunch window), for ``(index, group, unparsed fields)``:
    a check that reads a field which failed to parse is left out."""
    availability: Availability | None = data.get("availability")
    problems: list[tuple[SubPath, str]] = []
    count = max((i for i, _, _ in entries), default=-1) + 1
    if count > MAX_GROUPS:
        problems.append(((), f"{count} groups; list at most {MAX_GROUPS}"))
    names: dict[str, int] = {}
    for index, group, bad in entries:
        if "name" not in bad:
            key = group.name.lower()
            if key in names:
                message = f"group name {group.name!r} is used by groups[{names[key]}] too"
                problems.append(((index, "name"), message + "; rename one"))
            names.setdefault(key, index)
        if availability is None or bad & _READS["duration"]:
            continue
        at: SubPath = (index, "duration")
        # The working-hours and preferred-window rules of every meeting; the lunch one below.
        problems.extend(fit_problems(group.duration, "coffee", availability, at=at))
        if group.kind == "lunch" and group.duration > availability.lunch_window.duration:
            problems.append(
                (
                    at,
                    f"a {format_duration(group.duration)} lunch does not fit the lunch window "
                    f"{availability.lunch_window}; shorten duration or widen "
                    f"availability.lunch_window",
                )
            )
    return problems


def unparsed_group_problems(
    raws: Sequence[object], data: Mapping[str, Any]
) -> list[tuple[SubPath, str]]:
    """When some entry of ``groups`` fails to parse: every problem its parse errors would hide,
    of it and of the other entries (their own checks, unique names, fit, members)."""
    problems: list[tuple[SubPath, str]] = []
    entries: list[tuple[int, Group, frozenset[str]]] = []
    for index, raw in enumerate(raws):
        group, bad, hidden = salvage_group(raw)
        problems.extend(((index, *at), message) for at, message in hidden)
        if group is not None:
            entries.append((index, group, bad))
    problems.extend(cross_problems(entries, data))
    for index, raw in enumerate(raws):
        if isinstance(raw, Mapping) and isinstance(raw.get("members"), list):
            problems.extend(member_problems(index, raw["members"], data))
    return problems


def salvage_group(raw: object) -> tuple[Group | None, frozenset[str], list[tuple[SubPath, str]]]:
    """A group entry as far as it parses, for reporting every problem in one run.

    Returns the group with each field that failed to parse at its default (``None`` when even
    that fails), those fields, and the group's own problems (:meth:`Group.own_problems`) that
    the parse errors hid — on the fields that parsed, and none when the entry parsed (its own
    problems are then reported already)."""
    if not isinstance(raw, Mapping):
        return None, frozenset(), []
    lenient = {_LENIENT: True}
    try:
        return Group.model_validate(raw, context=lenient), frozenset(), []
    except ValidationError as exc:
        bad = frozenset(str(e["loc"][0]) for e in exc.errors() if e["loc"])
    kept: dict[str, Any] = {str(k): v for k, v in raw.items() if str(k) not in bad}
    kept.setdefault("name", "-")
    kept.setdefault("members", [])
    try:
        group = Group.model_validate(kept, context=lenient)
    except ValidationError:
        return None, bad, []
    hidden = [p for p in group.own_problems() if not _READS.get(str(p[0][0]), frozenset()) & bad]
    return group, bad, hidden


def member_problems(
    index: int, members: Sequence[object], data: Mapping[str, Any]
) -> list[tuple[SubPath, str]]:
    """Unknown members (neither a stakeholder nor in allowed domains) and the owner as one.

    ``members`` may be raw file values (checked even when the group has other problems)."""
    domains: list[str] | None = data.get("allowed_domains")
    people: list[Stakeholder] | None = data.get("stakeholders")
    known = {s.email for s in people or ()}
    owner = data.get("owner")
    problems: list[tuple[SubPath, str]] = []
    for n, raw in enumerate(members):
        if not isinstance(raw, str) or "@" not in raw:
            continue  # the group's own validation reports it
        email = raw.strip().lower()
        at: SubPath = (index, "members", n)
        if owner is not None and email == owner.email:
            problems.append((at, f"{email} is your own address; you attend every meeting"))
        elif email not in known and domains and _domain(email) not in domains:
            fix = "add them to stakeholders with an allowed address, or fix the address"
            problems.append((at, "unknown member: " + _outside(email, domains, fix)))
    return problems


def via_problems(people: Sequence[tuple[int, Stakeholder]]) -> list[tuple[SubPath, str]]:
    """``status: to_meet`` needs ``via``: another stakeholder, with no loop of introductions."""
    by_email = {s.email: s for _, s in people}
    problems: list[tuple[SubPath, str]] = []
    for index, person in people:
        via = person.via
        if person.status != "to_meet":
            if via is not None:
                message = (
                    "via names who introduces you to someone you have not met yet; add "
                    "status: to_meet or remove via"
                )
                problems.append(((index, "via"), message))
            continue
        if via is None:
            message = "status: to_meet needs via: the stakeholder who can introduce you; add it"
            problems.append(((index, "status"), message))
        elif via == person.email:
            message = f"via is {person.email}'s own address; name the person you have in common"
            problems.append(((index, "via"), message))
        elif via not in by_email:
            message = (
                f"via {via} is not a stakeholder of this policy; the person in common must be "
                f"someone you meet: add them to stakeholders or fix the address"
            )
            problems.append(((index, "via"), message))
        else:
            loop = _via_loop(person.email, by_email)
            if loop:
                message = (
                    f"introductions loop: {' → '.join(loop)}; someone in it must be met already "
                    f"(remove status: to_meet and via from one of them)"
                )
                problems.append(((index, "via"), message))
    return problems


def _via_loop(start: str, by_email: Mapping[str, Stakeholder]) -> list[str]:
    """The chain from ``start`` back to itself through ``via`` (empty when it ends)."""
    chain = [start]
    current = by_email[start]
    while current.status == "to_meet" and current.via is not None and current.via in by_email:
        nxt = current.via
        if nxt == start:
            return [*chain, start]
        if nxt in chain:  # a loop further on: reported on its own members
            return []
        chain.append(nxt)
        current = by_email[nxt]
    return []
