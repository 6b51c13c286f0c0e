"""Broker setup: the one sanctioned global (dramatiq's broker), built from settings.

``embedded`` is a StubBroker drained by an in-process Worker; ``redis://…`` and ``amqp://…`` are
the scale modes. The database stays the source of truth in every mode: a lost message is re-sent
by the tick (see workers/tick.py), so the broker only signals that work is waiting.
"""

from __future__ import annotations

from collections.abc import Sequence

import dramatiq
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import Middleware

from scheduler.core.errors import ConfigurationError

__all__ = ["make_broker"]


def make_broker(
    url: str, *, set_global: bool = True, middleware: Sequence[Middleware] = ()
) -> dramatiq.Broker:
    """Build the broker named by ``url`` and (by default) install it as dramatiq's global.

    Redis: heartbeat and maintenance are tuned so a killed worker's messages come back in tens of
    seconds instead of the default ~17 minutes (../shared/reference/dramatiq-infra.md §1.3). The
    tick re-drives expired leases anyway, so this only makes recovery faster.
    RabbitMQ: publisher confirms on, so a send that returned is on the broker.
    """
    broker: dramatiq.Broker
    if url == "embedded":
        broker = StubBroker()
        for m in middleware:
            broker.add_middleware(m)
        broker.emit_after("process_boot")  # without it TimeLimit is silently off
    elif url.startswith(("redis://", "rediss://")):
        from dramatiq.brokers.redis import RedisBroker

        broker = RedisBroker(  # type: ignore[no-untyped-call]
            url=url, heartbeat_timeout=15_000, maintenance_chance=100_000
        )
    elif url.startswith(("amqp://", "amqps://")):
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        broker = RabbitmqBroker(url=url, confirm_delivery=True)
    else:
        raise ConfigurationError(
            f"unknown broker URL {url!r}: use 'embedded', redis://HOST:PORT/DB or amqp://USER:PASS@HOST:PORT/"
        )
    if url != "embedded":
        for m in middleware:
            broker.add_middleware(m)
        # The dramatiq CLI would emit this in each worker process; we run the Worker ourselves.
        broker.emit_after("process_boot")
    if set_global:
        dramatiq.set_broker(broker)
    return broker
