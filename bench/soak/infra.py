"""The services one soak run uses, each its own and cleaned up after: a fresh PostgreSQL
database, a Redis database number (flushed before and after) or a RabbitMQ virtual host, and
the loopback proxies goodwill's processes reach them through, so the chaos can cut them.

Everything is on 127.0.0.1: PostgreSQL 5432 (user postgres, trust), Redis 6379, RabbitMQ 5672
(guest/guest).
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import urllib.parse
from dataclasses import dataclass, field

from tests.integration.reliability_support import TcpProxy
from workers.actors import QUEUE

__all__ = ["Broker", "Postgres", "make_broker"]

PG_PORT = 5432
REDIS_PORT = 6379
AMQP_PORT = 5672
_PG_ADMIN = f"host=127.0.0.1 port={PG_PORT} user=postgres dbname=postgres connect_timeout=5"


@dataclass
class Postgres:
    """A database created for one run (dropped by :meth:`drop`), reached directly or proxied."""

    name: str = field(default_factory=lambda: f"goodwill_soak_{secrets.token_hex(4)}")
    proxy: TcpProxy = field(default_factory=lambda: TcpProxy(PG_PORT))

    def create(self) -> None:
        import psycopg

        with psycopg.connect(_PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{self.name}"')
        self.proxy.start()

    @property
    def direct_url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{PG_PORT}/{self.name}?connect_timeout=5"

    @property
    def proxied_url(self) -> str:
        return (
            f"postgresql+psycopg://postgres@127.0.0.1:{self.proxy.port}/{self.name}"
            "?connect_timeout=3"
        )

    def drop(self) -> None:
        import psycopg

        self.proxy.stop()
        with psycopg.connect(_PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


class Broker:
    """One broker for one run: :meth:`prepare`, then :attr:`proxied_url`; :meth:`clean` after."""

    name: str
    upstream_port: int

    def __init__(self) -> None:
        self.proxy = TcpProxy(self.upstream_port)
        self.note = ""

    def prepare(self) -> None:
        self.proxy.start()

    @property
    def proxied_url(self) -> str:
        raise NotImplementedError

    def clean(self) -> None:
        self.proxy.stop()


class RedisBroker(Broker):
    """Redis database ``db`` (tests use 12 and 15), flushed before and after the run."""

    name = "redis"
    upstream_port = REDIS_PORT

    def __init__(self, db: int = 11) -> None:
        super().__init__()
        self.db = db

    def prepare(self) -> None:
        self._flush()
        super().prepare()

    @property
    def proxied_url(self) -> str:
        return f"redis://127.0.0.1:{self.proxy.port}/{self.db}"

    def clean(self) -> None:
        super().clean()
        self._flush()

    def _flush(self) -> None:
        import redis

        client = redis.Redis(host="127.0.0.1", port=REDIS_PORT, db=self.db)
        try:
            client.flushdb()
        finally:
            client.close()


class RabbitBroker(Broker):
    """A virtual host of its own when ``rabbitmqctl`` works here (so no other run's worker can
    take our messages), else the default one, purged."""

    name = "rabbitmq"
    upstream_port = AMQP_PORT

    def __init__(self) -> None:
        super().__init__()
        self.vhost = "/"
        self._created = False

    def prepare(self) -> None:
        wanted = f"goodwill-soak-{secrets.token_hex(4)}"
        if shutil.which("rabbitmqctl") and _ctl("add_vhost", wanted):
            if _ctl("set_permissions", "-p", wanted, "guest", ".*", ".*", ".*"):
                self.vhost, self._created = wanted, True
            else:
                _ctl("delete_vhost", wanted)
        if not self._created:
            self.note = "rabbitmqctl unavailable: default virtual host '/' (shared)"
        super().prepare()
        self._purge()

    @property
    def proxied_url(self) -> str:
        vhost = urllib.parse.quote(self.vhost, safe="")
        return f"amqp://guest:guest@127.0.0.1:{self.proxy.port}/{vhost}"

    def clean(self) -> None:
        super().clean()
        if self._created:
            _ctl("delete_vhost", self.vhost)
        else:
            self._purge()

    def _purge(self) -> None:
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        vhost = urllib.parse.quote(self.vhost, safe="")
        broker = RabbitmqBroker(url=f"amqp://guest:guest@127.0.0.1:{AMQP_PORT}/{vhost}")
        try:
            broker.declare_queue(QUEUE)  # with its delay and dead-letter queues
            broker.flush_all()
        finally:
            broker.close()


def _ctl(*args: str) -> bool:
    try:
        done = subprocess.run(["rabbitmqctl", *args], capture_output=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def make_broker(name: str) -> Broker:
    if name == "redis":
        return RedisBroker()
    if name == "rabbitmq":
        return RabbitBroker()
    raise ValueError(f"unknown broker {name!r}: redis or rabbitmq")
