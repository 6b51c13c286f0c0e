"""The tick: one replica per period wins the lease row and turns due database rows into messages.

Write first, enqueue second: every store call below commits before any message is sent, and a
message that is lost is simply sent again once its in-flight lease runs out.
"""

from __future__ import annotations

import heapq
import logging
import os
import socket
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from scheduler.app import decisions, planning
from scheduler.app.pipeline import Pipeline
from scheduler.app.records import FollowedOwner
from scheduler.core.policy.reschedule import DEFAULT_NOT_WITHIN
from scheduler.core.states import FOLLOWED_STATES
from workers.actors import Actors

__all__ = ["TICK_HEARTBEAT", "Tick", "TickResult", "follow_every", "plan_message_size"]

log = logging.getLogger("goodwill.tick")

#: The heartbeat row a tick writes at the end of every round it completes (readiness reads it).
TICK_HEARTBEAT = "tick"
#: Meetings per ``book_meetings`` message (a week's cap of one owner): one calendar read per
#: owner serves them all; a batch stops starting attempts after ``booking_batch.BATCH_DEADLINE``.
BOOKINGS_PER_MESSAGE = 6
#: A round puts several users in one ``plan_users`` message only when that still leaves at
#: least this many messages (at least twice as many users due), or when its room requires it: a
#: round with few users due keeps every worker thread busy with one each.
PLAN_SPREAD = 16
_ERROR_MAX = 300
#: Audit ``to_state`` values after which a meeting's answers are followed.
_FOLLOWED = frozenset(s.value for s in FOLLOWED_STATES)
#: A pass comes shortly before a meeting enters its last ``not_within`` (by default 20 h), the
#: last moment a new conflict on it may still be moved rather than only reported. A policy
#: with another ``not_within`` is paced by the default's moment, not its own.
MOVE_CUTOFF = DEFAULT_NOT_WITHIN


class _Outbox:
    """The messages this tick sent, oldest first. With the queue ``depth`` known, the last
    ``depth`` sent are taken to be still waiting in it (one FIFO queue, fed mostly by the
    tick): such a message is not sent again, even when its database lease has run out."""

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self._seq: OrderedDict[tuple[str, int], int] = OrderedDict()
        self._last = 0

    def queued(self, key: tuple[str, int], depth: int | None) -> bool:
        seq = self._seq.get(key)
        return seq is not None and depth is not None and self._last - seq < depth

    def sent(self, *keys: tuple[str, int]) -> None:
        """One message went out, for each of ``keys`` (a batch is one message in the queue)."""
        self._last += 1
        for key in keys:
            self._seq.pop(key, None)
            self._seq[key] = self._last
        while len(self._seq) > self.keep:
            self._seq.popitem(last=False)

    def forget(self, key: tuple[str, int]) -> None:
        self._seq.pop(key, None)


@dataclass
class TickResult:
    won: bool
    plan_sent: list[int] = field(default_factory=list)
    book_sent: list[int] = field(default_factory=list)
    sync_sent: list[int] = field(default_factory=list)
    expired: int = 0


def plan_message_size(due: int, room: int, most: int) -> int:
    """Users per planning message for ``due`` users and ``room`` messages: one each while that
    leaves at least :data:`PLAN_SPREAD` messages (the workers plan in parallel), more under a
    backlog, never more than ``most``, and enough that ``due`` fits in ``room`` messages
    (``due <= room * most``)."""
    if due <= 0 or room <= 0:
        return 1
    return max(1, min(most, max(-(-due // room), due // PLAN_SPREAD)))


def follow_every(
    next_start: datetime | None, now: datetime, every: timedelta, most: timedelta
) -> timedelta:
    """How long until an owner's next sync pass: a twelfth of the time until their next
    deadline (``next_start``: a followed meeting's start, or its last-20-hours moment), at
    least ``every`` and at most ``most`` (with the defaults: every 15 minutes within three hours
    of the deadline, every two hours a day or more before it). ``next_start`` in the past (a
    meeting that ended and waits to be completed): ``every``; None (only declined meetings that
    ended are followed, in case of a change of mind): ``most``."""
    if next_start is None:
        return max(every, most)
    return min(max((next_start - now) / 12, every), max(every, most))


class Tick:
    """Runs :meth:`run_round` every ``interval_s`` seconds in a thread (or by hand in tests).

    Time and health: the lease a round takes is bounded by ``max_lease_s`` (a lease from a clock
    running ahead is void after that); with ``max_clock_skew_s`` set, a replica whose clock
    differs from the database server's by more than that does not compete for the lease at
    all. Every completed round writes the :data:`TICK_HEARTBEAT` row (at the database's clock);
    every failed round is counted, here (:attr:`failed_rounds`) and in that row.

    Cost and pacing: each scan is an indexed query for what is due, at most ``batch`` rows;
    with the broker's ``queue_depth`` known, a round sends only what brings the queue back to
    ``queue_max``, and a claimed row whose message is known to be still queued (among the last
    ``depth`` this tick sent) is not sent again: under a backlog each unit of work has at most
    one message waiting, however often its database lease runs out.

    Args:
        max_lease_s: the longest tick lease anyone may hold (``GOODWILL_TICK_MAX_LEASE_S``;
            None: 60 s, or two intervals if longer).
        max_clock_skew_s: None: no check (tests on a fixed clock, ``serve --once``).
        batch: the most rows each scan claims per round (``GOODWILL_TICK_BATCH``).
        queue_max: the most messages kept queued (``GOODWILL_TICK_QUEUE_MAX``).
        plans_per_message: the most users one ``plan_users`` message carries
            (``GOODWILL_TICK_PLANS_PER_MESSAGE``; 1: one ``plan_user`` each). A round puts
            several users in one message only when at least twice :data:`PLAN_SPREAD` are due,
            or when ``room`` requires it (:func:`plan_message_size`). ``queue_max`` counts such
            a message once, however many users it carries.
        queue_depth: reads the broker queue's depth (:func:`workers.actors.queue_depth`).
        sync_every, sync_max_every: how often an owner's answers and conflicts are followed
            (``GOODWILL_SYNC_EVERY_S``, ``GOODWILL_SYNC_MAX_EVERY_S``): a twelfth of the time
            until their next deadline (a followed meeting's start, or the moment it enters its
            last :data:`MOVE_CUTOFF`), between the two (None: always ``sync_every``;
            :func:`follow_every`); a meeting that is booked, answered, moved or flagged brings
            the owner's next pass to within ``sync_every``.
    """

    def __init__(
        self,
        pipeline: Pipeline,
        actors: Actors,
        *,
        interval_s: float = 10.0,
        holder: str | None = None,
        sync_every: timedelta = timedelta(minutes=15),
        sync_max_every: timedelta | None = None,
        on_round: Callable[[], None] | None = None,
        owner_mail: Callable[[], object] | None = None,
        max_lease_s: float | None = None,
        max_clock_skew_s: float | None = None,
        batch: int = 500,
        queue_max: int = 2000,
        queue_depth: Callable[[], int | None] | None = None,
        plans_per_message: int = 1,
    ) -> None:
        if plans_per_message < 1:
            raise ValueError(f"plans_per_message must be at least 1, not {plans_per_message}")
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
        self.sync_max_every = max(sync_every, sync_max_every or sync_every)
        self.on_round = on_round
        #: Sends the owners' due digests and notices (injected by the runtime; None: none).
        self.owner_mail = owner_mail
        #: The most rows each scan claims per round (``GOODWILL_TICK_BATCH``).
        self.batch = batch
        #: The most messages kept waiting in the queue (``GOODWILL_TICK_QUEUE_MAX``).
        self.queue_max = queue_max
        #: The most users per ``plan_users`` message (``GOODWILL_TICK_PLANS_PER_MESSAGE``).
        self.plans_per_message = plans_per_message
        #: Reads the broker queue's depth (None: unknown; then only ``batch`` paces sends).
        self.queue_depth = queue_depth
        #: Claimed rows whose message was still queued, so not sent again.
        self.skipped_queued = 0
        # Keys per user: a plan_users message holds up to plans_per_message of them.
        self._outbox = _Outbox(keep=max(10 * queue_max * plans_per_message, 10_000))
        self._sync_next: dict[int, datetime] = {}
        self._sync_heap: list[tuple[datetime, int]] = []
        self._sync_refreshed: datetime | None = None
        self._audit_after = 0
        self._audit_since: datetime | None = None
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
        result.expired = decisions.expire_due_proposals(p, limit=self.batch)
        depth = self.queue_depth() if self.queue_depth is not None else None
        # Paced to what the workers drain: never more than brings the queue to queue_max.
        room = self.batch if depth is None else max(0, min(self.batch, self.queue_max - depth))
        room = self._send_bookings(now, depth, room, result)
        room = self._send_plans(now, depth, room, result)
        self._send_syncs(now, depth, room, result)
        if self.owner_mail is not None:
            try:  # claimed per mail before sending; an SMTP or store failure is retried later
                self.owner_mail()
            except Exception:
                log.exception("sending the owners' e-mails failed; retried next round")
        # The round completed: the beat is also the write probe (it fails when writes do).
        p.store.record_heartbeat(TICK_HEARTBEAT, self.holder)
        return result

    # -- sending, paced and without duplicates ------------------------------------------------

    def _send(self, actor: Any, kind: str, item_id: int, depth: int | None) -> bool:
        """Send one message unless the same one is known to be still queued (False)."""
        if self._outbox.queued((kind, item_id), depth):
            self.skipped_queued += 1
            return False
        actor.send(item_id)
        self._outbox.sent((kind, item_id))
        return True

    def _send_bookings(
        self, now: datetime, depth: int | None, room: int, result: TickResult
    ) -> int:
        p = self.pipeline
        if room <= 0:
            return 0
        redriven = set(p.store.booking_leases_expired(now, limit=self.batch))
        due: list[int] = []
        for meeting_id in p.store.approved_needing_send(
            now, limit=room, send_lease_s=p.send_lease_s
        ):
            if meeting_id in redriven:  # its worker died holding it: it is not in the queue
                self.redrives += 1
                if p.metrics is not None:
                    p.metrics.lease_redrives_total.inc()
                self._outbox.forget(("book", meeting_id))
            if self._outbox.queued(("book", meeting_id), depth):
                self.skipped_queued += 1
            else:
                due.append(meeting_id)
        # Ids come oldest first, so the meetings one planning round approved sit together.
        batched = self.actors.book_meetings
        size = 1 if batched is None else BOOKINGS_PER_MESSAGE
        single = self.actors.book_meeting
        return room - self._send_packed("book", single, batched, due, size, result.book_sent)

    def _send_plans(self, now: datetime, depth: int | None, room: int, result: TickResult) -> int:
        p = self.pipeline
        claims: tuple[Callable[[int], list[int]], ...] = (
            lambda n: p.store.claim_users_for_planning(now, limit=n, retry_s=p.plan_retry_s),
            # Owners whose policy file has been gone for the grace period: their round cancels
            # their open meetings (plan_user plans nothing for them).
            lambda n: p.store.claim_removed_owners(
                now - p.policy_removed_grace, now, limit=n, retry_s=p.plan_retry_s
            ),
        )
        batched = self.actors.plan_users
        most = 1 if batched is None else self.plans_per_message
        for claim in claims:
            if room <= 0:
                break
            due: list[int] = []
            for user_id in claim(min(self.batch, room * most)):
                if self._outbox.queued(("plan", user_id), depth):
                    self.skipped_queued += 1
                else:
                    due.append(user_id)
            size = plan_message_size(len(due), room, most)
            single = self.actors.plan_user
            room -= self._send_packed("plan", single, batched, due, size, result.plan_sent)
        return room

    def _send_packed(
        self, kind: str, single: Any, batched: Any, due: list[int], size: int, sent: list[int]
    ) -> int:
        """Send ``due`` in messages of up to ``size`` ids (``batched([ids])``, or ``single(id)``
        for one alone); returns the messages sent: the room is counted in messages, as the
        queue's depth is."""
        messages = 0
        for start in range(0, len(due), size):
            ids = due[start : start + size]
            if len(ids) > 1:
                batched.send(ids)
            else:
                single.send(ids[0])
            self._outbox.sent(*((kind, item_id) for item_id in ids))
            sent.extend(ids)
            messages += 1
        return messages

    def _send_syncs(self, now: datetime, depth: int | None, room: int, result: TickResult) -> None:
        """Follow the answers of every owner with a followed meeting, each at the pace of
        :meth:`follow_every`.

        Who is followed: one query per ``sync_every`` period, plus the audit rows written since
        the last round (a meeting that became booked, accepted, …); a round reads only those and
        the owners due, so it costs what is due, not the number of owners.
        """
        p = self.pipeline
        if self._sync_refreshed is None or now - self._sync_refreshed >= self.sync_every:
            if self._sync_refreshed is None:
                self._audit_since = now - self.sync_every
            self._sync_refreshed = now
            for user_id in p.store.followed_owners(None):
                self._sync_at(user_id, now, keep=True)
        assert self._audit_since is not None  # set with the first refresh
        for event in p.store.events_after(
            self._audit_after, since=self._audit_since, limit=self.batch
        ):
            self._audit_after = max(self._audit_after, event.id)
            if event.user_id is None:
                continue
            if event.to_state in _FOLLOWED or (
                event.to_state is None
                and event.meeting_id is not None
                and event.user_id in self._sync_next
            ):  # became followed or answered; or moved, or flagged, while followed
                self._sync_soon(event.user_id, now)
        due: list[int] = []
        while self._sync_heap and self._sync_heap[0][0] <= now and len(due) < min(room, self.batch):
            at, user_id = heapq.heappop(self._sync_heap)
            if self._sync_next.get(user_id) == at:
                due.append(user_id)
        done: set[int] = set()
        try:
            followed = p.store.followed_owners(due, now=now, cutoff=MOVE_CUTOFF) if due else {}
            for user_id in sorted(due):
                owner = followed.get(user_id)
                if owner is None:  # nothing followed any more: forgotten until there is
                    del self._sync_next[user_id]
                elif owner.policy_missing:
                    # A removed policy file stops its owner: answers are followed again once it
                    # is back (and their round cancelling the meetings never races a sync).
                    self._sync_at(user_id, now + timedelta(seconds=self.interval_s))
                else:
                    self._sync_at(user_id, now + self.follow_every(self._deadline(owner), now))
                    if self._send(self.actors.sync_responses, "sync", user_id, depth):
                        result.sync_sent.append(user_id)
                done.add(user_id)
        finally:  # a failed read or send: the owners not dealt with are due again next round
            for user_id in due:
                if user_id not in done and user_id in self._sync_next:
                    self._sync_at(user_id, now + timedelta(seconds=self.interval_s))

    @staticmethod
    def _deadline(owner: FollowedOwner) -> datetime | None:
        """The next moment a pass matters for: the soonest followed meeting's start, or, sooner,
        the last moment a conflict on a later one may still be moved (``not_within`` before it,
        by default 20 h: :data:`MOVE_CUTOFF`)."""
        times = [owner.next_start] if owner.next_start is not None else []
        if owner.next_far_start is not None:
            times.append(owner.next_far_start - MOVE_CUTOFF)
        return min(times, default=None)

    def follow_every(self, next_start: datetime | None, now: datetime) -> timedelta:
        """How long until an owner's next sync pass (:func:`follow_every`)."""
        return follow_every(next_start, now, self.sync_every, self.sync_max_every)

    def _sync_soon(self, user_id: int, now: datetime) -> None:
        """A meeting of the owner became followed or changed: sync now when they were not
        followed yet, else no later than ``sync_every`` from now."""
        at = self._sync_next.get(user_id)
        if at is None:
            self._sync_at(user_id, now)
        elif at > now + self.sync_every:
            self._sync_at(user_id, now + self.sync_every)

    def _sync_at(self, user_id: int, at: datetime, *, keep: bool = False) -> None:
        if keep and user_id in self._sync_next:
            return
        self._sync_next[user_id] = at
        heapq.heappush(self._sync_heap, (at, user_id))

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
