"""``Retry-After`` (RFC 9110 §10.2.3) is read one way, against the injected clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from connectors.http_common import parse_retry_after
from scheduler.core.clock import FixedClock

# A fixed clock far from the wall clock: a parser reading datetime.now() would be years off.
CLOCK = FixedClock(datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC))


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("0", 0.0),
        ("7", 7.0),
        ("120", 120.0),
        (" 30 ", 30.0),  # surrounding whitespace is not part of the value
        ("1.5", 1.5),  # not RFC delay-seconds, but servers send it; the old parsers took it
        ("-5", 0.0),  # never wait a negative time
    ],
)
def test_delay_seconds(value: str, seconds: float) -> None:
    assert parse_retry_after(value, CLOCK.now()) == seconds


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("Tue, 06 May 2031 07:08:39 GMT", 30.0),  # IMF-fixdate, the preferred form
        ("Tuesday, 06-May-31 07:10:09 GMT", 120.0),  # obsolete RFC 850 form
        ("Tue May  6 07:08:19 2031", 10.0),  # obsolete asctime form (no zone: it is GMT)
        ("Tue, 06 May 2031 09:08:09 +0200", 0.0),  # the same instant as now, written elsewhere
        ("Tue, 06 May 2031 08:08:09 GMT", 3600.0),
    ],
)
def test_http_date_in_the_future_counts_from_the_injected_now(value: str, seconds: float) -> None:
    assert parse_retry_after(value, CLOCK.now()) == seconds


@pytest.mark.parametrize(
    "value",
    ["Tue, 06 May 2031 07:08:08 GMT", "Sun, 06 Nov 1994 08:49:37 GMT"],
)
def test_http_date_in_the_past_means_now(value: str) -> None:
    assert parse_retry_after(value, CLOCK.now()) == 0.0


def test_the_clock_not_the_wall_decides() -> None:
    value = "Tue, 06 May 2031 07:09:09 GMT"
    assert parse_retry_after(value, CLOCK.now()) == 60.0
    later = FixedClock(CLOCK.now())
    later.advance(timedelta(seconds=45))
    assert parse_retry_after(value, later.now()) == 15.0
    # A now in another zone is the same instant.
    assert parse_retry_after(value, CLOCK.now().astimezone(timezone(timedelta(hours=-7)))) == 60.0


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "   ",
        "soon",
        "in 5 minutes",
        "Tue, 06 May 2031",  # a date without a time
        "Tue, 06 May 99999 07:08:39 GMT",  # year out of range
        "nan",
        "inf",
        "1e400",
    ],
)
def test_garbage_is_none(value: str | None) -> None:
    assert parse_retry_after(value, CLOCK.now()) is None


def test_now_must_be_aware() -> None:
    with pytest.raises(ValueError, match="aware"):
        parse_retry_after("5", datetime(2031, 5, 6, 7, 8, 9))
