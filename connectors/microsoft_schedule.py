"""getSchedule request splitting and response assembly (pure; no I/O).

Graph's limits (learn.microsoft.com/graph/outlook-get-free-busy-schedule): at most 20 schedules
per call and a window shorter than 62 days. :func:`schedule_windows` and
:func:`schedule_batches` split a query accordingly; :class:`ScheduleCollector` folds the
``scheduleInformation`` answers of every call into one :class:`~scheduler.core.model.BusyResult`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any

from connectors.microsoft_http import PROVIDER
from connectors.microsoft_wire import parse_date_time_zone, parse_show_as, parse_working_hours
from scheduler.core.errors import ProviderUnavailable
from scheduler.core.intervals import Interval
from scheduler.core.model import BusyBlock, BusyResult, Person, WeeklyHours

__all__ = [
    "MAX_SCHEDULES_PER_CALL",
    "MAX_SCHEDULE_WINDOW",
    "ScheduleCollector",
    "schedule_batches",
    "schedule_blocks",
    "schedule_windows",
]

#: getSchedule: "up to 20 entities at once".
MAX_SCHEDULES_PER_CALL = 20
#: getSchedule: "the time period … must be less than 62 days".
MAX_SCHEDULE_WINDOW = timedelta(days=61)


def schedule_windows(window: Interval) -> Iterable[Interval]:
    """Consecutive sub-windows of at most :data:`MAX_SCHEDULE_WINDOW` covering ``window``."""
    start = window.start
    while start < window.end:
        end = min(window.end, start + MAX_SCHEDULE_WINDOW)
        yield Interval(start, end)
        start = end


def schedule_batches(people: Sequence[Person]) -> Iterable[Sequence[Person]]:
    """``people`` in groups of at most :data:`MAX_SCHEDULES_PER_CALL`."""
    for i in range(0, len(people), MAX_SCHEDULES_PER_CALL):
        yield people[i : i + MAX_SCHEDULES_PER_CALL]


def schedule_blocks(info: Mapping[str, Any]) -> list[BusyBlock]:
    """One :class:`BusyBlock` per ``scheduleItem`` (UTC), carrying its free/busy status.

    Raises:
        ProviderUnavailable: an item's time cannot be read (a garbled response).
    """
    out: list[BusyBlock] = []
    for item in info.get("scheduleItems") or []:
        try:
            start = parse_date_time_zone(item["start"])
            end = parse_date_time_zone(item["end"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ProviderUnavailable(
                f"getSchedule returned an unreadable item time ({exc})", provider=PROVIDER
            ) from exc
        if end > start:
            out.append(BusyBlock(start=start, end=end, show_as=parse_show_as(item.get("status"))))
    return out


class ScheduleCollector:
    """Accumulates getSchedule answers for ``people`` across batches and windows.

    A schedule that comes back with ``error`` (not found, no permission: Graph reports these per
    schedule with HTTP 200) or not at all makes that person unavailable for the whole query —
    a partial calendar must never look free.
    """

    def __init__(self, people: Sequence[Person]) -> None:
        self._blocks: dict[str, list[BusyBlock]] = {p.email: [] for p in people}
        self._unavailable: dict[str, str] = {}
        self._working: dict[str, tuple[str, WeeklyHours]] = {}

    def add(self, group: Sequence[Person], infos: Iterable[Mapping[str, Any]]) -> None:
        """Fold in one call's ``value`` for the people in ``group``."""
        by_email = {p.email.lower(): p.email for p in group}
        seen: set[str] = set()
        for info in infos:
            email = by_email.get(str(info.get("scheduleId", "")).lower())
            if email is None:
                continue
            seen.add(email)
            error = info.get("error")
            if isinstance(error, Mapping):
                code = error.get("responseCode", "error")
                self._unavailable[email] = f"{code}: {error.get('message', '')}".strip(": ")
                continue
            self._blocks[email].extend(schedule_blocks(info))
            hours = info.get("workingHours")
            if isinstance(hours, Mapping) and email not in self._working:
                parsed = parse_working_hours(hours)
                if parsed is not None:
                    self._working[email] = parsed
        for email in by_email.values():
            if email not in seen:
                self._unavailable.setdefault(email, "no schedule returned by Graph")

    def result(self) -> BusyResult:
        """The merged result; a block repeated at a window seam is reported once."""
        blocks = {
            email: sorted(set(found), key=lambda b: (b.start, b.end))
            for email, found in self._blocks.items()
            if email not in self._unavailable
        }
        working = {e: h for e, h in self._working.items() if e not in self._unavailable}
        return BusyResult(blocks=blocks, unavailable=dict(self._unavailable), working_hours=working)
