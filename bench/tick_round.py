"""``python -m bench.tick_round``: what one tick round costs when nobody is due, before and after.

For each size (``--users 1000,10000``) and store (SQLite file, PostgreSQL on 127.0.0.1:5432 in a
fresh schema; ``--stores sqlite,postgresql``): N policy files are written and registered, every
user gets a booked meeting (their answers are followed) and a proposal far ahead, and nobody is
due for planning. Then, after one warm-up round each:

- **before**: the round as it was: every policy file read, hashed and upserted (two write
  transactions: the upsert and the policy error) with the digest schedule checked, the users
  compared with the files by a linear search, and the tick's scans reading every proposal, every
  booking and followed meeting and every user (:func:`old_round`, kept here to be measured);
- **after**: :meth:`workers.tick.Tick.run_once` as it is: the directory stat-diffed (nothing
  changed, so nothing read, parsed or written), the scans bounded by indexed due times;
- **watched**: the same with the tick's watch of the directory
  (:class:`scheduler.entrypoints.policy_watch.DirectoryWatch`, as ``GOODWILL_POLICY_WATCH`` is on
  by default): a quiet round stats no file at all (the directory is still listed every
  ``PolicyScan.list_every`` rounds, not in these).

Printed: CPU ms of this process (``time.process_time``, the database server's CPU not included)
and wall ms per round (median of ``--rounds``), and the ratio before / after. Not part of
``make test``; no figure here is asserted anywhere.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, insert, update

from scheduler.app import decisions
from scheduler.app.digest import schedule_digest
from scheduler.app.pipeline import Pipeline
from scheduler.app.policies import PolicyBook
from scheduler.app.registration import load_isolated, register_policies
from scheduler.app.responses import FOLLOWED_STATES
from scheduler.core.clock import FixedClock
from scheduler.core.states import MeetingState
from scheduler.entrypoints.policy_watch import DirectoryWatch
from scheduler.store import Store, make_engine, migrate
from scheduler.store.tables import MeetingRow, UserRow
from workers.actors import declare_actors, queue_depth
from workers.broker import make_broker
from workers.tick import Tick

NOW = datetime(2027, 3, 1, 8, 0, tzinfo=UTC)
PG = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def policy(i: int) -> str:
    return (
        f"owner: {{email: owner{i}@corp.example, name: Owner {i}, timezone: Europe/London}}\n"
        'notify: {digest: "mon 08:30"}\n'
        "tiers: {peer: {every: 4w, mode: auto}}\n"
        "stakeholders:\n"
        f"  - {{email: peer{i % 97}@corp.example, name: Peer {i % 97}, tier: peer}}\n"
        f"  - {{email: peer{(i + 1) % 97}@corp.example, name: Peer {(i + 1) % 97}, tier: peer}}\n"
        "allowed_domains: [corp.example]\n"
    )


def _no_backends(policy: Any) -> Any:
    raise AssertionError("nobody is due: no calendar is read")


@contextmanager
def open_url(kind: str, tmp: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{(tmp / 'goodwill.db').as_posix()}"
        return
    import psycopg

    schema = f"bench_{secrets.token_hex(4)}"
    dsn = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{PG}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def old_round(p: Pipeline) -> None:
    """The round before registration by change and bounded scans (the same store calls)."""
    now = p.clock.now()
    users = p.store.all_users()
    owners: set[str] = set()
    for path in p.policies.files():
        pf = load_isolated(p, path).file
        if pf is None or pf.policy is None:
            continue
        email = pf.policy.owner.email.strip().lower()
        owners.add(email)
        before = next((u for u in users if u.email == email), None)  # the old linear search
        user_id = p.store.upsert_user(email, pf.path, pf.content_hash, now=now)
        schedule_digest(p, user_id, before.next_digest_at if before else None, pf.policy, now)
        p.store.record_policy_error(user_id, None)
    for user in users:  # following removals: every user against the files found
        _ = user.email in owners
    decisions.expire_proposals(p)  # every proposal in the system
    p.store.claim_users_for_planning(now, limit=200, retry_s=p.plan_retry_s)
    p.store.claim_removed_owners(now - p.policy_removed_grace, now, limit=200, retry_s=300)
    p.store.meetings_by_state(MeetingState.BOOKING)
    p.store.approved_needing_send(now, limit=500, send_lease_s=p.send_lease_s)
    {m.user_id for s in FOLLOWED_STATES for m in p.store.meetings_by_state(s)}
    {u.id for u in p.store.all_users() if u.policy_missing_since is not None}
    p.store.record_heartbeat("tick", "bench")


def populate(engine: Engine) -> None:
    """Nobody due; each user with a booked meeting and a proposal far ahead."""
    far = NOW + timedelta(days=30)
    with engine.begin() as conn:
        conn.execute(update(UserRow).values(next_plan_at=NOW + timedelta(days=1)))
        ids = [r[0] for r in conn.execute(UserRow.__table__.select().with_only_columns(UserRow.id))]
        rows = []
        for k, (user_id, state) in enumerate(
            [(u, MeetingState.BOOKED) for u in ids] + [(u, MeetingState.PROPOSED) for u in ids]
        ):
            start = far + timedelta(hours=k % 500)
            rows.append(
                {
                    "user_id": user_id, "stakeholder_email": f"peer{k % 97}@corp.example",
                    "kind": "coffee", "start": start, "end": start + timedelta(minutes=30),
                    "state": state, "mode": "auto", "idempotency_key": f"bench-{k}",
                    "provider": "ics", "attempts": 0, "reason": "", "created_at": NOW,
                    "updated_at": NOW,
                }
            )  # fmt: skip
        conn.execute(insert(MeetingRow.__table__), rows)


def timed(run: Callable[[], object], clock: FixedClock, rounds: int) -> tuple[float, float]:
    cpu, wall = [], []
    for _ in range(rounds):
        clock.advance(timedelta(seconds=30))
        c0, w0 = time.process_time(), time.perf_counter()
        run()
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    return statistics.median(cpu) * 1000, statistics.median(wall) * 1000


def measure(kind: str, n: int, rounds: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        directory = tmp / "policies"
        directory.mkdir()
        for i in range(n):
            (directory / f"owner{i}.yaml").write_text(policy(i))
        old_mtime = time.time_ns() - 10**10  # older than the racy window
        for path in directory.iterdir():
            os.utime(path, ns=(old_mtime, old_mtime))
        with open_url(kind, tmp) as url:
            migrate(url)
            engine = make_engine(url)
            try:
                store = Store(engine)
                clock = FixedClock(NOW)
                p = Pipeline(store, clock, _no_backends, PolicyBook(directory))
                c0 = time.process_time()
                register_policies(p)
                first_ms = (time.process_time() - c0) * 1000
                populate(engine)
                broker = make_broker("embedded", set_global=False)
                tick = Tick(
                    p, declare_actors(broker, p), interval_s=10, holder="bench",
                    queue_depth=lambda: queue_depth(broker),
                )  # fmt: skip
                clock.advance(timedelta(seconds=30))
                tick.run_once()  # warm-up: the first round looks at every user once
                broker.flush_all()
                after = timed(tick.run_once, clock, rounds)
                watch = DirectoryWatch(directory)
                watch.start()
                p.scan.feed = watch
                try:
                    tick.run_once()  # the first drain cannot tell: this round lists
                    watched = timed(tick.run_once, clock, rounds)
                finally:
                    watch.close()
                old = Pipeline(store, clock, _no_backends, PolicyBook(directory))
                old_round(old)  # warm-up (the PolicyBook's cache by hash filled)
                before = timed(lambda: old_round(old), clock, rounds)
            finally:
                engine.dispose()
    return {
        "store": kind, "users": n, "first_ms": first_ms, "before": before, "after": after,
        "watched": watched,
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", default="1000,10000")
    parser.add_argument("--stores", default="sqlite,postgresql")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    rows = [
        measure(kind, int(n), args.rounds)
        for n in args.users.split(",")
        for kind in args.stores.split(",")
    ]
    print(
        "| store | users | before CPU ms | before wall ms | after CPU ms | after wall ms "
        "| ratio (wall) | watched CPU ms | watched wall ms | first round CPU ms |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        (bc, bw), (ac, aw), (wc, ww) = r["before"], r["after"], r["watched"]
        print(
            f"| {r['store']} | {r['users']:,} | {bc:,.0f} | {bw:,.0f} | {ac:,.1f} | {aw:,.1f} "
            f"| {bw / aw:,.0f}x | {wc:,.1f} | {ww:,.1f} | {r['first_ms']:,.0f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
