"""Checks Graph request bodies against the v1.0 metadata subset in ../shared/reference.

The schema file (``graph-calendar-schema.json``: event, scheduleInformation, getSchedule and
cancel from Microsoft's published CSDL, MIT) is read from ``shared/`` beside the project at test
time, never copied into the repository.

Stricter than Graph on purpose: ``event`` is an OData open type, so Graph would accept unknown
properties silently, and it compares enums case-insensitively; here an unknown property or an
enum in the wrong case is a violation, because either means our client drifted from the docs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from datetime import date, datetime, time
from functools import lru_cache
from pathlib import Path
from typing import Any

__all__ = ["GraphSchema", "schema_path"]

_FALLBACK = Path("/work/shared/reference/graph-calendar-schema.json")


def schema_path() -> Path:
    """Where the schema lives: ``<project>/../shared/reference/`` (fallback ``/work/shared``)."""
    beside = Path(__file__).resolve().parents[3] / "shared/reference/graph-calendar-schema.json"
    for candidate in (beside, _FALLBACK):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"graph-calendar-schema.json not found at {beside} or {_FALLBACK}; the Graph emulator "
        "validates request bodies against it (shared/ must sit beside the project)"
    )


def _is_iso_datetime(text: str) -> bool:
    head = text.split(".")[0].rstrip("Z")
    try:
        datetime.fromisoformat(head)
    except ValueError:
        return False
    return True


def _is_date(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _is_time(text: str) -> bool:
    try:
        time.fromisoformat(text.split(".")[0])
    except ValueError:
        return False
    return True


_PRIMITIVES: Mapping[str, Callable[[Any], bool]] = {
    "Edm.String": lambda v: isinstance(v, str),
    "Edm.Boolean": lambda v: isinstance(v, bool),
    "Edm.Int32": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "Edm.Double": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "Edm.DateTimeOffset": lambda v: isinstance(v, str) and _is_iso_datetime(v),
    "Edm.Date": lambda v: isinstance(v, str) and _is_date(v),
    "Edm.TimeOfDay": lambda v: isinstance(v, str) and _is_time(v),
}

_COLLECTION = re.compile(r"Collection\((.+)\)")


class GraphSchema:
    """A validator over the schema's ``types`` and ``actions``.

    Args:
        known_zone: predicate for ``dateTimeTimeZone.timeZone`` values (Windows or IANA names).
    """

    def __init__(self, known_zone: Callable[[str], bool]) -> None:
        self._doc = _load(str(schema_path()))
        self._types: Mapping[str, Any] = self._doc["types"]
        self._actions: Mapping[str, Mapping[str, str]] = self._doc["actions"]
        self._known_zone = known_zone

    def _properties(self, type_name: str) -> dict[str, str]:
        props: dict[str, str] = {}
        current: str = type_name
        while current:
            spec = self._types[current]
            props.update(spec.get("props", {}))
            props.update(spec.get("navs", {}))
            current = spec.get("base", "")
        return props

    def validate(self, type_name: str, value: Any, where: str = "") -> list[str]:
        """Violations of ``value`` against ``type_name`` (``event``, ``attendee``, …)."""
        where = where or type_name
        if value is None:
            return []
        match = _COLLECTION.fullmatch(type_name)
        if match:
            if not isinstance(value, list):
                return [f"{where}: expected a list, got {type(value).__name__}"]
            out: list[str] = []
            for i, item in enumerate(value):
                out.extend(self.validate(match.group(1), item, f"{where}[{i}]"))
            return out
        if type_name in _PRIMITIVES:
            ok = _PRIMITIVES[type_name](value)
            return [] if ok else [f"{where}: {value!r} is not {type_name}"]
        spec = self._types.get(type_name)
        if spec is None:
            return []  # outside the subset (attachment, calendar, …): nothing to check against
        if spec["kind"] == "enum":
            members = spec["members"]
            if value not in members:
                return [f"{where}: {value!r} is not one of {type_name} {members}"]
            return []
        if not isinstance(value, Mapping):
            return [f"{where}: expected an object for {type_name}, got {type(value).__name__}"]
        props = self._properties(type_name)
        out = []
        for key, item in value.items():
            if "@odata." in key or key.startswith("@"):
                continue
            if key not in props:
                out.append(f"{where}.{key}: unknown property of {type_name}")
                continue
            out.extend(self.validate(props[key], item, f"{where}.{key}"))
        if type_name == "dateTimeTimeZone":
            out.extend(self._check_date_time_zone(value, where))
        return out

    def _check_date_time_zone(self, value: Mapping[str, Any], where: str) -> list[str]:
        out = []
        text = value.get("dateTime")
        if not isinstance(text, str) or not _is_iso_datetime(text):
            out.append(f"{where}.dateTime: {text!r} is not an ISO date-time")
        zone = value.get("timeZone")
        if not isinstance(zone, str) or not self._known_zone(zone):
            out.append(f"{where}.timeZone: {zone!r} is not a known time zone")
        return out

    def validate_action(self, action: str, body: Any) -> list[str]:
        """Violations of an action body (``getSchedule``, ``cancel(event)``).

        The CSDL capitalises parameter names (``Schedules``) while the docs use camelCase
        (``schedules``); Graph accepts both, so this check does too.
        """
        params = self._actions[action]
        if not isinstance(body, Mapping):
            return [f"{action}: body is not an object"]
        by_lower = {name.lower(): (name, type_) for name, type_ in params.items()}
        out: list[str] = []
        for key, item in body.items():
            known = by_lower.get(key.lower())
            if known is None:
                out.append(f"{action}.{key}: unknown parameter")
                continue
            out.extend(self.validate(known[1], item, f"{action}.{known[0]}"))
        return out


@lru_cache(maxsize=4)
def _load(path: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
    return data
