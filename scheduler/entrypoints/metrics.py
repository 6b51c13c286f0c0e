"""Prometheus metrics: application counters plus store gauges computed at scrape time.

Everything hangs off an injected ``CollectorRegistry`` (no module-level metric globals), so a test
or a second process builds its own. Labels carry only closed vocabularies — provider names,
operation names, meeting states, exception class names — never an e-mail address, a token or
policy content: metrics are read by people who must not learn who meets whom (DESIGN.md, privacy).
Label values that do not look like such a vocabulary word are replaced with ``other``.

Metric reference (also in docs/operations.md):

======================================  =========  ==============================================
name                                    type       meaning
======================================  =========  ==============================================
goodwill_bookings_total                 counter    events created at a provider (meeting → booked)
goodwill_provider_calls_total           counter    provider calls by provider, operation, status
goodwill_provider_call_seconds          histogram  provider call latency, seconds
goodwill_rate_limited_total             counter    provider answers "slow down" (429 / quota)
goodwill_plan_cycle_seconds             histogram  one user's planning round, seconds
goodwill_lease_redrives_total           counter    booking leases that expired and were re-sent
goodwill_policy_errors_total            counter    unusable policy files / crashed rounds, by reason
goodwill_meetings                       gauge      meetings per state (from the database)
goodwill_queue_depth                    gauge      meetings approved or booking, not yet booked
goodwill_tick_age_seconds               gauge      seconds since a tick completed a round (DB clock)
goodwill_store_up                       gauge      1 when the scrape could read the database
======================================  =========  ==============================================
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from scheduler.app.problems import POLICY_ERROR_REASONS
from scheduler.app.records import Heartbeat
from scheduler.core.clock import Clock
from scheduler.core.errors import RateLimited
from scheduler.core.states import MeetingState

__all__ = [
    "METRIC_NAMES",
    "Metrics",
    "StoreCollector",
    "StoreStats",
    "safe_label",
]

#: Every metric family name goodwill exposes (docs and tests check against this list).
METRIC_NAMES: tuple[str, ...] = (
    "goodwill_bookings_total",
    "goodwill_provider_calls_total",
    "goodwill_provider_call_seconds",
    "goodwill_rate_limited_total",
    "goodwill_plan_cycle_seconds",
    "goodwill_lease_redrives_total",
    "goodwill_policy_errors_total",
    "goodwill_meetings",
    "goodwill_queue_depth",
    "goodwill_tick_age_seconds",
    "goodwill_store_up",
)

#: Meeting states that are waiting for a worker to create the provider event.
QUEUED_STATES = (MeetingState.APPROVED, MeetingState.BOOKING)

# A vocabulary word: identifiers, exception class names, "events.insert", "getSchedule".
# No "@", no "/", no spaces, so neither an address nor a URL nor free text fits.
_LABEL_RE = re.compile(r"[A-Za-z][A-Za-z0-9_.:-]{0,63}")

# Planning rounds read free/busy for up to ~50 people and can take tens of seconds.
_PLAN_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, math.inf)
_CALL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, math.inf)


def safe_label(value: str) -> str:
    """``value`` if it is a vocabulary word (letters, digits, ``_.:-``; ≤ 64), else ``other``.

    >>> safe_label("google"), safe_label("sam@corp.example"), safe_label("Bearer abc def")
    ('google', 'other', 'other')
    """
    return value if _LABEL_RE.fullmatch(value) else "other"


class Metrics:
    """The application's counters and histograms, registered in ``registry``.

    Args:
        registry: where the metrics live; the ops endpoint exposes it. One ``Metrics`` per
            registry (prometheus_client refuses duplicate names in one registry).
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.bookings_total = Counter(
            "goodwill_bookings",
            "Events created at a provider (meeting moved to booked).",
            registry=registry,
        )
        self.provider_calls_total = Counter(
            "goodwill_provider_calls",
            "Calls to calendar providers by outcome (status: ok or the error class name).",
            ["provider", "operation", "status"],
            registry=registry,
        )
        self.provider_call_seconds = Histogram(
            "goodwill_provider_call_seconds",
            "Latency of calls to calendar providers, in seconds.",
            ["provider", "operation"],
            buckets=_CALL_BUCKETS,
            registry=registry,
        )
        self.rate_limited_total = Counter(
            "goodwill_rate_limited",
            "Provider answers asking us to slow down (HTTP 429 / quota exceeded).",
            ["provider"],
            registry=registry,
        )
        self.plan_cycle_seconds = Histogram(
            "goodwill_plan_cycle_seconds",
            "Duration of one user's planning round, in seconds.",
            buckets=_PLAN_BUCKETS,
            registry=registry,
        )
        self.lease_redrives_total = Counter(
            "goodwill_lease_redrives",
            "Booking leases that expired (worker died or stalled) and were sent again.",
            registry=registry,
        )
        self.policy_errors_total = Counter(
            "goodwill_policy_errors",
            "Policy files (each tick that finds one) and user planning rounds that could not "
            "be used, by reason: invalid, unreadable, too_large, crashed.",
            ["reason"],
            registry=registry,
        )
        for reason in POLICY_ERROR_REASONS:  # every reason exposed from the start, at 0
            self.policy_errors_total.labels(reason)

    @contextmanager
    def provider_call(self, provider: str, operation: str) -> Iterator[None]:
        """Time one provider call and count its outcome; usable as ``with`` or as a decorator.

        The status label is ``ok`` or the exception's class name (``RateLimited``,
        ``AuthorizationRevoked``, …); a :class:`~scheduler.core.errors.RateLimited` also counts in
        ``goodwill_rate_limited_total``. The exception is re-raised unchanged.

        >>> from prometheus_client import CollectorRegistry
        >>> m = Metrics(CollectorRegistry())
        >>> with m.provider_call("google", "freebusy"):
        ...     pass
        """
        provider_label, operation_label = safe_label(provider), safe_label(operation)
        started = time.perf_counter()
        status = "ok"
        try:
            yield
        except BaseException as exc:
            status = safe_label(type(exc).__name__)
            if isinstance(exc, RateLimited):
                self.rate_limited_total.labels(provider_label).inc()
            raise
        finally:
            self.provider_call_seconds.labels(provider_label, operation_label).observe(
                time.perf_counter() - started
            )
            self.provider_calls_total.labels(provider_label, operation_label, status).inc()

    @contextmanager
    def plan_cycle(self) -> Iterator[None]:
        """Time one planning round into ``goodwill_plan_cycle_seconds`` (errors included)."""
        with self.plan_cycle_seconds.time():
            yield

    def policy_error(self, reason: str) -> None:
        """Count one unusable policy file or user round; an unknown reason counts as ``other``."""
        label = safe_label(reason) if reason in POLICY_ERROR_REASONS else "other"
        self.policy_errors_total.labels(label).inc()


class StoreStats(Protocol):
    """What :class:`StoreCollector` reads (``scheduler.store.Store`` satisfies it)."""

    def counts_by_state(self) -> dict[str, int]: ...

    def last_tick(self) -> tuple[str, datetime] | None: ...

    def heartbeat(self, name: str) -> Heartbeat | None: ...

    def database_now(self) -> datetime: ...


class StoreCollector(Collector):
    """Gauges read from the database at scrape time: meetings per state, queue depth, tick age.

    A scrape while the database is down does not fail: it reports ``goodwill_store_up 0`` and
    omits the database gauges (so Prometheus sees "absent", not a stale number).

    Args:
        store: anything with ``counts_by_state()`` and ``last_tick()`` (the Store).
        clock: the injected clock, for the tick's age.
    """

    def __init__(self, store: StoreStats, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily(
            "goodwill_store_up", "1 when this scrape could read the database, else 0."
        )
        try:
            counts = self._store.counts_by_state()
            age = self._tick_age()
        except Exception:  # any driver error: the scrape itself must still succeed
            up.add_metric([], 0.0)
            yield up
            return
        up.add_metric([], 1.0)
        yield up
        meetings = GaugeMetricFamily(
            "goodwill_meetings", "Meetings in the database, by state.", labels=["state"]
        )
        for state in MeetingState:
            meetings.add_metric([state.value], float(counts.get(state.value, 0)))
        yield meetings
        yield GaugeMetricFamily(
            "goodwill_queue_depth",
            "Meetings approved or being booked, not yet booked (work waiting for workers).",
            value=float(sum(counts.get(s.value, 0) for s in QUEUED_STATES)),
        )
        yield GaugeMetricFamily(
            "goodwill_tick_age_seconds",
            "Seconds since a tick last completed a round, by the database's clock "
            "(NaN before the first).",
            value=age,
        )

    def _tick_age(self) -> float:
        """Age of the tick's heartbeat against the database clock, so a replica whose clock runs
        ahead cannot make a stalled tick look fresh; the lease row only before the first beat."""
        beat = self._store.heartbeat("tick")
        if beat is not None:
            return max((self._store.database_now() - beat.beat_at).total_seconds(), 0.0)
        last = self._store.last_tick()  # (holder, ticked_at); the holder is never exposed
        if last is None:
            return math.nan
        return max((self._clock.now() - last[1]).total_seconds(), 0.0)
