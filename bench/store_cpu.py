"""Python CPU of the store's work in a planning round and a booking (issue 13), before and now.

The pipeline bench's profile puts a third of a worker's CPU in SQLAlchemy (statement
construction, compilation and cache keys, ORM execution, sessions) for ~6 statements a planning
round and ~5 a booking. This measures exactly that, without HTTP: ``--owners`` owners (16 peers
each, the scenario policy of ``tests/sql_counting.py``: 3 proposals, 13 skips a round) on
PostgreSQL at 127.0.0.1:5432 and the in-memory fake calendar; for each owner the first round
(``plan_user``), the booking of its proposals (``book_meetings``, as the workers do), and a
steady round an hour later (nothing new). Figures are the thread CPU (``time.thread_time``) of
those calls in the measuring process (psycopg's own work included, the server's not), medians
over the owners, after ``--warm`` owners not counted.

*Before* is ``scheduler/`` and ``connectors/`` of ``--baseline`` (default HEAD) unpacked with
``git archive`` (:func:`bench.process_costs.baseline_tree`); *now* is the working tree. Each runs
``--runs`` times in fresh processes, in turns, each on its own schema; the table gives the median
of the runs' medians and the ratio. Not part of ``make test``; the machine may be shared, so
compare the two columns of one run.

    make bench-store                  # or: .venv/bin/python -m bench.store_cpu [--owners 60]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.process_costs import baseline_tree

ROOT = Path(__file__).resolve().parent.parent
ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=3"
STEPS = ("first round", "booking", "steady round")


def _policy(i: int) -> str:
    sys.path.insert(0, str(ROOT / "tests"))  # tests/sql_counting.py: only stdlib + SQLAlchemy
    from sql_counting import scenario_policy

    text: str = scenario_policy()
    return text.replace("alex@corp.example", f"owner{i:03d}@corp.example").replace(
        "  - {email: p", f"  - {{email: o{i:03d}p"
    )


def _measure(owners: int, warm: int) -> dict[str, list[float]]:
    """In the child: whichever goodwill is first on ``sys.path``."""
    import scheduler

    here = Path(scheduler.__file__).parent.parent
    assert here == Path(os.environ["GW_TREE"]), f"measuring {here}, not {os.environ['GW_TREE']}"
    import psycopg

    from scheduler.app import planning
    from scheduler.app.booking_batch import book_meetings
    from scheduler.app.pipeline import Pipeline
    from scheduler.app.policies import PolicyBook
    from scheduler.core.clock import FixedClock
    from scheduler.store import SecretBox, Store, make_engine, migrate
    from tests.usecase.fakes import FakeCalendar

    schema = f"bench_store_{secrets.token_hex(4)}"
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/postgres?options=-csearch_path%3D{schema}"
    out: dict[str, list[float]] = {step: [] for step in STEPS}
    try:
        with tempfile.TemporaryDirectory() as policies:
            for i in range(owners + warm):
                (Path(policies) / f"o{i:03d}.yaml").write_text(_policy(i))
            migrate(url)
            engine = make_engine(url)
            store = Store(engine, secrets=SecretBox("bench store cpu"))
            clock = FixedClock(datetime(2027, 3, 1, 8, 0, tzinfo=UTC))
            calendar = FakeCalendar()
            p = Pipeline(
                store=store,
                clock=clock,
                backends=calendar.backend,
                policies=PolicyBook(Path(policies)),
            )
            planning.register_policies(p)
            users = [u.id for u in sorted(store.all_users(), key=lambda u: u.email)]
            for n, user_id in enumerate(users):
                t0 = time.thread_time()
                run = planning.plan_user(p, user_id)
                t1 = time.thread_time()
                assert run.plan is not None, run.error
                assert run.meeting_ids, run.error
                results = book_meetings(p, run.meeting_ids)
                t2 = time.thread_time()
                assert all(r.outcome.value == "booked" for _, r in results), results
                clock.advance(timedelta(hours=1))
                p.store.set_next_plan(user_id, clock.now())
                t3 = time.thread_time()
                planning.plan_user(p, user_id)
                t4 = time.thread_time()
                clock.advance(timedelta(seconds=-3600))
                if n >= warm:
                    out["first round"].append((t1 - t0) * 1000)
                    out["booking"].append((t2 - t1) * 1000 / len(results))
                    out["steady round"].append((t4 - t3) * 1000)
            engine.dispose()
    finally:
        with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    return out


def _run(tree: Path, owners: int, warm: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": f"{tree}{os.pathsep}{ROOT}", "GW_TREE": str(tree)}
    cmd = [sys.executable, "-m", "bench.store_cpu", "--child", f"--owners={owners}",
           f"--warm={warm}"]  # fmt: skip
    # cwd = the tree: ``-m`` puts the working directory first on sys.path.
    done = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"measuring {tree} failed:\n{done.stderr[-3000:]}")
    samples: dict[str, list[float]] = json.loads(done.stdout.strip().splitlines()[-1])
    return {step: statistics.median(values) for step, values in samples.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--owners", type=int, default=40, help="measured owners (default 40)")
    parser.add_argument("--warm", type=int, default=5, help="owners first, not counted (5)")
    parser.add_argument("--runs", type=int, default=3, help="runs of each tree, in turns (3)")
    parser.add_argument("--baseline", default="HEAD", help="git ref for 'before' (HEAD)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_measure(args.owners, args.warm)))
        return 0
    runs: dict[str, list[dict[str, float]]] = {"before": [], "now": []}
    with tempfile.TemporaryDirectory(prefix="goodwill-baseline-") as tmp:
        # the tests' fake calendar and scenario too: the fakes follow the store port they fake
        before = baseline_tree(args.baseline, Path(tmp), ("scheduler", "connectors", "tests"))
        trees = {"before": before, "now": ROOT}
        for i in range(args.runs):
            for name, tree in trees.items():
                print(f"run {i + 1}/{args.runs}: {name} …", file=sys.stderr, flush=True)
                runs[name].append(_run(tree, args.owners, args.warm))
    table = {
        name: {step: round(statistics.median(r[step] for r in done), 2) for step in STEPS}
        for name, done in runs.items()
    }
    if args.json:
        print(json.dumps(table))
        return 0
    print(
        f"Python CPU (thread time) per call, ms: {args.owners} owners x {args.runs} runs, "
        f"PostgreSQL, fake calendar; before = {args.baseline}"
    )
    print("| | before | now | now/before |\n|---|---:|---:|---:|")
    for step in STEPS:
        b, a = table["before"][step], table["now"][step]
        print(f"| {step} | {b:.2f} | {a:.2f} | {a / b:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
