"""Process runtimes: ``goodwill serve`` (tick + workers + ops in one process), ``goodwill worker``
and ``goodwill tick`` for scale mode. SIGTERM/SIGINT stop them gracefully: the tick stops first,
the worker finishes what it is running, and anything unfinished is re-driven from the database.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from types import FrameType
from typing import TYPE_CHECKING

import dramatiq
from dramatiq.middleware import Middleware

from scheduler.entrypoints.bootstrap import App, bootstrap
from scheduler.entrypoints.ops import OpsServer
from scheduler.entrypoints.policy_watch import DirectoryWatch
from scheduler.settings import Settings
from workers.actors import QUEUE, Actors, declare_actors, queue_depth
from workers.broker import make_broker
from workers.tick import Tick

if TYPE_CHECKING:
    from scheduler.entrypoints.web.server import WebServer

__all__ = ["Runtime", "build_runtime", "wait_for_signal", "warn_about_upkeep"]

log = logging.getLogger("goodwill.runtime")


@dataclass
class Runtime:
    app: App
    broker: dramatiq.Broker
    actors: Actors
    tick: Tick | None
    worker: dramatiq.Worker | None
    ops: OpsServer | None = None
    #: The owner's web page (``goodwill serve``, ``goodwill web``), or None.
    web: WebServer | None = None
    #: The tick's watch of the policy directory (``GOODWILL_POLICY_WATCH``), or None.
    policy_watch: DirectoryWatch | None = None

    def start(self) -> None:
        if self.policy_watch is not None:
            self.policy_watch.start()
        if self.worker is not None:
            self.worker.start()
        if self.tick is not None:
            self.tick.start()
        if self.ops is not None:
            self.ops.start()
            log.info("ops endpoint on %s", self.ops.url)
        if self.web is not None:
            self.web.start()  # logs the page's address

    def stop(self) -> None:
        try:
            if self.web is not None:
                self.web.stop()  # first: no new owner action starts while the rest stops
            if self.tick is not None:
                self.tick.stop()
            if self.worker is not None:
                self.worker.stop(timeout=30_000)
            self.broker.close()
            if self.ops is not None:
                self.ops.stop()
        finally:
            if self.policy_watch is not None:
                self.policy_watch.close()

    def drain(self, timeout_s: float = 60.0) -> None:
        """Embedded mode: wait until every message that can run now has run.

        Delayed messages (a broker retry honouring a short Retry-After) are not waited for: the
        retry also lives in the database (``next_attempt_at``) and the tick re-sends it when it is
        due, in this process or the next. A message is acknowledged on the main queue only after
        its actor returned and any retry was put on the delay queue, so an empty main queue means
        the workers are idle.

        Raises:
            dramatiq.errors.QueueJoinTimeout: messages that are due still ran after ``timeout_s``.
        """
        from dramatiq.brokers.stub import StubBroker
        from dramatiq.common import join_queue

        if isinstance(self.broker, StubBroker) and self.worker is not None:
            join_queue(self.broker.queues[QUEUE], timeout=timeout_s)  # type: ignore[no-untyped-call]


def build_runtime(
    settings: Settings,
    *,
    with_tick: bool = True,
    with_worker: bool = True,
    with_ops: bool = False,
    worker_threads: int = 4,
    auto_migrate: bool = False,
    app: App | None = None,
    with_web: bool = False,
) -> Runtime:
    """Wire one process. ``with_ops`` serves /livez, /readyz and /metrics on ``settings.ops``;
    ``with_web`` serves the owner's page on ``settings.web`` (needs ``GOODWILL_SECRET_KEY``)."""
    app = app or bootstrap(settings, auto_migrate=auto_migrate)
    if with_tick:  # once per deployment (every deployment has one tick), not per worker
        warn_about_upkeep(app)
    web = None
    if with_web:
        from scheduler.entrypoints.web.server import build_web_server

        web = build_web_server(app)  # binds the socket now: a taken port fails here
    middleware: list[Middleware] = []
    prom: Middleware | None = None
    if with_ops and with_worker:
        from dramatiq.middleware.prometheus import Prometheus

        prom = Prometheus()
        middleware.append(prom)
    broker = make_broker(settings.broker_url, middleware=middleware)
    actors = declare_actors(broker, app.pipeline)
    tick = (
        Tick(
            app.pipeline,
            actors,
            interval_s=settings.tick_interval_s,
            max_lease_s=settings.effective_tick_max_lease_s,
            max_clock_skew_s=settings.max_clock_skew_s,
            owner_mail=owner_mail_round(settings, app),
            batch=settings.tick_batch,
            queue_max=settings.tick_queue_max,
            plans_per_message=settings.tick_plans_per_message,
            queue_depth=lambda: queue_depth(broker),
            sync_every=timedelta(seconds=settings.sync_every_s),
            sync_max_every=timedelta(seconds=settings.sync_max_every_s),
        )
        if with_tick
        else None
    )
    worker = (
        dramatiq.Worker(broker, worker_threads=worker_threads, worker_timeout=200)
        if with_worker
        else None
    )
    ops = _ops_server(settings, app, broker, tick, prom) if with_ops else None
    watch = None
    directory = app.pipeline.policies.directory
    if tick is not None and directory is not None and settings.policy_watch:
        # Started with the runtime: a quiet round then stats only the files that changed.
        watch = DirectoryWatch(directory)
        app.pipeline.scan.feed = watch
    return Runtime(app, broker, actors, tick, worker, ops, web, watch)


def warn_about_upkeep(app: App) -> None:
    """Log what the database server's settings will cost as the tables grow (best effort)."""
    from sqlalchemy.exc import SQLAlchemyError

    from scheduler.store import maintenance_warning

    try:
        warning = maintenance_warning(app.engine)
    except SQLAlchemyError as exc:  # the store's own checks report an unreachable server
        log.debug("could not read the database server's settings: %s", type(exc).__name__)
        return
    if warning is not None:
        log.warning("%s", warning)


def owner_mail_round(settings: Settings, app: App) -> Callable[[], object] | None:
    """What the tick calls each round to send the owners' due digests and notices (None: not
    configured, see :func:`scheduler.entrypoints.digest_command.owner_mailer`)."""
    from scheduler.app.digest import send_owner_mails
    from scheduler.entrypoints.digest_command import owner_mailer

    post = owner_mailer(settings, app)
    if post is None:
        return None
    return lambda: send_owner_mails(app.pipeline, post)


def _ops_server(
    settings: Settings, app: App, broker: dramatiq.Broker, tick: Tick | None, prom: object
) -> OpsServer:
    from prometheus_client import CollectorRegistry

    from scheduler.entrypoints.metrics import Metrics, StoreCollector
    from scheduler.entrypoints.ops import (
        DramatiqMetricsCollector,
        Heartbeats,
        broker_check,
        clock_check,
        credentials_check,
        db_check,
        heartbeat_check,
        migrations_check,
        write_check,
    )

    registry = CollectorRegistry()
    app.pipeline.metrics = Metrics(registry)
    registry.register(StoreCollector(app.store, app.clock))
    if prom is not None:
        registry.register(DramatiqMetricsCollector(prom))
    heartbeats = Heartbeats()
    if tick is not None:
        max_age = max(30.0, 6 * settings.tick_interval_s)
        heartbeats.beat("tick", max_age_s=max_age)
        tick.on_round = lambda: heartbeats.beat("tick", max_age_s=max_age)

    def local_failures() -> tuple[int, str | None]:
        return (tick.failed_rounds, tick.last_error) if tick is not None else (0, None)

    readiness = {
        "database": db_check(app.store),
        "migrations": migrations_check(app.engine),
        "broker": broker_check(broker),
        # Rounds completed (by any replica, by the database's clock) and rounds failed in a row
        # (recorded by any replica, or counted by this process's own tick).
        "tick": heartbeat_check(
            app.store,
            max_age_s=max(30.0, settings.tick_stale_rounds * settings.tick_interval_s),
            max_failed_rounds=settings.tick_max_failed_rounds,
            local_failures=local_failures,
        ),
        "clock": clock_check(app.store, app.clock, settings.max_clock_skew_s),
        "credentials": credentials_check(app.store),
    }
    if tick is None:
        # No tick here, so no completed round proves this process's writes: probe them.
        readiness["database_write"] = write_check(
            app.store, holder=f"{socket.gethostname()}:{os.getpid()}"
        )
    return OpsServer(
        settings.ops.host,
        settings.ops.port,
        liveness=heartbeats.liveness,
        readiness=readiness,
        registry=registry,
    )


def wait_for_signal(on_stop: Callable[[], None]) -> None:
    """Block until SIGTERM or SIGINT, then call ``on_stop`` once."""
    stopped = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        log.info("signal %s: shutting down", signum)
        stopped.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    while not stopped.wait(1.0):
        pass
    on_stop()
