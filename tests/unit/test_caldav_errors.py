"""CalDAV servers that cannot be reached: the error names the host, the port and what went
wrong (refused, timed out, name lookup), never the credentials or the URL's user info.

Only loopback: a closed port for "refused", a listening socket that never answers for
"timed out"; name-lookup failures are built from the exceptions the HTTP library raises.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from connectors.caldav import CalDAVCalendar, unreachable_reason
from scheduler.core.errors import ProviderUnavailable
from scheduler.core.intervals import Interval
from scheduler.core.model import BusyQuery, Person

QUERY = BusyQuery(
    Interval(datetime(2026, 12, 1, tzinfo=UTC), datetime(2026, 12, 2, tzinfo=UTC)),
    (Person("ann@corp.example", "Ann", "UTC"),),
)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(4)
        yield int(server.getsockname()[1])


def _failure(url: str, **kwargs: object) -> tuple[ProviderUnavailable, float]:
    calendar = CalDAVCalendar(
        url, "ann", "hunter2", server="xandikos", calendar_path="/{user}/cal/", **kwargs
    )  # type: ignore[arg-type]
    started = time.monotonic()
    try:
        with pytest.raises(ProviderUnavailable) as caught:
            calendar.busy(QUERY)
    finally:
        calendar.close()
    return caught.value, time.monotonic() - started


def test_a_closed_port_names_host_port_and_refused() -> None:
    port = _closed_port()
    error, _ = _failure(f"http://ann:s3cret@127.0.0.1:{port}/dav/")
    message = str(error)
    assert f"127.0.0.1:{port}" in message
    assert "connection refused" in message
    for secret in ("s3cret", "hunter2", "ann:"):
        assert secret not in message
    assert "GOODWILL_CALDAV__URL" in message
    assert error.transient


def test_a_silent_server_names_host_port_and_timed_out(silent_port: int) -> None:
    error, took = _failure(f"http://127.0.0.1:{silent_port}/", timeout_s=1.0)
    message = str(error)
    assert f"127.0.0.1:{silent_port}" in message
    assert "timed out" in message
    assert "GOODWILL_CALDAV__TIMEOUT_S" in message
    print(f"silent CalDAV server: refused in {took:.2f} s")
    assert took < 15


def test_default_ports_are_named_too() -> None:
    refused = ConnectionRefusedError(111, "Connection refused")
    assert "127.0.0.1:443 (connection refused" in unreachable_reason(
        refused, "https://user:pw@127.0.0.1/dav/"
    )
    assert "127.0.0.1:80 " in unreachable_reason(refused, "http://127.0.0.1/")


def test_a_failed_name_lookup_says_so() -> None:
    from caldav.lib.http_sync import requests as http_lib

    lookup = socket.gaierror(-2, "Name or service not known")
    wrapped = http_lib.exceptions.ConnectionError("Max retries exceeded")
    wrapped.__cause__ = lookup
    reason = unreachable_reason(wrapped, "https://caldav.corp.example:8443/dav/")
    assert "caldav.corp.example:8443" in reason
    assert "name lookup failed" in reason


def test_other_failures_keep_their_kind_without_secrets() -> None:
    reason = unreachable_reason(OSError("weird"), "http://u:p@[::1]:5232/")
    assert "[::1]:5232" in reason
    assert "OSError" in reason
    assert "u:p" not in reason
