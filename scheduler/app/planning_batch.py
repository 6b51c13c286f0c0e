"""Several users planned in one message (``plan_users([ids])``).

Each user's round is exactly :func:`~scheduler.app.planning.plan_user`: its own reads, its own
transaction, its own isolation (a crash is recorded for that user and retried after
``plan_retry_s``). What a batch saves is the broker's work per message (an enqueue, a fetch, an
ack, the middleware) and the tick's per-message sends, which at one user per message were a
measurable part of a plan's CPU under a backlog.

What it does not share: the free/busy reads. Each owner's read of their stakeholders goes out
with that owner's delegated credentials, and what a calendar shows (free/busy only, or nothing)
depends on who asks, so one read for two owners would show one owner what only the other may
see.

Failures stay per user, and the claims are the retries: the tick pushed each user's
``next_plan_at`` to ``plan_retry_s`` ahead when it claimed them, a completed round sets the real
next time, and a user whose round raises even past its own isolation (the store failing) keeps
that claim, so the tick sends them again once it runs out; the batch goes on with the next user.
The message itself is never retried by the broker (``max_retries=0``): a retry would plan again
the users it had already planned. That also holds when the actor's time limit (120 s) stops a
round that started before the deadline but ran long (slow calendar reads): the users not yet
planned wait for their claims.

A batch starts no round after :data:`PLAN_BATCH_DEADLINE`; the users not yet planned are given
back (their ``next_plan_at`` set to now, :attr:`PlanBatch.left`), so the tick's next round sends
them again, as it sends any due user: a message the tick does not know of could be sent twice.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from scheduler.app.pipeline import Pipeline
from scheduler.app.planning import PlanRun, plan_user

__all__ = ["PLAN_BATCH_DEADLINE", "PlanBatch", "plan_users"]

log = logging.getLogger("goodwill.planning")

#: No round of a batch starts later than this after the batch did (the actors' time limit is
#: 120 s; one round is ~25 ms of CPU but may wait on slow calendar reads).
PLAN_BATCH_DEADLINE = timedelta(seconds=45)


@dataclass
class PlanBatch:
    """What one batch did: the rounds that ran, in order; the users whose round raised (left to
    their claim); the users not started before the deadline (given back to the tick)."""

    runs: list[PlanRun] = field(default_factory=list)
    failed: list[tuple[int, Exception]] = field(default_factory=list)
    left: list[int] = field(default_factory=list)


def plan_users(
    p: Pipeline, user_ids: Iterable[int], *, deadline: timedelta = PLAN_BATCH_DEADLINE
) -> PlanBatch:
    """Plan each user in turn as :func:`~scheduler.app.planning.plan_user` would (an id given
    twice is planned once); see the module's text for failures and the deadline."""
    ids = list(dict.fromkeys(user_ids))
    batch = PlanBatch()
    began = p.clock.now()
    for index, user_id in enumerate(ids):
        if index and (now := p.clock.now()) - began >= deadline:
            batch.left = ids[index:]
            _give_back(p, batch.left, now)
            break
        try:
            batch.runs.append(plan_user(p, user_id))
        except Exception as exc:  # past the round's own isolation: the store, most likely
            log.warning(
                "planning user %s failed (%s); it is planned again once its claim runs out "
                "(plan_retry_s); the batch goes on with the other users",
                user_id,
                type(exc).__name__,
            )
            batch.failed.append((user_id, exc))
    return batch


def _give_back(p: Pipeline, user_ids: list[int], now: datetime) -> None:
    """Make users due now again (the tick sends them next round); a user the store refuses
    keeps the claim, which brings them back once it runs out."""
    for user_id in user_ids:
        try:
            p.store.set_next_plan(user_id, now)
        except Exception as exc:
            log.warning(
                "giving user %s back to the tick failed (%s); it is planned once its claim "
                "runs out",
                user_id,
                type(exc).__name__,
            )
