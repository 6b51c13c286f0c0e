"""The tick: one replica per period wins the lease row and turns due database rows into messages.

Write first, enqueue second: every store call below commits before any message is sent, and a
message that is lost is simply sent again once its in-flight lease runs out.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from scheduler.app import decisions, planning, responses
from scheduler.app.pipeline import Pipeline
from scheduler.core.states import MeetingState
from workers.actors import Actors

__all__ = ["TICK_HEARTBEAT", "Tick", "TickResult"]

log = logging.getLogger("goodwill.tick")

#: The heartbeat row a tick writes at the end of every round it completes (readiness reads it).
TICK_HEARTBEAT = "tick"
_ERROR_MAX = 300


@dataclass
class TickResult:
    won: bool
    plan_sent: list[int] = field(default_factory=list)
    book_sent: list[int] = field(default_factory=list)
    sync_sent: list[int] = field(default_factory=list)
    expired: int = 0


class Tick:
    """Runs :meth:`run_round` every ``interval_s`` seconds in a thread (or by hand in tests).

    Time and health: the lease a round takes is bounded by ``max_lease_s`` (a lease from a clock
    running ahead is void after that); with ``max_clock_skew_s`` set, a replica whose clock
    differs from the database server's by more than that does not compete for the lease at
    all. Every completed round writes the :data:`TICK_HEARTBEAT` row (at the database's clock);
    every failed round is counted, here (:attr:`failed_rounds`) and in that row.

    Args:
        max_lease_s: the longest tick lease anyone may hold (``GOODWILL_TICK_MAX_LEASE_S``;
            None: 60 s, or two intervals if longer).
        max_clock_skew_s: None: no check (tests on a fixed clock, ``serve --once``).
    """

    def __init__(
        self,
        pipeline: Pipeline,
        actors: Actors,
        *,
        interval_s: float = 10.0,
        holder: str | None = None,
        sync_every: timedelta = timedelta(minutes=15),
        on_round: Callable[[], None] | None = None,
        max_lease_s: float | None = None,
        max_clock_skew_s: float | None = None,
    ) -> None:
        if max_lease_s is None:
            max_lease_s = max(60.0, 2 * interval_s)
        if not 0 < interval_s * 0.9 <= max_lease_s:
            raise ValueError(
                f"the tick lease (0.9 x interval_s = {interval_s * 0.9:g} s) must be positive "
                f"and at most max_lease_s ({max_lease_s:g} s)"
            )
        self.max_lease_s = max_lease_s
        self.max_clock_skew_s = max_clock_skew_s
        #: This process's clock minus the database's at the last check, in seconds.
        self.skew_s: float | None = None
        #: Rounds that failed in a row here (0 after a completed round; a lost one leaves it).
        self.failed_rounds = 0
        self.last_error: str | None = None
        self._skew_reported = False
        self.pipeline = pipeline
        self.actors = actors
        self.interval_s = interval_s
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self.sync_every = sync_every
        self.on_round = on_round
        self._last_sync: dict[int, datetime] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.heartbeat: datetime | None = None
        self.redrives = 0

    def run_once(self) -> TickResult:
        p = self.pipeline
        now = p.clock.now()
        self.heartbeat = now
        if self.max_clock_skew_s is not None and not self._clock_agrees(now):
            return TickResult(won=False)
        # Slightly under the interval, so the next period's winner is never blocked by jitter.
        lease_s = self.interval_s * 0.9
        if not p.store.try_acquire_tick(self.holder, now, lease_s, max_lease_s=self.max_lease_s):
            return TickResult(won=False)
        result = TickResult(won=True)
        try:
            # Isolated per file inside; this catches what is not one file's (the store failing).
            planning.register_policies(p)
        except Exception:
            log.exception("registering policy files failed; planning the users registered before")
        now = p.clock.now()  # after registering, so users new in this round are due in it
        result.expired = decisions.expire_proposals(p)
        for user_id in p.store.claim_users_for_planning(now, limit=200, retry_s=p.plan_retry_s):
            self.actors.plan_user.send(user_id)
            result.plan_sent.append(user_id)
        # Owners whose policy file has been gone for the grace period: their round cancels
        # their open meetings (plan_user plans nothing for them).
        for user_id in p.store.claim_removed_owners(
            now - p.policy_removed_grace, now, limit=200, retry_s=p.plan_retry_s
        ):
            self.actors.plan_user.send(user_id)
            result.plan_sent.append(user_id)
        booking_before = {m.id for m in p.store.meetings_by_state(MeetingState.BOOKING)}
        for meeting_id in p.store.approved_needing_send(
            now, limit=500, send_lease_s=p.send_lease_s
        ):
            if meeting_id in booking_before:
                self.redrives += 1
                if p.metrics is not None:
                    p.metrics.lease_redrives_total.inc()
            self.actors.book_meeting.send(meeting_id)
            result.book_sent.append(meeting_id)
        followed = {
            m.user_id for s in responses.FOLLOWED_STATES for m in p.store.meetings_by_state(s)
        }
        # A removed policy file stops its owner: answers are followed again once it is back
        # (and their own round cancelling the meetings never races a sync for them).
        removed = {u.id for u in p.store.all_users() if u.policy_missing_since is not None}
        for user_id in sorted(followed - removed):
            last = self._last_sync.get(user_id)
            if last is None or now - last >= self.sync_every:
                self._last_sync[user_id] = now
                self.actors.sync_responses.send(user_id)
                result.sync_sent.append(user_id)
        # The round completed: the beat is also the write probe (it fails when writes do).
        p.store.record_heartbeat(TICK_HEARTBEAT, self.holder)
        return result

    def run_round(self) -> TickResult | None:
        """One round of the loop: :meth:`run_once`, with a failure counted (None when it failed).

        A failed round is counted in :attr:`failed_rounds` and, in a separate short
        transaction, in the heartbeat row, so other processes' readiness sees it too. That
        write may fail as well (a read-only database): the beat then goes stale, which
        readiness also reports.
        """
        try:
            result = self.run_once()
        except Exception as exc:  # one bad round must not kill the tick thread
            self._round_failed(exc)
            return None
        if result.won:
            self.failed_rounds, self.last_error = 0, None
        return result

    def _round_failed(self, exc: Exception) -> None:
        first = (str(exc).strip().splitlines() or [""])[0]
        error = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
        self.failed_rounds += 1
        self.last_error = error[:_ERROR_MAX]
        log.exception("tick round failed (%d in a row)", self.failed_rounds)
        try:
            self.pipeline.store.record_heartbeat_failure(TICK_HEARTBEAT, self.last_error)
        except Exception as again:
            log.warning(
                "could not record the failed tick round either (%s): the heartbeat goes stale",
                type(again).__name__,
            )

    def _clock_agrees(self, now: datetime) -> bool:
        """This process's clock is within ``max_clock_skew_s`` of the database server's."""
        assert self.max_clock_skew_s is not None
        database_now = self.pipeline.store.database_now()
        after = self.pipeline.clock.now()
        skew = ((now + (after - now) / 2) - database_now).total_seconds()
        self.skew_s = skew
        if abs(skew) <= self.max_clock_skew_s:
            if self._skew_reported:
                log.info("this replica's clock agrees with the database again (%.3f s)", skew)
            self._skew_reported = False
            return True
        if not self._skew_reported:
            log.error(
                "this replica's clock is %.1f s %s the database server's (limit %g s, "
                "GOODWILL_MAX_CLOCK_SKEW_S): it does not take the tick lease until NTP fixes it",
                abs(skew),
                "ahead of" if skew > 0 else "behind",
                self.max_clock_skew_s,
            )
        self._skew_reported = True
        return False

    def _loop(self) -> None:
        while not self._stop.is_set():
            if self.on_round is not None:
                self.on_round()
            self.run_round()
            self._stop.wait(self.interval_s / 2)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="goodwill-tick", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()
