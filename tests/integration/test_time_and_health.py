"""Time, leases and health (issue 11): skewed clocks, writes that fail, --now, revoked grants.

Everything runs for real: the tick and the ops server of :func:`build_runtime` on SQLite and on
PostgreSQL, ``/readyz`` over HTTP on 127.0.0.1, the Google emulator for the token endpoint.
Failures are made by the database itself (a read-only connection, a trigger that raises SQLSTATE
53100 "disk full"); clocks are injected, and a beat is aged by rewriting it in the database, so
no assertion depends on how fast this machine is.
"""

from __future__ import annotations

import json
import secrets
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from scheduler.app import planning
from scheduler.core.clock import Clock, FixedClock, SystemClock
from scheduler.entrypoints.bootstrap import App, bootstrap
from scheduler.entrypoints.cli import main
from scheduler.entrypoints.runtime import Runtime, build_runtime
from scheduler.settings import GoogleSettings, OpsSettings, Settings
from scheduler.store import Store, migrate
from tests.conftest_db import PG_HOST, PG_PORT
from tests.emulators.google_emulator import GoogleEmulator
from tests.integration.reliability_support import service_account_file, wait_until, write_policy
from tests.usecase.stores import STORE_KINDS, InspectableStore, open_store

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


class OffsetClock:
    """The system clock shifted by ``offset``: a replica whose clock runs ahead (or behind)."""

    def __init__(self, offset: timedelta) -> None:
        self.offset = offset

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset


# -- helpers -----------------------------------------------------------------------------------


def readyz(runtime: Runtime) -> tuple[int, dict[str, Any]]:
    assert runtime.ops is not None
    try:
        with urllib.request.urlopen(runtime.ops.url + "/readyz", timeout=10) as response:
            status, body = response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        with exc:
            status, body = exc.code, exc.read().decode()
    assert "@" not in body
    assert socket.gethostname() not in body  # holders are host:pid; /readyz names no host
    return status, json.loads(body)


def settings_for(url: str, tmp_path: Path, **overrides: Any) -> Settings:
    policies = tmp_path / "policies"
    policies.mkdir(exist_ok=True)
    values: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "database_url": url,
        "policy_dir": policies,
        "tick_interval_s": 10.0,
        "ops": OpsSettings(host="127.0.0.1", port=0),
        **overrides,
    }
    return Settings(_env_file=None, **values)


@pytest.fixture
def runtimes() -> Iterator[Any]:
    """Build runtimes (the ops server started, no worker threads); stopped afterwards."""
    made: list[Runtime] = []

    def make(settings: Settings, *, clock: Clock | None = None, with_tick: bool = True) -> Runtime:
        app: App = bootstrap(settings, clock=clock or SystemClock(), auto_migrate=True)
        runtime = build_runtime(
            settings, with_tick=with_tick, with_worker=False, with_ops=True, app=app
        )
        assert runtime.ops is not None
        runtime.ops.start()
        made.append(runtime)
        return runtime

    yield make
    for runtime in made:
        if runtime.tick is not None:
            runtime.tick.stop()
        if runtime.ops is not None:
            runtime.ops.stop()
        runtime.broker.close()
        runtime.app.engine.dispose()


@pytest.fixture
def pg_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh schema in the session's PostgreSQL database, migrated (as ``db_url`` makes one)."""
    import psycopg

    database: str = request.getfixturevalue("pg_database")
    schema = f"t_{secrets.token_hex(6)}"
    dsn = f"host={PG_HOST} port={PG_PORT} user=postgres dbname={database}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    url = (
        f"postgresql+psycopg://postgres@{PG_HOST}:{PG_PORT}/{database}"
        f"?options=-csearch_path%3D{schema}"
    )
    migrate(url)
    yield url
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def age_heartbeat(store: Store, by: timedelta, name: str = "tick") -> None:
    """Move a beat into the past, as if no round had completed since (an outcome, not a wait)."""
    engine = store._engine  # the test's own view of the rows
    with engine.begin() as conn:
        row = conn.execute(
            text("SELECT beat_at FROM heartbeats WHERE name = :n"), {"n": name}
        ).one()
        conn.execute(
            text("UPDATE heartbeats SET beat_at = :at WHERE name = :n"),
            {"at": _as_stored(row[0], engine.dialect.name, -by), "n": name},
        )


def _as_stored(value: Any, dialect: str, shift: timedelta) -> Any:
    if dialect == "sqlite":  # UTCDateTime stores naive UTC text there
        moment = datetime.fromisoformat(str(value)) + shift
        return moment.strftime("%Y-%m-%d %H:%M:%S.%f")
    return value + shift


# -- the store port: the fake, SQLite and PostgreSQL behave alike ------------------------------


@pytest.fixture(params=STORE_KINDS)
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[InspectableStore]:
    with open_store(request.param, request, tmp_path) as opened:
        yield opened


def test_a_tick_lease_longer_than_the_max_lease_is_void(any_store: InspectableStore) -> None:
    store = any_store
    assert store.try_acquire_tick("ahead", T0 + HOUR, 9, max_lease_s=60)
    assert not store.try_acquire_tick("right", T0, 9)  # unbounded: an hour's stall
    assert store.try_acquire_tick("right", T0, 9, max_lease_s=60)
    assert store.last_tick() == ("right", T0)
    # An ordinary lease holds for its period, bound or not.
    assert not store.try_acquire_tick("other", T0 + timedelta(seconds=8), 9, max_lease_s=60)
    assert store.try_acquire_tick("other", T0 + timedelta(seconds=9), 9, max_lease_s=60)
    with pytest.raises(ValueError, match="max_lease_s"):
        store.try_acquire_tick("greedy", T0 + HOUR * 2, 61, max_lease_s=60)


def test_heartbeats_count_failed_rounds_until_a_round_completes(
    any_store: InspectableStore,
) -> None:
    store = any_store
    assert store.heartbeat("tick") is None
    assert store.record_heartbeat_failure("tick", "OperationalError: down") == 0  # no row
    assert store.heartbeat("tick") is None
    at = store.record_heartbeat("tick", "host:1")
    assert abs(at - store.database_now()) < timedelta(minutes=1)
    assert store.record_heartbeat_failure("tick", "InternalError: read-only") == 1
    assert store.record_heartbeat_failure("tick", "OperationalError: disk full" * 40) == 2
    beat = store.heartbeat("tick")
    assert beat is not None
    assert (beat.holder, beat.beat_at, beat.failures) == ("host:1", at, 2)
    assert beat.last_error is not None
    assert beat.last_error.startswith("OperationalError: disk full")
    assert len(beat.last_error) <= 500
    store.record_heartbeat("tick", "host:2")
    beat = store.heartbeat("tick")
    assert beat is not None
    assert (beat.holder, beat.failures, beat.last_error) == ("host:2", 0, None)
    assert store.heartbeat("worker") is None  # names are separate rows


def test_flagging_a_revoked_grant_writes_a_marker_or_flags_the_stored_one(
    any_store: InspectableStore,
) -> None:
    store = any_store
    store.flag_credential_revoked("Alex@Corp.Example", "google", "invalid_grant", now=T0)
    store.flag_credential_revoked("alex@corp.example", "google", "invalid_grant", now=T0 + HOUR)
    [marker] = store.revoked_credentials()
    assert (marker.user_email, marker.provider, marker.reason) == (
        "alex@corp.example",
        "google",
        "invalid_grant",
    )
    assert marker.updated_at == T0 + HOUR
    assert store.load_credential("alex@corp.example", "google") is None
    store.save_credential("sam@corp.example", "microsoft", b"grant", now=T0)
    store.flag_credential_revoked("sam@corp.example", "microsoft", "invalid_grant", now=T0)
    assert store.load_credential("sam@corp.example", "microsoft") is None
    assert len(store.revoked_credentials()) == 2
    store.save_credential("alex@corp.example", "google", b"new grant", now=T0 + HOUR)  # reconnect
    assert store.load_credential("alex@corp.example", "google") == b"new grant"
    assert [c.user_email for c in store.revoked_credentials()] == ["sam@corp.example"]


# -- a tick lease from a clock running ahead ---------------------------------------------------


def test_a_lease_from_a_clock_running_ahead_stalls_scheduling_no_longer_than_the_max_lease(
    db_url: str, tmp_path: Path, runtimes: Any
) -> None:
    settings = settings_for(db_url, tmp_path)
    right = FixedClock(T0)
    # The replica whose clock is an hour ahead (no skew check here: an old lease row, or one
    # written before the check existed, must not stall anyone either).
    ahead = runtimes(settings, clock=FixedClock(T0 + HOUR))
    on_time = runtimes(settings, clock=right)
    assert ahead.tick is not None
    assert on_time.tick is not None
    ahead.tick.max_clock_skew_s = None
    on_time.tick.max_clock_skew_s = None
    assert ahead.tick.run_once().won
    # One period later the replica on the right clock ticks: the lease written an hour ahead is
    # longer than any lease may be (GOODWILL_TICK_MAX_LEASE_S), so it is void.
    right.advance(timedelta(seconds=10))
    assert on_time.tick.run_once().won
    holder, ticked_at = on_time.app.store.last_tick() or ("", T0)
    assert (holder, ticked_at) == (on_time.tick.holder, right.now())
    # An ordinary lease still holds for its period.
    right.advance(timedelta(seconds=1))
    third = runtimes(settings, clock=right)
    assert third.tick is not None
    assert not third.tick.run_once().won


def test_a_replica_whose_clock_is_skewed_refuses_the_lease_and_says_so(
    db_url: str, tmp_path: Path, runtimes: Any
) -> None:
    settings = settings_for(db_url, tmp_path)
    skewed = runtimes(settings, clock=OffsetClock(HOUR))
    assert skewed.tick is not None
    assert not skewed.tick.run_once().won
    assert skewed.app.store.last_tick() is None  # the lease row was never written
    status, body = readyz(skewed)
    assert status == 503
    assert body["checks"]["clock"] == "fail"
    assert body["failed"]["clock"].startswith("CheckFailed: this process's clock is 36")
    assert "GOODWILL_MAX_CLOCK_SKEW_S" in body["failed"]["clock"]
    assert body["details"]["clock"]["skew_s"] > 3000  # seconds ahead of the database's now()
    # The replica on a good clock takes the lease; its clock check passes.
    good = runtimes(settings)
    assert good.tick is not None
    assert good.tick.run_once().won
    status, body = readyz(good)
    assert (status, body["checks"]["clock"], body["checks"]["tick"]) == (200, "ok", "ok")
    assert abs(body["details"]["clock"]["skew_s"]) < 60
    assert body["details"]["tick"]["failed_rounds"] == 0


def test_readiness_follows_completed_rounds_whatever_the_lease_row_says(
    db_url: str, tmp_path: Path, runtimes: Any
) -> None:
    settings = settings_for(db_url, tmp_path)
    runtime = runtimes(settings)
    assert runtime.tick is not None
    # A replica with a clock an hour ahead took the lease: its ticked_at is in the future.
    assert runtime.app.store.try_acquire_tick("elsewhere:1", datetime.now(UTC) + HOUR, 9)
    status, body = readyz(runtime)
    assert status == 503
    assert body["failed"]["tick"] == "CheckFailed: no tick round has completed yet"
    # This replica's round completes (the future lease is void) and writes the heartbeat.
    assert runtime.tick.run_once().won
    status, body = readyz(runtime)
    assert (status, body["checks"]["tick"]) == (200, "ok")
    # Then nothing completes for ten minutes (6 intervals of 10 s is the limit).
    age_heartbeat(runtime.app.store, timedelta(minutes=10))
    status, body = readyz(runtime)
    assert status == 503
    assert body["failed"]["tick"].startswith("CheckFailed: no tick round completed for 60")
    assert "limit 60 s" in body["failed"]["tick"]


# -- writes that fail --------------------------------------------------------------------------


@pytest.mark.services
def test_a_read_only_database_fails_readiness_though_select_1_answers(
    pg_url: str, tmp_path: Path, runtimes: Any
) -> None:
    fast = {"tick_interval_s": 0.2}
    writer = runtimes(settings_for(pg_url, tmp_path, **fast))
    assert writer.tick is not None
    assert writer.tick.run_once().won  # the heartbeat is fresh
    # The processes under test connect in read-only transaction mode (a standby, a database
    # switched to read-only): SELECT 1 answers, every write fails.
    read_only = pg_url + "%20-cdefault_transaction_read_only%3Don"
    worker = runtimes(settings_for(read_only, tmp_path, **fast), with_tick=False)
    status, body = readyz(worker)
    assert status == 503
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["database_write"] == "fail"
    assert "ReadOnlySqlTransaction" in body["failed"]["database_write"]
    assert body["checks"]["tick"] == "ok"  # the writer's rounds still complete
    # A tick process on such a connection fails every round; after 3 in a row it is not ready,
    # though its failure count could not be written and the writer's heartbeat is fresh.
    ticker = runtimes(settings_for(read_only, tmp_path, **fast))
    assert ticker.tick is not None
    ticker.tick.start()
    wait_until(
        lambda: readyz(ticker)[1]["checks"]["tick"] == "fail",
        timeout_s=30,
        what="the read-only tick to fail readiness",
        diagnose=lambda: str(readyz(ticker)),
    )
    ticker.tick.stop()
    status, body = readyz(ticker)
    assert body["checks"]["database"] == "ok"
    reason = body["failed"]["tick"]
    assert reason.startswith("CheckFailed: "), reason
    assert "tick rounds failed in a row" in reason
    assert "ReadOnlySqlTransaction" in reason
    assert body["details"]["tick"]["failed_rounds"] >= 3


@pytest.mark.services
def test_disk_full_fails_readiness_in_every_process_after_three_failed_rounds(
    pg_url: str, tmp_path: Path, runtimes: Any
) -> None:
    fast = {"tick_interval_s": 0.2}
    ticker = runtimes(settings_for(pg_url, tmp_path, **fast))
    other = runtimes(settings_for(pg_url, tmp_path, **fast), with_tick=False)
    assert ticker.tick is not None
    assert ticker.tick.run_once().won
    assert readyz(other)[0] == 200
    # The disk fills up under the tick lease table: SQLSTATE 53100 on every UPDATE of it.
    with ticker.app.engine.begin() as conn:
        conn.execute(
            text(
                "CREATE FUNCTION disk_full() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                "RAISE EXCEPTION 'could not extend file: No space left on device' "
                "USING ERRCODE = '53100'; END $$"
            )
        )
        conn.execute(
            text(
                "CREATE TRIGGER disk_full BEFORE UPDATE ON tick_lease "
                "FOR EACH STATEMENT EXECUTE FUNCTION disk_full()"
            )
        )
    ticker.tick.start()
    # The failure count lives in the heartbeat row, so a process that does not tick sees it.
    wait_until(
        lambda: readyz(other)[1]["checks"]["tick"] == "fail",
        timeout_s=30,
        what="the other process to see the failed rounds",
        diagnose=lambda: str(readyz(other)),
    )
    ticker.tick.stop()
    status, body = readyz(other)
    assert status == 503
    assert body["checks"]["database"] == "ok"
    assert "tick rounds failed in a row" in body["failed"]["tick"]
    assert "DiskFull" in body["failed"]["tick"]
    assert readyz(ticker)[1]["checks"]["tick"] == "fail"


def test_the_heartbeat_is_written_with_the_database_clock(
    db_url: str, tmp_path: Path, runtimes: Any
) -> None:
    # A replica a little ahead (inside the allowed skew) writes the beat: its age is measured
    # against the database's now(), so it neither looks fresher nor older than it is.
    settings = settings_for(db_url, tmp_path, max_clock_skew_s=30)
    runtime = runtimes(settings, clock=OffsetClock(timedelta(seconds=20)))
    assert runtime.tick is not None
    assert runtime.tick.run_once().won
    beat = runtime.app.store.heartbeat("tick")
    assert beat is not None
    assert beat.failures == 0
    database_now = runtime.app.store.database_now()
    assert timedelta(0) <= database_now - beat.beat_at < timedelta(seconds=15)
    assert beat.holder == runtime.tick.holder


# -- the revoked app-wide grant without GOODWILL_SECRET_KEY ------------------------------------


def test_a_revoked_service_account_grant_is_flagged_without_a_secret_key(
    tmp_path: Path, runtimes: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    with GoogleEmulator() as emulator:
        owner, peer = "alex@corp.example", "sam@corp.example"
        emulator.add_calendar(peer)  # the owner is not delegated: the token URL says invalid_grant
        account = service_account_file(tmp_path / "sa.json")
        url = f"sqlite:///{(tmp_path / 'data' / 'goodwill.db').as_posix()}"
        google = GoogleSettings(
            service_account_file=account,
            token_uri=emulator.token_uri,
            api_endpoint=emulator.api_endpoint,
            timeout_s=10,
        )
        settings = settings_for(url, tmp_path, google=google)
        assert settings.secret_key is None  # a valid set-up: a service account stores no grants
        write_policy(settings.policy_dir, owner, [peer])
        runtime = runtimes(settings, with_tick=False)
        planning.register_policies(runtime.app.pipeline)
        user = runtime.app.store.get_user_by_email(owner)
        assert user is not None
        run = planning.plan_user(runtime.app.pipeline, user.id)
        assert run.error == "credential revoked"
        assert any(r["grant_type"] for r in emulator.token_requests)
    [revoked] = runtime.app.store.revoked_credentials()
    assert (revoked.user_email, revoked.provider) == (owner, "google")
    assert "invalid_grant" in revoked.reason
    again = planning.plan_user(runtime.app.pipeline, user.id)  # a second round: still flagged
    assert again.error is not None
    assert len(runtime.app.store.revoked_credentials()) == 1
    status, body = readyz(runtime)
    assert status == 503
    assert body["failed"]["credentials"].startswith(
        "CheckFailed: 1 revoked credential(s) (google=1)"
    )
    for key, value in {
        "GOODWILL_DATA_DIR": str(settings.data_dir),
        "GOODWILL_DATABASE_URL": url,
        "GOODWILL_POLICY_DIR": str(settings.policy_dir),
        "GOODWILL_GOOGLE__SERVICE_ACCOUNT_FILE": str(account),
    }.items():
        monkeypatch.setenv(key, value)
    capsys.readouterr()
    assert main(["report", "--user", owner]) == 0
    out = capsys.readouterr().out
    assert "google: revoked since" in out
