"""``notify:`` in the policy: the digest schedule, its errors (FILE:LINE) and its DST handling."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from scheduler.core.errors import PolicyError
from scheduler.core.policy import load_policy_text, policy_to_data
from scheduler.core.policy.notify import DigestTime, next_digest_at, on_schedule

OWNER = "owner: {email: alex@corp.example, name: Alex Doe, timezone: Europe/London}\n"


def test_notify_loads_with_a_bare_yaml_on_key() -> None:
    policy = load_policy_text(
        OWNER + 'notify: {digest: "mon 08:30", on: [proposal, declined, conflict, expired]}\n',
        source="alex.yaml",
        fmt="yaml",
    )
    assert policy.notify.digest == DigestTime(0, time(8, 30))
    assert policy.notify.on == ("proposal", "declined", "conflict", "expired")
    assert policy_to_data(policy)["notify"] == {
        "digest": "mon 08:30",
        "on": ["proposal", "declined", "conflict", "expired"],
    }


def test_notify_defaults_to_nothing() -> None:
    policy = load_policy_text(OWNER, source="alex.yaml", fmt="yaml")
    assert policy.notify.digest is None
    assert policy.notify.on == ()
    daily = load_policy_text(
        OWNER + "notify:\n  digest: daily 7:05\n  on: conflict\n", source="a.yaml", fmt="yaml"
    )
    assert daily.notify.digest == DigestTime(None, time(7, 5))
    assert daily.notify.on == ("conflict",)


def test_notify_loads_from_toml() -> None:
    text = (
        '[owner]\nemail = "alex@corp.example"\nname = "Alex Doe"\ntimezone = "UTC"\n'
        '[notify]\ndigest = "fri 16:00"\non = ["expired"]\n'
    )
    policy = load_policy_text(text, source="alex.toml", fmt="toml")
    assert policy.notify.digest == DigestTime(4, time(16))


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            'notify:\n  digest: "fun 08:30"\n',
            "alex.yaml:3: notify.digest: unknown day 'fun'",
        ),
        ('notify:\n  digest: "mon 24:10"\n', "alex.yaml:3: notify.digest: 24:10 is not a time"),
        (
            "notify:\n  digest: 830\n",
            'alex.yaml:3: notify.digest: expected a digest time like "mon',
        ),
        (
            "notify:\n  digest: mon 08:30\n  on: [proposal, nope]\n",
            "alex.yaml:4: notify.on[1]: expected one of 'proposal', 'declined'",
        ),
        (
            "notify:\n  on: [declined, declined]\n",
            "alex.yaml:3: notify.on[1]: declined is listed twice",
        ),
        ("notify:\n  digets: mon 08:30\n", "alex.yaml:3: notify.digets: unknown field 'digets'"),
    ],
)
def test_bad_notify_values_name_the_file_and_line(body: str, expected: str) -> None:
    with pytest.raises(PolicyError) as caught:
        load_policy_text(OWNER + body, source="alex.yaml", fmt="yaml")
    assert expected in str(caught.value)


MON_0830 = DigestTime(0, time(8, 30))


def test_a_digest_in_kolkata_is_0830_local_every_monday() -> None:
    after = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)  # a Tuesday
    first = next_digest_at(MON_0830, "Asia/Kolkata", after)
    assert first == datetime(2026, 12, 7, 3, 0, tzinfo=UTC)  # 08:30 IST = 03:00 UTC
    assert next_digest_at(MON_0830, "Asia/Kolkata", first) == first + timedelta(weeks=1)
    assert on_schedule(MON_0830, "Asia/Kolkata", first)
    assert not on_schedule(MON_0830, "Asia/Kolkata", first + timedelta(minutes=1))


def test_a_new_york_digest_stays_0830_local_across_the_us_dst_change() -> None:
    # 2026-11-01: EDT (UTC-4) ends, EST (UTC-5) begins.
    before = next_digest_at(MON_0830, "America/New_York", datetime(2026, 10, 20, tzinfo=UTC))
    assert before == datetime(2026, 10, 26, 12, 30, tzinfo=UTC)  # 08:30 EDT
    after = next_digest_at(MON_0830, "America/New_York", before)
    assert after == datetime(2026, 11, 2, 13, 30, tzinfo=UTC)  # 08:30 EST, 7 days + 1 hour
    daily = DigestTime(None, time(8, 30))
    saturday = next_digest_at(daily, "America/New_York", datetime(2026, 10, 31, 12, tzinfo=UTC))
    sunday = next_digest_at(daily, "America/New_York", saturday)
    assert saturday == datetime(2026, 10, 31, 12, 30, tzinfo=UTC)  # 08:30 EDT
    assert sunday == datetime(2026, 11, 1, 13, 30, tzinfo=UTC)  # 08:30 EST, 25 hours later


def test_a_nonexistent_local_time_moves_forward_and_an_ambiguous_one_takes_the_first() -> None:
    gap = DigestTime(6, time(2, 30))  # Sunday 02:30 does not exist on 2027-03-14 in New York
    moment = next_digest_at(gap, "America/New_York", datetime(2027, 3, 10, tzinfo=UTC))
    assert moment == datetime(2027, 3, 14, 7, 30, tzinfo=UTC)  # 03:30 EDT
    assert on_schedule(gap, "America/New_York", moment)
    overlap = DigestTime(6, time(1, 30))  # 2026-11-01 01:30 happens twice in New York
    moment = next_digest_at(overlap, "America/New_York", datetime(2026, 10, 28, tzinfo=UTC))
    assert moment == datetime(2026, 11, 1, 5, 30, tzinfo=UTC)  # the first: 01:30 EDT
