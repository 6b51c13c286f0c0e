"""Calendar v3 request-body validator built from the discovery document the Google client ships.

The client library checks path and query parameters but sends bodies as-is (wrong types, unknown
fields, a badly formed client ``id`` all reach the server), so the emulator runs every body through
:class:`CalendarSchema` and answers 400 when it is wrong - the way Google would.

The walker follows ``$ref``, ``properties``, ``additionalProperties``, ``items`` and ``type``.
Discovery ``annotations.required`` lists the methods for which a property is required (``start``
and ``end`` for ``calendar.events.insert``). The discovery document carries enumerations only in
prose, so the few we rely on are written out in :data:`ENUMS` from those descriptions.
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any

import googleapiclient

__all__ = ["ENUMS", "EVENT_ID_RE", "CalendarSchema", "discovery_document"]

#: Client-supplied event ids: base32hex, lowercase, 5-1024 characters (``Event.id`` description).
EVENT_ID_RE = re.compile(r"[a-v0-9]{5,1024}")

#: Enumerations stated in the field descriptions of calendar.v3.json, keyed by "Schema.field".
ENUMS: dict[str, frozenset[str]] = {
    "Event.status": frozenset({"confirmed", "tentative", "cancelled"}),
    "Event.transparency": frozenset({"opaque", "transparent"}),
    "Event.visibility": frozenset({"default", "public", "private", "confidential"}),
    "Event.eventType": frozenset(
        {"birthday", "default", "focusTime", "fromGmail", "outOfOffice", "workingLocation"}
    ),
    "EventAttendee.responseStatus": frozenset({"needsAction", "declined", "tentative", "accepted"}),
    "EventReminder.method": frozenset({"email", "popup"}),
    "ConferenceSolutionKey.type": frozenset({"eventHangout", "eventNamedHangout", "hangoutsMeet"}),
}


def discovery_document() -> dict[str, Any]:
    """The bundled ``calendar.v3.json`` (no network)."""
    return _load()


@cache
def _load() -> dict[str, Any]:
    path = Path(googleapiclient.__file__).parent / "discovery_cache/documents/calendar.v3.json"
    doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return doc


class CalendarSchema:
    """Checks request bodies against the calendar v3 schemas; methods return the problems found."""

    def __init__(self, document: dict[str, Any] | None = None) -> None:
        self._schemas: dict[str, Any] = (document or discovery_document())["schemas"]

    def check(self, schema: str, body: Any, *, method: str | None = None) -> list[str]:
        """Problems in ``body`` as an instance of ``schema`` (``Event``, ``FreeBusyRequest``).

        Args:
            schema: a schema id from the discovery document.
            body: the decoded JSON body.
            method: discovery method id (``calendar.events.insert``) whose required fields apply.
        """
        problems: list[str] = []
        self._walk({"$ref": schema}, body, schema, "", method, problems)
        return problems

    def check_event_insert(self, body: Any) -> list[str]:
        """An ``events.insert`` body: schema, the client id format, and start/end present."""
        problems = self.check("Event", body, method="calendar.events.insert")
        if isinstance(body, dict):
            event_id = body.get("id")
            if event_id is not None and not (
                isinstance(event_id, str) and EVENT_ID_RE.fullmatch(event_id)
            ):
                problems.append(f"id: {event_id!r} is not base32hex [a-v0-9]{{5,1024}}")
            problems += _check_times(body)
        return problems

    def check_event_update(self, body: Any) -> list[str]:
        """An ``events.update`` (PUT) body: a whole event, start and end required."""
        problems = self.check("Event", body, method="calendar.events.update")
        if isinstance(body, dict):
            problems += _check_times(body)
        return problems

    def check_event_patch(self, body: Any) -> list[str]:
        """An ``events.patch`` body: any subset of the event's fields; a ``start``/``end`` given
        is checked like an insert's (one of date/dateTime, a zone for an offset-less time)."""
        problems = self.check("Event", body, method="calendar.events.patch")
        if isinstance(body, dict):
            problems += _check_times(body)
        return problems

    def check_freebusy(self, body: Any) -> list[str]:
        """A ``freebusy.query`` body; ``timeMin``, ``timeMax`` and ``items`` must be present."""
        problems = self.check("FreeBusyRequest", body)
        if isinstance(body, dict):
            problems += [f"{f}: required" for f in ("timeMin", "timeMax", "items") if f not in body]
            maximum = body.get("calendarExpansionMax")
            if isinstance(maximum, int) and not 1 <= maximum <= 50:
                problems.append("calendarExpansionMax: must be 1..50")
        return problems

    def _walk(
        self,
        schema: dict[str, Any],
        value: Any,
        owner: str,
        path: str,
        method: str | None,
        problems: list[str],
    ) -> None:
        if "$ref" in schema:
            owner = schema["$ref"]
            schema = self._schemas[owner]
        where = path or "<body>"
        kind = schema.get("type")
        if kind == "object":
            if not isinstance(value, dict):
                problems.append(f"{where}: expected object, got {type(value).__name__}")
                return
            props: dict[str, Any] = schema.get("properties", {})
            extra = schema.get("additionalProperties")
            for name, sub in value.items():
                sub_path = f"{path}.{name}" if path else name
                if name in props:
                    enum = ENUMS.get(f"{owner}.{name}")
                    if enum is not None and isinstance(sub, str) and sub not in enum:
                        problems.append(f"{sub_path}: {sub!r} is not one of {sorted(enum)}")
                    self._walk(props[name], sub, owner, sub_path, None, problems)
                elif extra is not None:
                    self._walk(extra, sub, owner, sub_path, None, problems)
                else:
                    problems.append(f"{sub_path}: unknown field")
            if method is not None:
                for name, sub in props.items():
                    required = sub.get("annotations", {}).get("required", [])
                    if method in required and name not in value:
                        problems.append(f"{path + '.' if path else ''}{name}: required")
        elif kind == "array":
            if not isinstance(value, list):
                problems.append(f"{where}: expected array, got {type(value).__name__}")
                return
            for index, item in enumerate(value):
                self._walk(schema.get("items", {}), item, owner, f"{path}[{index}]", None, problems)
        elif kind == "string":
            if not isinstance(value, str):
                problems.append(f"{where}: expected string, got {type(value).__name__}")
                return
            problems += _check_format(schema.get("format"), value, where)
        elif kind == "integer":
            if isinstance(value, bool) or not isinstance(value, int):
                problems.append(f"{where}: expected integer, got {type(value).__name__}")
        elif kind == "boolean" and not isinstance(value, bool):
            problems.append(f"{where}: expected boolean, got {type(value).__name__}")
        # "any" and untyped schemas accept everything.


def _check_format(fmt: str | None, value: str, where: str) -> list[str]:
    if fmt == "date-time":
        try:
            datetime.fromisoformat(value)
        except ValueError:
            return [f"{where}: {value!r} is not an RFC3339 date-time"]
    elif fmt == "date":
        try:
            date.fromisoformat(value)
        except ValueError:
            return [f"{where}: {value!r} is not a yyyy-mm-dd date"]
        if len(value) != 10:
            return [f"{where}: {value!r} is not a yyyy-mm-dd date"]
    elif fmt == "int64" and not re.fullmatch(r"-?\d+", value):
        return [f"{where}: {value!r} is not an int64 string"]
    return []


def _check_times(body: dict[str, Any]) -> list[str]:
    """start/end: exactly one of date/dateTime each; a dateTime needs an offset or a zone."""
    problems: list[str] = []
    for field in ("start", "end"):
        moment = body.get(field)
        if not isinstance(moment, dict):
            continue
        has_date, has_dt = "date" in moment, "dateTime" in moment
        if has_date == has_dt:
            problems.append(f"{field}: exactly one of date and dateTime is required")
        elif has_dt and isinstance(moment["dateTime"], str):
            try:
                parsed = datetime.fromisoformat(moment["dateTime"])
            except ValueError:
                continue  # reported by the format check
            if parsed.tzinfo is None and not moment.get("timeZone"):
                problems.append(f"{field}.dateTime: a time zone offset or timeZone is required")
    return problems
