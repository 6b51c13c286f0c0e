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

__all__ = ["Tick", "TickResult"]

log = logging.getLogger("goodwill.tick")


@dataclass
class TickResult:
    won: bool
    plan_sent: list[int] = field(default_factory=list)
    book_sent: list[int] = field(default_factory=list)
    sync_sent: list[int] = field(default_factory=list)
    expired: int = 0


class Tick:
    """Runs :meth:`run_once` every ``interval_s`` seconds in a thread (or by hand in tests)."""

    def __init__(
        self,
        pipeline: Pipeline,
        actors: Actors,
        *,
        interval_s: float = 10.0,
        holder: str | None = None,
        sync_every: timedelta = timedelta(minutes=15),
        on_round: Callable[[], None] | None = None,
    ) -> None:
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
        # Slightly under the interval, so the next period's winner is never blocked by jitter.
        if not p.store.try_acquire_tick(self.holder, now, self.interval_s * 0.9):
            return TickResult(won=False)
        result = TickResult(won=True)
        planning.register_policies(p)
        now = p.clock.now()  # after registering, so users new in this round are due in it
        result.expired = decisions.expire_proposals(p)
        for user_id in p.store.claim_users_for_planning(now, limit=200, retry_s=p.plan_retry_s):
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
        for user_id in sorted(followed):
            last = self._last_sync.get(user_id)
            if last is None or now - last >= self.sync_every:
                self._last_sync[user_id] = now
                self.actors.sync_responses.send(user_id)
                result.sync_sent.append(user_id)
        return result

    def _loop(self) -> None:
        while not self._stop.is_set():
            if self.on_round is not None:
                self.on_round()
            try:
                self.run_once()
            except Exception:  # one bad round must not kill the tick thread
                log.exception("tick failed")
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
