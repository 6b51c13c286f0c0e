"""The ops endpoint over real HTTP on 127.0.0.1, with real stores and brokers.

Outages are simulated without touching the machine's services: PostgreSQL and Redis are reached
through a loopback TCP proxy the test stops and restarts; SQLite by moving its directory away.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, text

from scheduler.core.clock import FixedClock
from scheduler.core.errors import RateLimited
from scheduler.core.states import MeetingState
from scheduler.entrypoints.metrics import METRIC_NAMES, Metrics, StoreCollector
from scheduler.entrypoints.ops import (
    CheckFailed,
    DramatiqMetricsCollector,
    Heartbeats,
    OpsServer,
    broker_check,
    credentials_check,
    db_check,
    migrations_check,
    multiprocess_registry,
    tick_check,
)
from scheduler.store import NewMeeting, SecretBox, Store, make_engine, migrate
from tests.conftest import require_service
from tests.integration.reliability_support import TcpProxy

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SECRETISH = ("@", "token", "Bearer")


# -- helpers -----------------------------------------------------------------------------------


@pytest.fixture
def proxy_factory() -> Iterator[Any]:
    proxies: list[TcpProxy] = []

    def make(target_port: int) -> TcpProxy:
        proxy = TcpProxy(target_port)
        proxy.start()
        proxies.append(proxy)
        return proxy

    yield make
    for proxy in proxies:
        proxy.stop()


def get(url: str) -> tuple[int, str, str]:
    """(status, content type, body) of a GET, 4xx/5xx included."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.headers["Content-Type"], exc.read().decode()


def get_json(url: str) -> tuple[int, dict[str, Any]]:
    status, content_type, body = get(url)
    assert content_type == "application/json"
    assert not any(word in body for word in SECRETISH), body
    return status, json.loads(body)


def serve(**kwargs: Any) -> OpsServer:
    kwargs.setdefault("liveness", lambda: (True, {}))
    kwargs.setdefault("readiness", {})
    kwargs.setdefault("registry", CollectorRegistry())
    server = OpsServer("127.0.0.1", 0, **kwargs)
    server.start()
    return server


@pytest.fixture
def ops() -> Iterator[Any]:
    servers: list[OpsServer] = []

    def make(**kwargs: Any) -> OpsServer:
        server = serve(**kwargs)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


def sqlite_store(tmp_path: Path) -> tuple[Store, Engine, Path]:
    data = tmp_path / "data"
    url = f"sqlite:///{(data / 'goodwill.db').as_posix()}"
    migrate(url)
    engine = make_engine(url)
    return Store(engine, secrets=SecretBox("test key")), engine, data


# -- /livez ------------------------------------------------------------------------------------


def test_livez_follows_liveness_and_never_runs_readiness_checks(ops: Any) -> None:
    state = {"alive": True}
    ran: list[str] = []

    def readiness_probe() -> None:
        ran.append("db")

    server = ops(
        liveness=lambda: (state["alive"], {"tick_thread": state["alive"]}),
        readiness={"database": readiness_probe},
    )
    assert get_json(server.url + "/livez") == (200, {"status": "ok", "tick_thread": True})
    state["alive"] = False
    assert get_json(server.url + "/livez") == (503, {"status": "fail", "tick_thread": False})
    assert ran == []


def test_livez_details_and_errors_carry_no_addresses(ops: Any) -> None:
    def broken() -> tuple[bool, dict[str, Any]]:
        raise RuntimeError("heartbeat of sam@corp.example stale")

    status, body = get_json(ops(liveness=broken).url + "/livez")
    assert status == 503
    assert body["reason"] == "RuntimeError: heartbeat of [email] stale"
    status, body = get_json(
        ops(liveness=lambda: (True, {"note": "owner kim@corp.example"})).url + "/livez"
    )
    assert (status, body["note"]) == (200, "owner [email]")


def test_unknown_path_is_404(ops: Any) -> None:
    assert get_json(ops().url + "/nope")[0] == 404


# -- /readyz -----------------------------------------------------------------------------------


def test_readyz_with_sqlite_store_goes_down_and_comes_back(ops: Any, tmp_path: Path) -> None:
    store, engine, data = sqlite_store(tmp_path)
    server = ops(
        readiness={"database": db_check(store), "migrations": migrations_check(engine)},
        check_timeout_s=3,
    )
    assert get_json(server.url + "/readyz") == (
        200,
        {"status": "ok", "checks": {"database": "ok", "migrations": "ok"}},
    )
    # The volume disappears. Pooled connections still hold the old inode, so drop them, as a
    # restart or pool recycle would.
    away = tmp_path / "away"
    data.rename(away)
    engine.dispose()
    status, body = get_json(server.url + "/readyz")
    assert status == 503
    assert body["checks"]["database"] == "fail"
    assert "database" in body["failed"]
    assert body["failed"]["database"].startswith("OperationalError: ")
    away.rename(data)
    assert get_json(server.url + "/readyz")[0] == 200
    engine.dispose()


def test_readyz_reports_migrations_behind(ops: Any, tmp_path: Path) -> None:
    url = f"sqlite:///{(tmp_path / 'empty.db').as_posix()}"
    engine = make_engine(url)
    status, body = get_json(ops(readiness={"migrations": migrations_check(engine)}).url + "/readyz")
    assert status == 503
    assert body["failed"] == {
        "migrations": "CheckFailed: database schema is not at head: run `goodwill migrate`"
    }
    engine.dispose()


def test_readyz_times_out_a_hanging_check_without_piling_up_threads(ops: Any) -> None:
    release = threading.Event()
    calls: list[int] = []

    def hanging() -> None:
        calls.append(1)
        release.wait(10)

    server = ops(readiness={"broker": hanging, "ok": lambda: None}, check_timeout_s=0.2)
    status, body = get_json(server.url + "/readyz")
    assert status == 503
    assert body["checks"] == {"broker": "fail", "ok": "ok"}
    assert body["failed"]["broker"].startswith("timeout")
    assert get_json(server.url + "/readyz")[0] == 503
    assert len(calls) == 1  # the second probe did not start another hanging call
    release.set()
    for _ in range(50):
        if get_json(server.url + "/readyz")[0] == 200:
            break
    assert get_json(server.url + "/readyz")[0] == 200


def test_tick_and_credentials_checks(ops: Any, tmp_path: Path) -> None:
    store, engine, _ = sqlite_store(tmp_path)
    clock = FixedClock(T0)
    server = ops(
        readiness={
            "tick": tick_check(store, clock, max_age_s=60),
            "credentials": credentials_check(store),
        }
    )
    status, body = get_json(server.url + "/readyz")
    assert (status, body["failed"]) == (503, {"tick": "CheckFailed: no tick has run yet"})
    assert store.try_acquire_tick("host:1", T0, 10)
    assert get_json(server.url + "/readyz")[0] == 200
    clock.advance(timedelta(seconds=61))
    status, body = get_json(server.url + "/readyz")
    assert body["failed"] == {"tick": "CheckFailed: last tick 61 s ago (limit 60 s)"}
    assert store.try_acquire_tick("host:1", clock.now(), 10)
    store.save_credential("sam@corp.example", "google", b"grant", now=T0)
    store.save_credential("kim@corp.example", "google", b"grant", now=T0)
    store.mark_credential_revoked("sam@corp.example", "google", "invalid_grant", now=T0)
    store.mark_credential_revoked("kim@corp.example", "google", "invalid_grant", now=T0)
    status, body = get_json(server.url + "/readyz")  # no '@' (asserted in get_json)
    assert status == 503
    assert body["failed"]["credentials"].startswith(
        "CheckFailed: 2 revoked credential(s) (google=2)"
    )
    engine.dispose()


@pytest.mark.services
def test_readyz_with_postgresql_through_a_proxy(ops: Any, proxy_factory: Any) -> None:
    require_service("PostgreSQL", 5432)
    pytest.importorskip("psycopg")
    proxy: TcpProxy = proxy_factory(5432)
    # The test database: pg_database from tests/conftest_db.py, reached through the proxy.
    import psycopg

    name = f"goodwill_ops_{os.getpid()}_{secrets.token_hex(4)}"
    admin_dsn = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=3"
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = f"postgresql+psycopg://postgres@127.0.0.1:{proxy.port}/{name}?connect_timeout=2"
        migrate(url)
        engine = make_engine(url)
        store = Store(engine)
        server = ops(
            readiness={"database": db_check(store), "migrations": migrations_check(engine)},
            check_timeout_s=3,
        )
        assert get_json(server.url + "/readyz")[0] == 200
        proxy.stop()
        status, body = get_json(server.url + "/readyz")
        assert status == 503
        assert body["checks"] == {"database": "fail", "migrations": "fail"}
        assert body["failed"]["database"].startswith("OperationalError")
        proxy.start()
        assert get_json(server.url + "/readyz") == (
            200,
            {"status": "ok", "checks": {"database": "ok", "migrations": "ok"}},
        )
        engine.dispose()
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.services
def test_readyz_with_redis_broker_through_a_proxy(ops: Any, proxy_factory: Any) -> None:
    require_service("Redis", 6379)
    from dramatiq.brokers.redis import RedisBroker

    proxy: TcpProxy = proxy_factory(6379)
    broker = RedisBroker(url=f"redis://127.0.0.1:{proxy.port}/15")
    try:
        server = ops(readiness={"broker": broker_check(broker, timeout_s=1)})
        assert get_json(server.url + "/readyz") == (
            200,
            {"status": "ok", "checks": {"broker": "ok"}},
        )
        proxy.stop()
        status, body = get_json(server.url + "/readyz")
        assert status == 503
        assert body["failed"]["broker"].startswith("ConnectionError")
        proxy.start()
        assert get_json(server.url + "/readyz")[0] == 200
    finally:
        broker.close()


@pytest.mark.services
def test_broker_check_rabbitmq(ops: Any, proxy_factory: Any) -> None:
    require_service("RabbitMQ", 5672)
    from dramatiq.brokers.rabbitmq import RabbitmqBroker

    proxy: TcpProxy = proxy_factory(5672)
    broker = RabbitmqBroker(url=f"amqp://guest:guest@127.0.0.1:{proxy.port}/")
    server = ops(readiness={"broker": broker_check(broker, timeout_s=2)}, check_timeout_s=4)
    assert get_json(server.url + "/readyz")[0] == 200
    proxy.stop()
    status, body = get_json(server.url + "/readyz")  # no "guest:guest@" (asserted in get_json)
    assert status == 503
    assert "broker" in body["failed"]


def test_broker_check_stub_is_ok_and_unknown_is_refused() -> None:
    from dramatiq.brokers.stub import StubBroker

    broker_check(StubBroker())()
    with pytest.raises(TypeError, match="no readiness check for broker type object"):
        broker_check(object())


def test_check_failed_is_raised_by_factories(tmp_path: Path) -> None:
    store, engine, _ = sqlite_store(tmp_path)
    with pytest.raises(CheckFailed, match="no tick"):
        tick_check(store, FixedClock(T0), 60)()
    engine.dispose()


# -- /metrics ----------------------------------------------------------------------------------


def families(text: str) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_metrics_expose_goodwill_families_without_addresses(ops: Any, tmp_path: Path) -> None:
    store, engine, _ = sqlite_store(tmp_path)
    clock = FixedClock(T0)
    user = store.upsert_user("alex@corp.example", "policies/alex.yaml", "h", now=T0)
    start = T0 + timedelta(days=2)
    store.add_meetings(
        user,
        [
            NewMeeting(
                "sam@corp.example",
                "coffee",
                start,
                start + timedelta(minutes=30),
                "auto",
                f"key-{i}",
                "google",
                state=state,
            )
            for i, state in enumerate([MeetingState.APPROVED, MeetingState.APPROVED])
        ],
        now=T0,
    )
    store.try_acquire_tick("host:1", T0 - timedelta(seconds=7), 10)
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    registry.register(StoreCollector(store, clock))
    metrics.bookings_total.inc()
    with metrics.provider_call("google", "freebusy"):
        pass
    with pytest.raises(RateLimited), metrics.provider_call("google", "events.insert"):
        raise RateLimited("slow down for sam@corp.example", retry_after_s=3)
    with metrics.plan_cycle():
        pass
    metrics.lease_redrives_total.inc()

    server = ops(registry=registry)
    status, content_type, body = get(server.url + "/metrics")
    assert status == 200
    assert content_type.startswith("text/plain")
    assert "@" not in body
    assert "token" not in body.lower()
    found = families(body)
    # Parsed family names drop the counter's _total suffix.
    for name in METRIC_NAMES:
        assert name.removesuffix("_total") in found, name
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in found.values()
        for s in f.samples
    }
    assert samples[("goodwill_meetings", (("state", "approved"),))] == 2
    assert samples[("goodwill_queue_depth", ())] == 2
    assert samples[("goodwill_tick_age_seconds", ())] == 7
    assert samples[("goodwill_store_up", ())] == 1
    assert samples[("goodwill_bookings_total", ())] == 1
    key = (("operation", "events.insert"), ("provider", "google"), ("status", "RateLimited"))
    assert samples[("goodwill_provider_calls_total", key)] == 1
    assert samples[("goodwill_rate_limited_total", (("provider", "google"),))] == 1
    engine.dispose()


def test_metrics_scrape_survives_a_database_outage(ops: Any, tmp_path: Path) -> None:
    store, engine, data = sqlite_store(tmp_path)
    registry = CollectorRegistry()
    registry.register(StoreCollector(store, FixedClock(T0)))
    server = ops(registry=registry)
    shutil.move(data, tmp_path / "away")
    engine.dispose()
    status, _, body = get(server.url + "/metrics")
    assert status == 200
    found = families(body)
    assert [s.value for s in found["goodwill_store_up"].samples] == [0]
    assert "goodwill_meetings" not in found
    engine.dispose()


def test_dramatiq_middleware_metrics_in_process(ops: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import dramatiq
    from dramatiq.brokers.stub import StubBroker
    from dramatiq.middleware.prometheus import Prometheus

    # The middleware points prometheus at its multiprocess directory at boot. setenv records
    # the current value (or its absence) so monkeypatch restores it after the test.
    for name in ("PROMETHEUS_MULTIPROC_DIR", "prometheus_multiproc_dir"):
        monkeypatch.setenv(name, os.environ.get(name, ""))
        if not os.environ[name]:
            monkeypatch.delenv(name)
    broker = StubBroker()
    prom = Prometheus()
    broker.add_middleware(prom)
    broker.emit_after("process_boot")
    done = threading.Event()

    @dramatiq.actor(broker=broker, queue_name="ops_test")
    def ping() -> None:
        done.set()

    worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=50)
    worker.start()
    try:
        ping.send()
        broker.join("ops_test", timeout=5000)
        worker.join()
    finally:
        worker.stop()
    registry = CollectorRegistry()
    registry.register(DramatiqMetricsCollector(prom))
    _, _, body = get(ops(registry=registry).url + "/metrics")
    found = families(body)
    assert done.is_set()
    [sample] = [s for s in found["dramatiq_messages"].samples if s.name.endswith("_total")]
    assert sample.labels == {"queue_name": "ops_test", "actor_name": "ping"}
    assert sample.value == 1


def test_multiprocess_registry_reads_other_processes_files(tmp_path: Path) -> None:
    # Two "worker processes" wrote samples; the ops process merges them.
    import subprocess
    import sys

    code = (
        "from prometheus_client import CollectorRegistry\n"
        "from scheduler.entrypoints.metrics import Metrics\n"
        "Metrics(CollectorRegistry()).bookings_total.inc()\n"
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for _ in range(2):
        subprocess.run([sys.executable, "-c", code], env=env, check=True)
    registry = multiprocess_registry(str(tmp_path))
    assert registry.get_sample_value("goodwill_bookings_total") == 2


# -- liveness helper and metric helpers --------------------------------------------------------


def test_heartbeats_drive_livez(ops: Any) -> None:
    now = [1000.0]
    hb = Heartbeats(monotonic=lambda: now[0])
    stop = threading.Event()
    worker = threading.Thread(target=stop.wait, daemon=True)
    worker.start()
    hb.beat("tick", max_age_s=30)
    hb.watch("worker", worker)
    server = ops(liveness=hb.liveness)
    assert get_json(server.url + "/livez") == (200, {"status": "ok", "tick": "ok", "worker": "ok"})
    now[0] += 31
    status, body = get_json(server.url + "/livez")
    assert (status, body["tick"]) == (503, "stale: last beat 31 s ago")
    hb.beat("tick", max_age_s=30)
    stop.set()
    worker.join(5)
    status, body = get_json(server.url + "/livez")
    assert (status, body["tick"], body["worker"]) == (503, "ok", "thread exited")


def test_provider_call_as_decorator_and_labels_never_carry_addresses() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)

    @metrics.provider_call("microsoft", "getSchedule")
    def read(fail: bool) -> str:
        if fail:
            raise KeyError("x")
        return "done"

    assert read(False) == "done"
    with pytest.raises(KeyError):
        read(True)
    with metrics.provider_call("sam@corp.example", "Bearer abc"):
        pass
    value = registry.get_sample_value
    labels = {"provider": "microsoft", "operation": "getSchedule"}
    assert value("goodwill_provider_calls_total", {**labels, "status": "ok"}) == 1
    assert value("goodwill_provider_calls_total", {**labels, "status": "KeyError"}) == 1
    assert value("goodwill_provider_call_seconds_count", labels) == 2
    other = {"provider": "other", "operation": "other", "status": "ok"}
    assert value("goodwill_provider_calls_total", other) == 1
    assert "@" not in generate_latest(registry).decode()


def test_tick_age_follows_completed_rounds_by_the_database_clock(tmp_path: Path) -> None:
    """A replica whose clock runs a day ahead holds the lease while no round completes: the
    metric must show the stall, not a fresh tick."""
    store, engine, _ = sqlite_store(tmp_path)
    store.record_heartbeat("tick", "good:1")
    hour_ago = datetime.now(UTC) - timedelta(hours=1)
    with engine.begin() as conn:  # the last completed round was an hour ago
        conn.execute(
            text("UPDATE heartbeats SET beat_at = :at WHERE name = 'tick'"),
            {"at": hour_ago.replace(tzinfo=None).isoformat(sep=" ")},
        )
    far_ahead = datetime.now(UTC) + timedelta(days=1)
    store.try_acquire_tick("skewed:1", far_ahead, 10)  # the lease row says "ticked just now"
    registry = CollectorRegistry()
    registry.register(StoreCollector(store, FixedClock(far_ahead)))
    age = registry.get_sample_value("goodwill_tick_age_seconds")
    assert age is not None
    assert 3000 < age < 4000, age
    engine.dispose()
