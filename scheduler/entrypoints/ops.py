"""The ops endpoint: ``/livez``, ``/readyz`` and ``/metrics`` on their own port, in a daemon thread.

A stdlib ``ThreadingHTTPServer`` (what ``prometheus_client.start_http_server`` and dramatiq's own
exposition server use): no dependency, and three routes do not need a framework
(../shared/reference/dramatiq-infra.md §5). Bind it to 127.0.0.1 or the pod IP, not a public
interface.

- ``GET /livez`` calls only the injected ``liveness()`` (process, tick thread and worker threads
  alive, heartbeat fresh). It never touches the database or the broker: a database blip must not
  make Kubernetes restart every pod.
- ``GET /readyz`` runs each named check concurrently with a timeout; a check fails by raising.
  The answer names each failed check with a short reason: the exception class and its first line,
  scrubbed of e-mail addresses and URL credentials (:func:`scheduler.entrypoints.logs.redact`).
  A check may also report numbers (seconds, counts; never a name or an address): it returns them,
  or raises :class:`DetailedCheckFailed`, and they appear under ``details`` (only when any do).
- ``GET /metrics`` is the Prometheus text exposition of the injected registry.

Dramatiq's own metrics
----------------------
dramatiq's ``Prometheus`` middleware has two parts: metric objects it creates in
``after_process_boot``, and a *forked* exposition server on ``0.0.0.0:9191`` that only the
``dramatiq`` CLI starts (``Middleware.forks``). We never use that fork (wrong interface, second
port). Two supported set-ups:

1. **In-process worker** (``goodwill serve`` / ``goodwill worker`` run ``dramatiq.Worker`` in this
   process): add the middleware, then register :class:`DramatiqMetricsCollector` so its metrics
   appear on our ``/metrics``::

       prom = dramatiq.middleware.Prometheus()
       broker.add_middleware(prom)            # before the Worker starts (process_boot)
       registry.register(DramatiqMetricsCollector(prom))

2. **Many processes** (the ``dramatiq`` CLI with ``-p N``): every process writes its samples to
   files in one directory. Set ``PROMETHEUS_MULTIPROC_DIR`` *and* ``dramatiq_prom_db`` to the same
   empty directory in the environment before any process starts (prometheus_client picks the
   multiprocess value class when it is first imported), set ``dramatiq_prom_host=127.0.0.1`` so
   the fork does not listen publicly, and expose
   ``multiprocess_registry(multiproc_dir(os.environ), StoreCollector(store, clock))`` here. Our
   own counters are then file-backed too and come in through the ``MultiProcessCollector``, so
   do not add the ``Metrics`` registry a second time (that would duplicate every family).
"""

from __future__ import annotations

import copy
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine
from sqlalchemy.engine import URL

from scheduler.core.clock import Clock
from scheduler.core.errors import CheckFailed
from scheduler.entrypoints.logs import redact
from scheduler.store import at_head

__all__ = [
    "Check",
    "CheckFailed",
    "DetailedCheckFailed",
    "DramatiqMetricsCollector",
    "Heartbeats",
    "Liveness",
    "OpsServer",
    "broker_check",
    "clock_check",
    "credentials_check",
    "db_check",
    "heartbeat_check",
    "migrations_check",
    "multiproc_dir",
    "multiprocess_registry",
    "tick_check",
    "write_check",
]

log = logging.getLogger(__name__)

#: A readiness check: returns when healthy (None, or numbers for ``details``), raises (with a
#: short reason) when not.
Check = Callable[[], Mapping[str, Any] | None]
#: The liveness probe: (alive?, details). Details must be cheap and carry no e-mail or token.
Liveness = Callable[[], tuple[bool, dict[str, Any]]]

_REASON_MAX = 200


class DetailedCheckFailed(CheckFailed):
    """A failed check that also reports numbers under ``/readyz`` ``details``.

    Shown as ``CheckFailed: …`` like any readiness failure.
    """

    def __init__(self, message: str, details: Mapping[str, Any]) -> None:
        super().__init__(message)
        self.details: dict[str, Any] = dict(details)


def _reason(exc: BaseException) -> str:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    kind = "CheckFailed" if isinstance(exc, CheckFailed) else type(exc).__name__
    text = f"{kind}: {first}" if first else kind
    text = redact(text, keep_domain=False)
    return text if len(text) <= _REASON_MAX else text[: _REASON_MAX - 1] + "…"


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value, keep_domain=False)
    if isinstance(value, Mapping):
        return {str(k): _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    if isinstance(value, bool | int | float) or value is None:
        return value
    return redact(str(value), keep_domain=False)


class _Runner:
    """Runs readiness checks concurrently with a deadline.

    Each check runs in its own daemon thread. A check that is still hanging from an earlier probe
    is not started again (it is reported as timed out), so a black-holed database cannot make
    every probe leak one more thread.
    """

    def __init__(self, checks: Mapping[str, Check], timeout_s: float) -> None:
        self._checks = dict(checks)
        self._timeout_s = timeout_s
        self._lock = threading.Lock()
        self._hanging: dict[str, threading.Thread] = {}

    def run(self) -> tuple[dict[str, str], dict[str, str], dict[str, Any]]:
        results: dict[str, str | None] = {}
        reported: dict[str, Any] = {}
        threads: dict[str, threading.Thread] = {}
        failed: dict[str, str] = {}

        def runner(name: str, check: Check) -> None:
            try:
                numbers = check()
            except Exception as exc:
                results[name] = _reason(exc)
                numbers = getattr(exc, "details", None) if isinstance(exc, CheckFailed) else None
            else:
                results[name] = None
            if isinstance(numbers, Mapping) and numbers:
                reported[name] = _scrub(dict(numbers))

        with self._lock:
            for name, check in self._checks.items():
                previous = self._hanging.get(name)
                if previous is not None and previous.is_alive():
                    failed[name] = f"timeout: still running after {self._timeout_s:g} s"
                    continue
                thread = threading.Thread(
                    target=runner, args=(name, check), name=f"readyz-{name}", daemon=True
                )
                thread.start()
                threads[name] = thread
        deadline = time.monotonic() + self._timeout_s
        for thread in threads.values():
            thread.join(max(deadline - time.monotonic(), 0.0))
        with self._lock:
            for name, thread in threads.items():
                if thread.is_alive():
                    self._hanging[name] = thread
                    failed[name] = f"timeout: no answer within {self._timeout_s:g} s"
                else:
                    self._hanging.pop(name, None)
                    reason = results.get(name)
                    if reason is not None:
                        failed[name] = reason
        checks = {name: ("fail" if name in failed else "ok") for name in self._checks}
        details = {name: reported[name] for name in self._checks if name in reported}
        return checks, failed, details


class OpsServer:
    """``/livez``, ``/readyz`` and ``/metrics`` over HTTP, served from a daemon thread.

    Args:
        host: interface to bind (``127.0.0.1``, or the pod IP / ``0.0.0.0`` in a container).
        port: TCP port; 0 picks a free one (read it back from :attr:`port`).
        liveness: cheap, no I/O; ``(alive, details)``.
        readiness: check name -> check; a check raises to fail.
        registry: what ``/metrics`` exposes.
        check_timeout_s: how long ``/readyz`` waits for the checks, in seconds.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        liveness: Liveness,
        readiness: Mapping[str, Check],
        registry: CollectorRegistry,
        check_timeout_s: float = 2.0,
    ) -> None:
        self._liveness = liveness
        self._runner = _Runner(readiness, check_timeout_s)
        self._registry = registry
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        """Serve in a daemon thread (returns at once; the socket is already listening)."""
        if self._thread is not None:
            raise RuntimeError("OpsServer already started")
        self._thread = threading.Thread(
            # A short poll interval makes stop() return quickly (tests, graceful shutdown).
            target=self._server.serve_forever,
            args=(0.1,),
            name="goodwill-ops",
            daemon=True,
        )
        self._thread.start()
        log.info("ops endpoint listening on %s", self.url)

    def stop(self) -> None:
        """Stop serving and close the socket (idempotent)."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(5)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> OpsServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- routes --------------------------------------------------------------------------------

    def livez(self) -> tuple[int, dict[str, Any]]:
        try:
            alive, details = self._liveness()
        except Exception as exc:
            return HTTPStatus.SERVICE_UNAVAILABLE, {"status": "fail", "reason": _reason(exc)}
        body: dict[str, Any] = {"status": "ok" if alive else "fail"}
        for key, value in _scrub(dict(details)).items():
            body.setdefault(key, value)
        return (HTTPStatus.OK if alive else HTTPStatus.SERVICE_UNAVAILABLE), body

    def readyz(self) -> tuple[int, dict[str, Any]]:
        checks, failed, details = self._runner.run()
        body: dict[str, Any] = {"status": "fail" if failed else "ok", "checks": checks}
        if failed:
            body["failed"] = failed
        if details:
            body["details"] = details
        return (HTTPStatus.SERVICE_UNAVAILABLE if failed else HTTPStatus.OK), body

    def metrics(self) -> bytes:
        return generate_latest(self._registry)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        ops = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "goodwill-ops"
            sys_version = ""

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                try:
                    if path == "/livez":
                        self._json(*ops.livez())
                    elif path == "/readyz":
                        self._json(*ops.readyz())
                    elif path == "/metrics":
                        self._send(HTTPStatus.OK, CONTENT_TYPE_LATEST, ops.metrics())
                    else:
                        self._json(HTTPStatus.NOT_FOUND, {"error": "try /livez, /readyz, /metrics"})
                except Exception as exc:  # a bug in a collector: answer, do not drop the socket
                    log.exception("ops endpoint failed on %s", path)
                    self._json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": _reason(exc)})

            def _json(self, status: int, body: Mapping[str, Any]) -> None:
                payload = json.dumps(body, sort_keys=True).encode() + b"\n"
                self._send(status, "application/json", payload)

            def _send(self, status: int, content_type: str, payload: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                # Probes arrive every few seconds; access logs at INFO would drown real news.
                log.debug("ops %s " + format, self.address_string(), *args)

        return Handler


# -- liveness -----------------------------------------------------------------------------------


class Heartbeats:
    """A ready-made ``liveness``: named loops beat, watched threads must be alive.

    The tick loop calls ``beat("tick")`` every round; the composition root calls
    ``watch("worker", thread)`` for threads that must not die. ``liveness()`` fails when a beat is
    older than its limit or a watched thread has exited. Monotonic time: no I/O, no wall clock.

    Args:
        monotonic: seconds from an arbitrary origin (``time.monotonic``; tests pass a fake).

    >>> hb = Heartbeats(monotonic=lambda: 100.0)
    >>> hb.beat("tick", max_age_s=30)
    >>> hb.liveness()
    (True, {'tick': 'ok'})
    """

    def __init__(self, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._now = monotonic
        self._lock = threading.Lock()
        self._beats: dict[str, tuple[float, float]] = {}
        self._threads: dict[str, threading.Thread] = {}

    def beat(self, name: str, *, max_age_s: float) -> None:
        """``name`` is alive now and must beat again within ``max_age_s`` seconds."""
        with self._lock:
            self._beats[name] = (self._now(), max_age_s)

    def watch(self, name: str, thread: threading.Thread) -> None:
        """``thread`` must stay alive for as long as the process runs."""
        with self._lock:
            self._threads[name] = thread

    def liveness(self) -> tuple[bool, dict[str, Any]]:
        now = self._now()
        details: dict[str, Any] = {}
        with self._lock:
            for name, (at, max_age_s) in self._beats.items():
                age = now - at
                details[name] = "ok" if age <= max_age_s else f"stale: last beat {age:.0f} s ago"
            for name, thread in self._threads.items():
                details[name] = "ok" if thread.is_alive() else "thread exited"
        return all(v == "ok" for v in details.values()), details


# -- readiness checks ---------------------------------------------------------------------------


class _Pingable(Protocol):
    def ping(self) -> None: ...


def db_check(store: _Pingable) -> Check:
    """``SELECT 1`` through the store (``Store.ping``)."""

    def check() -> None:
        store.ping()

    return check


def migrations_check(target: Engine | URL | str) -> Check:
    """The database schema is at the newest Alembic revision this code ships."""

    def check() -> None:
        if not at_head(target):
            raise CheckFailed("database schema is not at head: run `goodwill migrate`")

    return check


def broker_check(broker: object, *, timeout_s: float = 2.0) -> Check:
    """The message broker answers: Redis ``PING``, a short RabbitMQ connection; StubBroker: ok.

    Uses a fresh, short-lived connection with ``timeout_s`` rather than the broker's own
    (thread-local, no timeout) one, so a probe can neither hang nor leak connections.

    Raises:
        TypeError: at construction, for a broker type it does not know.
    """
    kind = type(broker).__name__
    if kind == "StubBroker":
        return lambda: None
    if kind == "RedisBroker":
        return _redis_check(broker, timeout_s)
    if kind == "RabbitmqBroker":
        return _rabbitmq_check(broker, timeout_s)
    raise TypeError(f"no readiness check for broker type {kind}")


def _redis_check(broker: Any, timeout_s: float) -> Check:
    import redis

    pool = broker.client.connection_pool
    kwargs = dict(pool.connection_kwargs)
    kwargs.update(socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
    connection_class = pool.connection_class

    def check() -> None:
        client = redis.Redis(
            connection_pool=redis.ConnectionPool(connection_class=connection_class, **kwargs)
        )
        try:
            if not client.ping():
                raise CheckFailed("Redis did not answer PING")
        finally:
            client.close()
            client.connection_pool.disconnect()

    return check


def _rabbitmq_check(broker: Any, timeout_s: float) -> Check:
    import pika

    params = broker.parameters if isinstance(broker.parameters, list) else [broker.parameters]
    quick = []
    for original in params:
        p = copy.deepcopy(original)
        p.connection_attempts = 1
        p.retry_delay = 0
        p.socket_timeout = timeout_s
        p.stack_timeout = timeout_s
        p.blocked_connection_timeout = timeout_s
        quick.append(p)

    def check() -> None:
        connection = pika.BlockingConnection(quick)
        try:
            if not connection.is_open:
                raise CheckFailed("RabbitMQ connection did not open")
        finally:
            connection.close()

    return check


class _TickSource(Protocol):
    def last_tick(self) -> tuple[str, datetime] | None: ...


def tick_check(store: _TickSource, clock: Clock, max_age_s: float) -> Check:
    """Some replica ticked within ``max_age_s`` seconds (the tick lease row is fresh).

    The lease row says when a replica *started* a round, by that replica's clock; the
    processes of :func:`scheduler.entrypoints.runtime.build_runtime` use
    :func:`heartbeat_check` (rounds completed, by the database's clock) instead.
    """

    def check() -> None:
        last = store.last_tick()
        if last is None:
            raise CheckFailed("no tick has run yet")
        age = (clock.now() - last[1]).total_seconds()
        if age > max_age_s:
            raise CheckFailed(f"last tick {age:.0f} s ago (limit {max_age_s:g} s)")
        if -age > max_age_s:  # not "fresh": written from a clock running ahead
            raise CheckFailed(
                f"last tick is {-age:.0f} s in the future: a replica's clock runs ahead"
            )

    return check


class _HeartbeatSource(Protocol):
    def heartbeat(self, name: str) -> Any: ...
    def database_now(self) -> datetime: ...


def heartbeat_check(
    store: _HeartbeatSource,
    *,
    max_age_s: float,
    max_failed_rounds: int,
    name: str = "tick",
    local_failures: Callable[[], tuple[int, str | None]] | None = None,
) -> Check:
    """The tick completes rounds, whichever replica runs them, whatever the lease row says.

    Fails when no round completed within ``max_age_s`` seconds (the heartbeat row's
    ``beat_at`` against the database's ``now()``, both the database server's clock, so a
    replica's skewed clock changes nothing), or when ``max_failed_rounds`` rounds failed in a
    row: as counted in the heartbeat row (by any replica), or by this process's own tick
    (``local_failures``: (count, last error)), which still counts when the database takes no
    writes at all. Reports ``last_round_s_ago`` and ``failed_rounds`` under ``details``.
    """

    def check() -> Mapping[str, Any]:
        local, local_error = local_failures() if local_failures is not None else (0, None)
        beat = store.heartbeat(name)
        recorded = int(beat.failures) if beat is not None else 0
        failures = max(local, recorded)
        error = local_error if local >= recorded else beat.last_error if beat else None
        details: dict[str, Any] = {"failed_rounds": failures}
        if beat is not None:
            age = (store.database_now() - beat.beat_at).total_seconds()
            details["last_round_s_ago"] = round(age, 3)
        if failures >= max_failed_rounds:
            raise DetailedCheckFailed(
                f"{failures} tick rounds failed in a row (limit {max_failed_rounds}); "
                f"last: {error or 'unknown'}",
                details,
            )
        if beat is None:
            raise DetailedCheckFailed("no tick round has completed yet", details)
        if age > max_age_s:
            raise DetailedCheckFailed(
                f"no tick round completed for {age:.0f} s (limit {max_age_s:g} s)", details
            )
        if -age > max_age_s:
            raise DetailedCheckFailed(
                f"the last tick round is {-age:.0f} s in the future: the database server's "
                "clock stepped back",
                details,
            )
        return details

    return check


class _DatabaseClock(Protocol):
    def database_now(self) -> datetime: ...


def clock_check(store: _DatabaseClock, clock: Clock, max_skew_s: float) -> Check:
    """This process's clock is within ``max_skew_s`` of the database server's (``skew_s``).

    ``skew_s`` is this process's clock minus the database's (positive: ahead), measured around
    one ``SELECT now()``; on SQLite both are this machine's clock, so it is about 0.
    """

    def check() -> Mapping[str, Any]:
        before = clock.now()
        database_now = store.database_now()
        after = clock.now()
        skew = ((before + (after - before) / 2) - database_now).total_seconds()
        details = {"skew_s": round(skew, 3), "limit_s": max_skew_s}
        if abs(skew) > max_skew_s:
            raise DetailedCheckFailed(
                f"this process's clock is {abs(skew):.0f} s "
                f"{'ahead of' if skew > 0 else 'behind'} the database server's (limit "
                f"{max_skew_s:g} s, GOODWILL_MAX_CLOCK_SKEW_S): fix NTP on this host; a tick "
                "here does not take the lease meanwhile",
                details,
            )
        return details

    return check


class _HeartbeatWriter(Protocol):
    def record_heartbeat(self, name: str, holder: str) -> datetime: ...


def write_check(store: _HeartbeatWriter, *, holder: str, name: str = "worker") -> Check:
    """The database takes this process's writes: one short transaction upserts a heartbeat row.

    For processes without a tick (whose completed rounds are the write probe): a connection in
    read-only transaction mode, or a full disk, answers ``SELECT 1`` but fails here.
    """

    def check() -> None:
        store.record_heartbeat(name, holder)

    return check


class _CredentialSource(Protocol):
    def revoked_credentials(self) -> list[Any]: ...


def credentials_check(store: _CredentialSource) -> Check:
    """No provider grant is revoked. The reason names providers and counts, never addresses."""

    def check() -> None:
        revoked = store.revoked_credentials()
        if not revoked:
            return
        by_provider: dict[str, int] = {}
        for credential in revoked:
            provider = str(getattr(credential, "provider", "unknown"))
            by_provider[provider] = by_provider.get(provider, 0) + 1
        counts = ", ".join(f"{p}={n}" for p, n in sorted(by_provider.items()))
        raise CheckFailed(
            f"{len(revoked)} revoked credential(s) ({counts}): see `goodwill report`, "
            "then reconnect with `goodwill connect`"
        )

    return check


# -- dramatiq metrics ---------------------------------------------------------------------------

#: Attributes of ``dramatiq.middleware.Prometheus`` that hold metric objects (dramatiq 2.x).
_DRAMATIQ_METRICS = (
    "total_messages",
    "total_errored_messages",
    "total_retried_messages",
    "total_rejected_messages",
    "inprogress_messages",
    "inprogress_delayed_messages",
    "message_durations",
)


class DramatiqMetricsCollector(Collector):
    """Exposes an in-process ``dramatiq.middleware.Prometheus``'s metrics on our registry.

    The middleware creates its metrics in a private registry at ``process_boot``; before that
    (or without the middleware's attributes) this yields nothing.
    """

    def __init__(self, middleware: object) -> None:
        self._middleware = middleware

    def collect(self) -> Iterator[Metric]:
        for name in _DRAMATIQ_METRICS:
            metric = getattr(self._middleware, name, None)
            if metric is not None:
                yield from metric.collect()


def multiproc_dir(environ: Mapping[str, str]) -> str | None:
    """The prometheus multiprocess directory named by the environment, if any.

    ``PROMETHEUS_MULTIPROC_DIR`` wins; dramatiq's ``dramatiq_prom_db`` is the fallback.
    """
    return environ.get("PROMETHEUS_MULTIPROC_DIR") or environ.get("dramatiq_prom_db") or None


def multiprocess_registry(path: str, *collectors: Collector) -> CollectorRegistry:
    """A scrape registry that merges every process's samples in ``path``, plus ``collectors``.

    Pass scrape-time collectors such as ``StoreCollector`` here; they are not file-backed.
    """
    from prometheus_client import multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=path)  # type: ignore[no-untyped-call]
    for collector in collectors:
        registry.register(collector)
    return registry
