"""ICS directory mode: a settled, unchanged file is not read again; a changed one always is.

Opens of the calendar file are counted with an audit hook (no patching): the cache's stamp
(device, inode, size, mtime) stands in for reading only for files not modified in the last
``SETTLED_S`` seconds, so a same-size rewrite within the same time stamp is still caught by the
content digest.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from connectors.ics import IcsDirectory
from connectors.ics_input import SETTLED_S, CalendarCache, file_stamp
from scheduler.core.intervals import Interval
from scheduler.core.model import BusyQuery, Person

SAM = Person("sam@corp.example", "Sam", "UTC")
DAY = datetime(2027, 3, 1, tzinfo=UTC)
WINDOW = Interval(DAY, DAY + timedelta(days=1))

_opens: dict[str, int] = {}


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event == "open" and _opens and isinstance(args[0], str | Path):
        name = os.fspath(args[0])
        if name in _opens:
            _opens[name] += 1


sys.addaudithook(_audit)  # cannot be removed: it only counts the paths a test watches


@pytest.fixture
def opens() -> Iterator[dict[str, int]]:
    try:
        yield _opens
    finally:
        _opens.clear()


def _calendar(hour: int) -> bytes:
    """One event at ``hour``:00 UTC on DAY (the same size for every one- or two-digit hour)."""
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//goodwill tests//EN\r\n"
        "BEGIN:VEVENT\r\nUID:e1\r\nDTSTAMP:20270101T000000Z\r\n"
        f"DTSTART:20270301T{hour:02d}0000Z\r\nDTEND:20270301T{hour:02d}3000Z\r\n"
        "SUMMARY:x\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    ).encode()


def _write(path: Path, data: bytes, *, age_s: float) -> None:
    path.write_bytes(data)
    moment = time.time_ns() - int(age_s * 1e9)
    os.utime(path, ns=(moment, moment))


def _busy_hours(directory: IcsDirectory) -> list[int]:
    result = directory.busy(BusyQuery(window=WINDOW, people=(SAM,)))
    return [b.start.hour for b in result.blocks[SAM.email]]


def test_a_settled_unchanged_file_is_parsed_once_and_not_read_again(
    tmp_path: Path, opens: dict[str, int]
) -> None:
    path = tmp_path / f"{SAM.email}.ics"
    _write(path, _calendar(9), age_s=3600)
    cache = CalendarCache()
    directory = IcsDirectory(tmp_path, cache=cache)
    opens[str(path)] = 0
    for _ in range(3):
        assert _busy_hours(directory) == [9]
    assert (cache.parses, cache.stamp_hits, opens[str(path)]) == (1, 2, 1)


def test_a_changed_file_is_read_and_parsed_again(tmp_path: Path) -> None:
    path = tmp_path / f"{SAM.email}.ics"
    _write(path, _calendar(9), age_s=3600)
    cache = CalendarCache()
    directory = IcsDirectory(tmp_path, cache=cache)
    assert _busy_hours(directory) == [9]

    _write(path, _calendar(11), age_s=1800)  # same size, another (settled) time stamp
    assert _busy_hours(directory) == [11]
    assert cache.parses == 2


def test_a_rewrite_with_the_same_size_and_time_stamp_is_caught_while_recent(
    tmp_path: Path,
) -> None:
    path = tmp_path / f"{SAM.email}.ics"
    _write(path, _calendar(9), age_s=0)
    stamp = path.stat().st_mtime_ns
    cache = CalendarCache()
    directory = IcsDirectory(tmp_path, cache=cache)
    assert _busy_hours(directory) == [9]

    path.write_bytes(_calendar(13))  # within the time stamp's granularity: looks the same
    os.utime(path, ns=(stamp, stamp))
    assert _busy_hours(directory) == [13]  # not settled: read, and the digest differs
    assert cache.stamp_hits == 0


def test_file_stamp_is_none_for_a_recent_or_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "a.ics"
    path.write_bytes(b"x")
    assert file_stamp(path) is None
    later = time.time() + SETTLED_S + 1
    st = path.stat()
    assert file_stamp(path, now=later) == (st.st_dev, st.st_ino, 1, st.st_mtime_ns)
    assert file_stamp(tmp_path / "missing.ics", now=later) is None


def test_a_deleted_file_is_unavailable_even_when_its_parse_is_kept(tmp_path: Path) -> None:
    path = tmp_path / f"{SAM.email}.ics"
    _write(path, _calendar(9), age_s=3600)
    directory = IcsDirectory(tmp_path, cache=CalendarCache())
    assert _busy_hours(directory) == [9]
    path.unlink()
    result = directory.busy(BusyQuery(window=WINDOW, people=(SAM,)))
    assert SAM.email in result.unavailable
