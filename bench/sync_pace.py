"""``python -m bench.sync_pace``: how many sync passes the tick sends, at a fixed pace and by lead.

A sync pass follows one owner's answers (one listing of their calendar) and then watches the
meetings ahead for conflicts (one batched free/busy read): two provider requests and, measured by
``bench.pipeline`` at N = 10,000 (docs/benchmarks.md), about 22 ms of worker CPU. The tick used
to send one per followed owner every 15 minutes; it now sends the next one a twelfth of the time
before the owner's next followed meeting, between ``GOODWILL_SYNC_EVERY_S`` and
``GOODWILL_SYNC_MAX_EVERY_S`` (:func:`workers.tick.follow_every`), and a new booking brings
the next pass to within ``GOODWILL_SYNC_EVERY_S``.

This replays that schedule, event by event, for ``--owners`` owners over ``--days`` days with the
tick's own pace function: each owner books ``--per-week`` coffees a week (30 minutes, in working
hours 09:00–17:00 UTC on weekdays, each booked 1–21 days ahead, answered 1–48 hours after the
invite, ``--declined`` of them declined), a meeting is followed from its booking until the first
pass after it ends (which completes it; a decline, for 30 days after its end), and an owner with
nothing followed gets no pass. One tick replica (two replicas that take the lease in turns
each keep their own schedule: up to twice the passes). Printed: passes per owner per day, and
what they would mean at ``--scale`` owners: provider requests per minute (against Google's
default quota of 10,000 a minute per project) and worker cores at ``--pass-ms``. Deterministic
(``--seed``); no timing is measured here. Not part of ``make test``.
"""

from __future__ import annotations

import argparse
import heapq
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from workers.tick import MOVE_CUTOFF, follow_every

START = datetime(2026, 11, 2, 0, 0, tzinfo=UTC)  # a Monday
REQUESTS_PER_PASS = 2  # the listing of the owner's calendar and the free/busy read
GOOGLE_PER_MINUTE = 10_000  # per project (calendar-apis.md, "Quotas")


@dataclass(frozen=True)
class Booking:
    at: datetime  # when the invite went out
    start: datetime
    answered: datetime  # when the stakeholder answered (may be after the start: never)
    declined: bool


def bookings(rng: random.Random, days: int, per_week: float, declined: float) -> list[Booking]:
    """One owner's bookings over ``days`` (and the three weeks before, so day one is steady)."""
    out: list[Booking] = []
    t = START - timedelta(days=21)
    end = START + timedelta(days=days)
    while True:
        t += timedelta(days=rng.expovariate(per_week / 7))
        if t >= end:
            return out
        day = (t + timedelta(days=rng.randint(1, 21))).date()
        while day.weekday() >= 5:
            day += timedelta(days=1)
        slot = datetime(day.year, day.month, day.day, 9, tzinfo=UTC)
        answered = t + timedelta(hours=rng.uniform(1, 48))
        out.append(Booking(t, slot + timedelta(minutes=30 * rng.randrange(16)), answered,
                           rng.random() < declined))  # fmt: skip


@dataclass(frozen=True)
class _Pace:
    """The tick's pace (:func:`workers.tick.follow_every`) for one pair of settings."""

    sync_every: timedelta
    sync_max_every: timedelta

    def next_pass(self, next_start: datetime | None, now: datetime) -> timedelta:
        return follow_every(next_start, now, self.sync_every, self.sync_max_every)


_MEETING = timedelta(minutes=30)
_DECLINED_KEPT = timedelta(days=30)  # a decline is followed this long after its end


def passes(plan: list[Booking], pace: _Pace, days: int) -> int:
    """Sync passes in ``[START, START + days)`` for one owner's bookings, as the tick paces
    them: the deadline is the soonest start of a meeting still followed closely or, sooner,
    the moment a later one enters its last :data:`MOVE_CUTOFF`; a booking or an answer brings
    the next pass to within ``sync_every`` (now, when nothing was followed); a decline stops
    pacing but keeps the owner followed for 30 days after its end."""
    end = START + timedelta(days=days)
    answers = [(b.answered, 1, b) for b in plan if b.answered < b.start]
    changes = sorted([(b.at, 0, b) for b in plan] + answers, key=lambda c: c[0])
    close: set[Booking] = set()  # followed closely: booked or accepted, not completed
    kept: list[datetime] = []  # when each followed decline stops being followed (heap)
    count, i, at = 0, 0, None  # at: the owner's next pass (None: not followed)
    while True:
        change_at = changes[i][0] if i < len(changes) else None
        if at is None and change_at is None:
            return count
        if at is not None and (change_at is None or at <= change_at):
            if at >= end:
                return count
            now = at
            if now >= START:
                count += 1
            close = {b for b in close if b.start + _MEETING > now}  # the pass completes those
            while kept and kept[0] <= now:
                heapq.heappop(kept)
            if not close and not kept:
                at = None
                continue
            soon = min((b.start for b in close), default=None)
            far = min((b.start for b in close if b.start > now + MOVE_CUTOFF), default=None)
            deadline = min([t for t in (soon, far and far - MOVE_CUTOFF) if t], default=None)
            at = now + pace.next_pass(deadline, now)
            continue
        assert change_at is not None
        _, kind, booking = changes[i]
        i += 1
        if kind == 0:
            close.add(booking)
        elif booking.declined and booking in close:
            close.discard(booking)
            heapq.heappush(kept, booking.start + _MEETING + _DECLINED_KEPT)
        at = change_at if at is None else min(at, change_at + pace.sync_every)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--owners", type=int, default=1000)
    parser.add_argument("--days", type=int, default=28)
    parser.add_argument("--per-week", type=float, default=3.0, help="coffees booked a week")
    parser.add_argument("--declined", type=float, default=0.2, help="share of invites declined")
    parser.add_argument("--scale", type=int, default=100_000, help="owners to project onto")
    parser.add_argument("--pass-ms", type=float, default=22.2, help="worker CPU per pass")
    parser.add_argument("--seed", type=int, default=20261202)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    plans = [bookings(rng, args.days, args.per_week, args.declined) for _ in range(args.owners)]
    every = timedelta(minutes=15)
    paces = {
        "fixed, every 15 min (before)": _Pace(every, every),
        "by lead, 15 min to 1 h": _Pace(every, timedelta(hours=1)),
        "by lead, 15 min to 2 h (default)": _Pace(every, timedelta(hours=2)),
        "by lead, 15 min to 4 h": _Pace(every, timedelta(hours=4)),
    }
    print(
        f"sync passes for {args.owners:,} owners over {args.days} days, {args.per_week:g} "
        f"coffees booked a week each, {args.declined:.0%} declined; projected onto "
        f"{args.scale:,} owners at {args.pass_ms:g} ms of worker CPU and {REQUESTS_PER_PASS} "
        "requests a pass"
    )
    print("| pace | passes per owner per day | requests per minute | of Google's 10,000/min "
          "| worker cores | vs fixed |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|")
    base = None
    for name, pace in paces.items():
        total = sum(passes(plan, pace, args.days) for plan in plans)
        per_day = total / args.owners / args.days
        per_minute = per_day * args.scale * REQUESTS_PER_PASS / 1440
        cores = per_day * args.scale * args.pass_ms / 1000 / 86400
        base = base or per_day
        print(
            f"| {name} | {per_day:.1f} | {per_minute:,.0f} | {per_minute / GOOGLE_PER_MINUTE:.0%} "
            f"| {cores:.2f} | {base / per_day:.1f}× |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
