"""Thin, idempotent actors. Each takes an id, calls one use case, and exits early when done.

Messages carry ids only. Long retries live in the database (``next_attempt_at``, re-sent by the
tick); the broker's own retries stay short and honour Retry-After.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import dramatiq
from dramatiq.common import dq_name

from scheduler.app import booking, booking_batch, conflicts, planning, planning_batch
from scheduler.app.booking import BookOutcome
from scheduler.app.pipeline import Pipeline

__all__ = ["QUEUE", "Actors", "declare_actors", "queue_depth"]

log = logging.getLogger("goodwill.actors")

QUEUE = "goodwill"
#: A broker-level retry is used only for short waits; longer ones are left to the tick.
SHORT_RETRY_S = 60.0


@dataclass(frozen=True)
class Actors:
    plan_user: Any
    book_meeting: Any
    sync_responses: Any
    #: Several meetings per message (``book_meetings([ids])``); without it the tick sends
    #: ``book_meeting(id)`` for each.
    book_meetings: Any = None
    #: Several users per message (``plan_users([ids])``); without it the tick sends
    #: ``plan_user(id)`` for each.
    plan_users: Any = None


def declare_actors(broker: dramatiq.Broker, pipeline: Pipeline) -> Actors:
    """Declare the actors on ``broker``, closing over this process's ``pipeline``."""
    common: dict[str, Any] = {
        "broker": broker,
        "queue_name": QUEUE,
        "max_retries": 3,
        "min_backoff": 1_000,
        "max_backoff": 60_000,
        "time_limit": 120_000,
    }

    @dramatiq.actor(actor_name="plan_user", **common)
    def plan_user(user_id: int) -> None:
        run = planning.plan_user(pipeline, user_id)
        log.info(
            "planned user %s: %s proposal(s)%s",
            user_id,
            len(run.meeting_ids),
            f", error {run.error}" if run.error else "",
        )

    # Never retried by the broker: the users' claims are the retries (a retry of the message
    # would plan again those it had planned; scheduler.app.planning_batch).
    @dramatiq.actor(actor_name="plan_users", **{**common, "max_retries": 0})
    def plan_users(user_ids: list[int]) -> None:
        batch = planning_batch.plan_users(pipeline, user_ids)
        for run in batch.runs:
            log.info(
                "planned user %s: %s proposal(s)%s",
                run.user_id,
                len(run.meeting_ids),
                f", error {run.error}" if run.error else "",
            )
        if batch.left:
            log.info(
                "%s user(s) given back to the tick: the batch ran past %ss",
                len(batch.left),
                planning_batch.PLAN_BATCH_DEADLINE.total_seconds(),
            )

    @dramatiq.actor(actor_name="book_meeting", **common)
    def book_meeting(meeting_id: int) -> None:
        result = booking.book_meeting(pipeline, meeting_id)
        log.info("meeting %s: %s", meeting_id, result.outcome.value)
        delay_ms = _short_retry_ms(result)
        if delay_ms is not None:
            # The row is back in `approved` with next_attempt_at; this only makes it prompt.
            raise dramatiq.Retry(delay=delay_ms)

    @dramatiq.actor(actor_name="book_meetings", **common)
    def book_meetings(meeting_ids: list[int]) -> None:
        for meeting_id, result in booking_batch.book_meetings(pipeline, meeting_ids):
            log.info("meeting %s: %s", meeting_id, result.outcome.value)
            delay_ms = _short_retry_ms(result)
            if delay_ms is not None:  # prompt, alone: the others of the batch are done
                book_meeting.send_with_options(args=(meeting_id,), delay=delay_ms)

    @dramatiq.actor(actor_name="sync_responses", **common)
    def sync_responses(user_id: int) -> None:
        # Follow the answers, then watch the meetings still ahead for conflicts.
        conflicts.sync_pass(pipeline, user_id)

    return Actors(plan_user, book_meeting, sync_responses, book_meetings, plan_users)


def _short_retry_ms(result: booking.BookResult) -> int | None:
    """The broker-level delay for a retry that is due soon, else None (the tick re-sends it)."""
    if result.outcome != BookOutcome.RETRY or result.retry_after_s is None:
        return None
    if result.retry_after_s > SHORT_RETRY_S:
        return None
    return int(result.retry_after_s * 1000) + 50


def queue_depth(broker: dramatiq.Broker, queue: str = QUEUE) -> int | None:
    """Messages waiting in ``queue`` (delayed ones included), or None when the broker cannot
    say cheaply. Redis: one ``qsize`` script call (queued and unacknowledged messages);
    RabbitMQ: a passive declare; the embedded StubBroker: its in-process queues."""
    try:
        queues = getattr(broker, "queues", None)
        if isinstance(queues, dict):  # StubBroker
            names = (queue, dq_name(queue))
            return sum(int(q.qsize()) for name, q in queues.items() if name in names)
        do_qsize = getattr(broker, "do_qsize", None)
        if do_qsize is not None:  # RedisBroker
            return int(do_qsize(queue))
        counts = getattr(broker, "get_queue_message_counts", None)
        if counts is not None:  # RabbitmqBroker: (ready, delayed, dead-lettered)
            ready, delayed, _ = counts(queue)
            return int(ready) + int(delayed)
    except Exception:  # the depth is a hint: without it the tick paces by its batch alone
        log.debug("could not read the depth of queue %s", queue, exc_info=True)
    return None
