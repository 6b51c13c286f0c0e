"""Single-use links on real databases (SQLite and PostgreSQL, ``db_url``): of two concurrent
redeems of one link exactly one wins, at the store and through LinkTokens."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from scheduler.core.clock import FixedClock
from scheduler.entrypoints.web.signin_links import LinkClaim, LinkTokens
from scheduler.settings import new_secret_key
from scheduler.store import Store
from tests.concurrency import run_together

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
lock = threading.Lock()


@pytest.fixture
def store(engine: Engine) -> Store:
    return Store(engine)


def test_use_link_is_insert_or_fail(store: Store) -> None:
    expires = NOW + timedelta(minutes=15)
    assert not store.link_used("n1")
    assert store.use_link("n1", "Ann@Corp.example", expires, now=NOW) is True
    assert store.link_used("n1")
    assert store.use_link("n1", "ann@corp.example", expires, now=NOW) is False
    assert store.use_link("n2", "ann@corp.example", expires, now=NOW) is True


def test_rows_of_long_expired_links_are_purged_and_stay_refused_by_expiry(store: Store) -> None:
    store.use_link("old", "ann@corp.example", NOW, now=NOW)
    later = NOW + timedelta(days=2)
    store.use_link("new", "ann@corp.example", later + timedelta(minutes=15), now=later)
    assert not store.link_used("old")  # purged: its signature expired two days ago anyway
    assert store.link_used("new")


def test_two_concurrent_uses_of_one_nonce_one_wins(store: Store) -> None:
    for round_ in range(5):
        nonce = f"race-{round_}"
        wins: list[bool] = []

        def work(
            i: int, barrier: threading.Barrier, nonce: str = nonce, wins: list[bool] = wins
        ) -> None:
            barrier.wait()
            won = store.use_link(nonce, "ann@corp.example", NOW + timedelta(minutes=5), now=NOW)
            with lock:
                wins.append(won)

        run_together(2, work)
        assert sorted(wins) == [False, True]


def test_two_concurrent_redeems_of_one_link_one_gets_the_claim(store: Store) -> None:
    links = LinkTokens(new_secret_key(), "https://goodwill.example", store, FixedClock(NOW))
    for _ in range(5):
        token = links.sign_in("ann@corp.example", "/x").split("token=")[1]
        claims: list[LinkClaim | None] = []

        def work(
            i: int,
            barrier: threading.Barrier,
            token: str = token,
            claims: list[LinkClaim | None] = claims,
        ) -> None:
            barrier.wait()
            claim = links.redeem(token, "signin")
            with lock:
                claims.append(claim)

        run_together(2, work)
        won = [c for c in claims if c is not None]
        assert len(won) == 1
        assert won[0].email == "ann@corp.example"
        assert won[0].next_path == "/x"
        assert links.peek(token, "signin") is None
