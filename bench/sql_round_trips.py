"""SQL round trips per planning round and per booking, before (git HEAD) and after (this tree).

Runs the scenario of ``tests/sql_counting.py`` (one owner with 16 peers, all due: 6 proposals
and 10 skips; then one booking of the first proposal, on the fake calendar) on PostgreSQL at
127.0.0.1:5432 (user ``postgres``), once with the code at ``git HEAD`` (extracted read-only with
``git archive HEAD | tar -x`` into a temporary directory) and once with the working tree, each
in its own process with the same venv. The counting helper is always this tree's, loaded by path.

    make bench-sql            # or: .venv/bin/python -m bench.sql_round_trips [--json] [--log]

Round trips are exact (libpq's protocol trace: one per ReadyForQuery, BEGIN/COMMIT and pool
pings included). Not part of ``make test``; the budgets are pinned by
``tests/integration/test_sql_round_trips.py``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import secrets
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
COUNTING = ROOT / "tests" / "sql_counting.py"
ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=3"


def _measure_here(log: bool) -> dict[str, Any]:
    """In the child: measure whichever goodwill is first on ``sys.path``."""
    import psycopg

    spec = importlib.util.spec_from_file_location("goodwill_sql_counting", COUNTING)
    assert spec is not None
    assert spec.loader is not None
    counting = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = counting  # dataclasses look their module up
    spec.loader.exec_module(counting)
    schema = f"bench_sql_{secrets.token_hex(4)}"
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        url = f"postgresql+psycopg://postgres@127.0.0.1:5432/postgres?options=-csearch_path%3D{schema}"
        with tempfile.TemporaryDirectory() as policies:
            counts = counting.measure_plan_and_booking(url, policies)
    finally:
        with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    out: dict[str, Any] = {
        "plan": counts.plan.as_dict(),
        "booking": counts.booking.as_dict(),
        "proposals": counts.proposals,
        "skipped": counts.skipped,
        "second": counts.second.as_dict(),
        "third": counts.third.as_dict(),
        "followed_state": counts.followed_state,
    }
    if log:
        out["plan_log"], out["booking_log"] = counts.plan.log, counts.booking.log
        out["second_log"], out["third_log"] = counts.second.log, counts.third.log
    return out


def _run(tree: Path, log: bool) -> dict[str, Any]:
    """Measure the checkout at ``tree`` in a fresh interpreter (same venv)."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child"] + (["--log"] if log else [])
    done = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"measuring {tree} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _head_tree(into: Path) -> Path:
    archive = subprocess.run(["git", "archive", "HEAD"], cwd=ROOT, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


#: Issue 13's targets, and the budgets ``tests/integration/test_sql_round_trips.py`` pins
#: (``MAX_PLAN_ROUND_TRIPS``, ``MAX_BOOKING_ROUND_TRIPS``, ``MAX_SECOND_ROUND_TRIPS``,
#: ``MAX_STEADY_ROUND_TRIPS``): (what, target, pinned).
BUDGETS = (("plan", 10, 6), ("booking", 6, 5), ("second", 10, 10), ("third", 10, 6))


def _table(before: dict[str, Any], after: dict[str, Any]) -> str:
    rows = ["| | before (HEAD) | after | target | pinned |", "|---|---|---|---|---|"]
    for what, target, pinned in BUDGETS:
        if what not in before or what not in after:
            continue
        b, a = before[what], after[what]
        rows.append(
            f"| SQL round trips per {what} | {b['round_trips']} | {a['round_trips']} "
            f"| ≤ {target} | ≤ {pinned} |"
        )
        rows.append(f"| transactions per {what} | {b['transactions']} | {a['transactions']} | | |")
        rows.append(f"| statements per {what} | {b['statements']} | {a['statements']} | | |")
        rows.append(f"| pool pings per {what} | {b['pings']} | {a['pings']} | | |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--log", action="store_true", help="also list the statements")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_measure_here(args.log)))
        return 0
    with tempfile.TemporaryDirectory(prefix="goodwill-head-") as head:
        before = _run(_head_tree(Path(head)), args.log)
    after = _run(ROOT, args.log)
    if args.json:
        print(json.dumps({"before": before, "after": after}))
        return 0
    print(
        f"one planning round ({after['proposals']} proposals, {after['skipped']} skipped) and "
        "one booking, then the second round (history, the booked meeting accepted) and a third "
        "(nothing new): PostgreSQL, fake calendar"
    )
    print(_table(before, after))
    if args.log:
        for name, result in (("before", before), ("after", after)):
            for what in ("plan", "booking", "second", "third"):
                if f"{what}_log" not in result:
                    continue
                print(f"\n{name}, {what}:")
                print("\n".join(f"  {line}" for line in result[f"{what}_log"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
