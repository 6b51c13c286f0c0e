"""Process runtimes: ``goodwill serve`` (tick + workers + ops in one process), ``goodwill worker``
and ``goodwill tick`` for scale mode. SIGTERM/SIGINT stop them gracefully: the tick stops first,
the worker finishes what it is running, and anything unfinished is re-driven from the database.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType

import dramatiq

from scheduler.settings import Settings
from workers.actors import Actors, declare_actors
from workers.bootstrap import App, bootstrap
from workers.broker import make_broker
from workers.tick import Tick

__all__ = ["Runtime", "build_runtime", "wait_for_signal"]

log = logging.getLogger("goodwill.runtime")


@dataclass
class Runtime:
    app: App
    broker: dramatiq.Broker
    actors: Actors
    tick: Tick | None
    worker: dramatiq.Worker | None

    def start(self) -> None:
        if self.worker is not None:
            self.worker.start()
        if self.tick is not None:
            self.tick.start()

    def stop(self) -> None:
        if self.tick is not None:
            self.tick.stop()
        if self.worker is not None:
            self.worker.stop(timeout=30_000)
        self.broker.close()

    def drain(self, timeout_s: float = 60.0) -> None:
        """Embedded mode: wait until the in-process queue is empty and the workers are idle."""
        from dramatiq.brokers.stub import StubBroker

        if isinstance(self.broker, StubBroker) and self.worker is not None:
            self.broker.join(_queue(self.broker), timeout=int(timeout_s * 1000), fail_fast=False)
            self.worker.join()


def _queue(broker: dramatiq.Broker) -> str:
    from workers.actors import QUEUE

    return QUEUE


def build_runtime(
    settings: Settings,
    *,
    with_tick: bool = True,
    with_worker: bool = True,
    worker_threads: int = 4,
    auto_migrate: bool = False,
    app: App | None = None,
) -> Runtime:
    app = app or bootstrap(settings, auto_migrate=auto_migrate)
    broker = make_broker(settings.broker_url)
    actors = declare_actors(broker, app.pipeline)
    tick = Tick(app.pipeline, actors, interval_s=settings.tick_interval_s) if with_tick else None
    worker = (
        dramatiq.Worker(broker, worker_threads=worker_threads, worker_timeout=200)
        if with_worker
        else None
    )
    return Runtime(app, broker, actors, tick, worker)


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
