"""CPU of one planning round (issue 13), without the store: before (a git ref) and now.

A planning round's calendar and planner work, as ``scheduler.app.planning._read_and_plan`` does
it, for realistic owners: the users of :func:`bench.soak.world.build_world` (20 stakeholders in
London/Berlin/New York, the soak's policy) against the bench's Google emulator
(:mod:`bench.pipeline_emulator`, in its own process: ~40 events a week, 26 weeks of history and
three weeks ahead on an owner's calendar, ~1,120 events a read), through the real connector
registry and :class:`connectors.google.GoogleCalendar` with a service-account key. One round is:
``read_owner`` (one ``events.list`` over history and horizon), ``last_contacts``, then
:func:`scheduler.app.planning.dry_run_plan` with the store's side given as a
:class:`~scheduler.app.planning.StoredState` (nothing open, no back-offs: what the store would
hand a first round), which reads busy time (the owner's held events and one ``freeBusy``) and
plans. No SQL; the HTTP client's work is in the figures (it is part of a round: the
``read_owner`` and ``busy`` rows).

*Before* is ``scheduler/`` and ``connectors/`` as of ``--baseline`` (default HEAD), unpacked
read-only with ``git archive`` into a temporary directory and put first on ``PYTHONPATH``;
*now* is the working tree. Both run in fresh processes, in turns (before, now, before, …) on the
same inputs, and each checks its plans: the table says whether both gave the same plans.
Figures are the thread CPU time (``time.thread_time``) of warm rounds (each owner planned once
first: tokens and API clients are built then), medians over every owner and round. The first
policy load of each owner (``PolicyBook.load``: parse and validate) is shown on its own row.

``--steady``: the warm rounds are steady-state rounds. A tree that reads the history
incrementally (``scheduler.app.history_window``) then reads it from where the owner's first
round ended, less the overlap, and merges the contacts that first round found (what the store
hands it); a tree without it reads the whole lookback as before. Both must still give the same
plans.

``--profile`` runs cProfile over the working tree's warm rounds instead and prints the top
functions in ms per round. Not part of ``make test``. The machine is shared: compare the two
columns of one run, not runs.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import io
import json
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
#: The round's "now" and the emulator's start (a Monday morning, no DST change ahead).
START = datetime(2026, 11, 9, 8, 0, tzinfo=UTC)
SEED = 1
FRESH_WEEKS = 8
#: What a step of a round is called in the table, in order.
STEPS = ("read_owner", "last_contacts", "busy", "planner", "round")


def child(argv: list[str]) -> int:
    """In a fresh process: plan ``owners`` owners ``rounds`` times; print one JSON line."""
    work, owners, rounds, profile = Path(argv[0]), int(argv[1]), int(argv[2]), argv[3] == "1"
    steady = argv[4] == "1"
    endpoints = json.loads((work / "endpoints.json").read_text(encoding="utf-8"))
    import connectors.google
    from connectors.registry import BackendRegistry
    from scheduler.app.planning import ORGANIC_LOOKBACK, StoredState, dry_run_plan, merge_contacts
    from scheduler.app.policies import PolicyBook
    from scheduler.core.intervals import Interval
    from scheduler.core.planner import StakeholderLoad
    from scheduler.core.ports import OwnerCalendar
    from scheduler.settings import GoogleSettings, Settings

    google = GoogleSettings(
        service_account_file=work / "sa.json",
        token_uri=endpoints["token_uri"],
        api_endpoint=endpoints["api_endpoint"],
        timeout_s=30,
    )
    settings = Settings(data_dir=work / "data", google=google)
    registry = BackendRegistry(settings)
    book = PolicyBook(work / "policies")
    paths = book.files()[:owners]
    spent: dict[str, list[float]] = {step: [] for step in STEPS}
    first_load: list[float] = []
    now = START
    since = now - ORGANIC_LOOKBACK  # the warm rounds' history read starts here
    if steady:
        try:  # the incremental read: from the first round's end (now), less the overlap
            from scheduler.app.history_window import HISTORY_OVERLAP

            since = now - HISTORY_OVERLAP
        except ImportError:
            pass  # a tree from before: every round reads the whole lookback
    found: dict[str, Any] = {}  # the first round's contacts, per owner (the store's, later)

    class Timed:
        """The busy read of a round, timed apart from the planner around it."""

        def __init__(self, inner: Any) -> None:
            self.inner = inner
            self.cpu = 0.0

        def busy(self, query: Any) -> Any:
            began = time.thread_time()
            try:
                return self.inner.busy(query)
            finally:
                self.cpu += time.thread_time() - began

    def one_round(policy: Any, backend: Any, record: bool) -> Any:
        cpu = time.thread_time
        start = since if record else now - ORGANIC_LOOKBACK  # the first round reads it all
        t0 = cpu()
        person = policy.owner.person
        if isinstance(backend.source, OwnerCalendar):
            window = Interval(start, now + policy.availability.horizon)
            backend.source.read_owner(person, window)
        t1 = cpu()
        emails = [s.email for s in policy.stakeholders]
        organic = backend.history.last_contacts(person, emails, start, now)
        stored = found.setdefault(person.email, organic)
        t2 = cpu()
        known = StoredState(
            goodwill_contacts=merge_contacts(stored, organic),
            existing=[],
            backoff_until={},
            paused={},
            load=StakeholderLoad(settings.stakeholder_weekly_cap, {}, ()),
        )
        source = Timed(backend.source)
        result = dry_run_plan(policy, source=source, history=None, now=now, known=known)
        t3 = cpu()
        if record:
            for step, ms in zip(
                STEPS,
                (t1 - t0, t2 - t1, source.cpu, t3 - t2 - source.cpu, t3 - t0),
                strict=True,
            ):
                spent[step].append(ms * 1000)
        return result

    planned: list[tuple[Any, Any]] = []
    digest = hashlib.sha256()
    for path in paths:
        began = time.thread_time()
        loaded = book.load(path)
        first_load.append((time.thread_time() - began) * 1000)
        assert loaded.policy is not None, loaded.issues
        backend = registry(loaded.policy)
        plan = one_round(loaded.policy, backend, record=False)  # warm-up: tokens, clients
        digest.update(repr(plan).encode())
        planned.append((loaded.policy, backend))
    profiler = cProfile.Profile(time.thread_time) if profile else None
    for _ in range(rounds):
        for policy, backend in planned:
            if profiler is not None:
                profiler.enable()
            plan = one_round(policy, backend, record=True)
            if profiler is not None:
                profiler.disable()
            digest.update(repr(plan).encode())
    out: dict[str, Any] = {
        "code": str(Path(connectors.google.__file__).resolve().parents[1]),
        "rounds": len(spent["round"]),
        "ms": {step: statistics.median(values) for step, values in spent.items()},
        "first_load_ms": statistics.median(first_load),
        "plans": digest.hexdigest(),
    }
    if profiler is not None:
        buffer = io.StringIO()
        stats = pstats.Stats(profiler, stream=buffer)
        out["profile"] = _profile_rows(stats, len(spent["round"]))
    print(json.dumps(out))
    return 0


def _profile_rows(stats: pstats.Stats, rounds: int) -> list[tuple[str, float, float, int]]:
    """(function, own ms per round, cumulative ms per round, calls per round), top 40 by own."""
    rows = []
    for (file, line, name), (_, calls, own, cum, _) in stats.stats.items():  # type: ignore[attr-defined]
        short = file.replace(str(ROOT) + "/", "").split("site-packages/")[-1]
        rows.append((f"{short}:{line}:{name}", own * 1000 / rounds, cum * 1000 / rounds, calls))
    rows.sort(key=lambda r: -r[1])
    return [(what, own, cum, calls // rounds) for what, own, cum, calls in rows[:40]]


def _run_child(
    work: Path, tree: Path | None, owners: int, rounds: int, profile: bool, steady: bool = False
) -> Any:
    path = f"{tree}{os.pathsep}{ROOT}" if tree else str(ROOT)
    args = [str(work), str(owners), str(rounds), "1" if profile else "0", "1" if steady else "0"]
    out = subprocess.run(
        [sys.executable, "-m", "bench.plan_cpu", "--child", *args],
        check=True, capture_output=True, text=True, cwd=tree or ROOT,
        env={**os.environ, "PYTHONPATH": path},
    )  # fmt: skip
    result = json.loads(out.stdout.strip().splitlines()[-1])
    expected = str((tree or ROOT).resolve())
    if result["code"] != expected:
        raise RuntimeError(f"the child ran the code in {result['code']}, not {expected}")
    return result


def _prepare(work: Path, users: int) -> Callable[[], None]:
    """The world, its policies, the key and the emulator; returns how to stop the emulator."""
    from bench.pipeline_emulator import write_spec
    from bench.soak.emulator import RemoteEmulator
    from bench.soak.world import build_world
    from tests.integration.reliability_support import service_account_file

    world = build_world(
        users=users, stakeholders=20, hubs=6, seed=SEED, start=START, seed_calendars=False
    )
    world.write_policies(work / "policies")
    (work / "data").mkdir()
    service_account_file(work / "sa.json")
    spec = work / "calendars.json"
    write_spec(world, spec, start=START, seed=SEED, fresh_weeks=FRESH_WEEKS)
    emulator = RemoteEmulator(spec, work / "emulator.log", module="bench.pipeline_emulator")
    endpoints = {"token_uri": emulator.token_uri, "api_endpoint": emulator.api_endpoint}
    (work / "endpoints.json").write_text(json.dumps(endpoints), encoding="utf-8")
    return emulator.close


def main(argv: list[str] | None = None) -> int:
    args_list = sys.argv[1:] if argv is None else argv
    if args_list[:1] == ["--child"]:
        return child(args_list[1:])
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--owners", type=int, default=8, help="owners planned per process")
    parser.add_argument("--rounds", type=int, default=5, help="warm rounds per owner")
    parser.add_argument("--turns", type=int, default=3, help="processes per side, in turns")
    parser.add_argument("--baseline", metavar="GIT_REF", default="HEAD")
    parser.add_argument("--profile", action="store_true", help="cProfile the working tree")
    parser.add_argument(
        "--steady", action="store_true", help="steady-state rounds (the history read since)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(args_list)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "work"
        work.mkdir()
        stop = _prepare(work, max(args.owners, 12))
        try:
            if args.profile:
                result = _run_child(work, None, args.owners, args.rounds, True, args.steady)
                _print_profile(result)
                return 0
            from bench.process_costs import baseline_tree  # the same `git archive` baseline

            tree = baseline_tree(args.baseline, Path(tmp) / "baseline")
            runs: dict[str, list[Any]] = {"before": [], "now": []}
            for _ in range(args.turns):
                for side, code in (("before", tree), ("now", None)):
                    one = _run_child(work, code, args.owners, args.rounds, False, args.steady)
                    runs[side].append(one)
        finally:
            stop()
    summary = _summary(runs)
    if args.json:
        print(json.dumps(summary))
    else:
        _print_table(summary, args)
    return 0


def _summary(runs: dict[str, list[Any]]) -> dict[str, Any]:
    """Per side, the median of the processes' medians per step; whether the plans agree."""
    out: dict[str, Any] = {}
    for side, results in runs.items():
        out[side] = {step: statistics.median(r["ms"][step] for r in results) for step in STEPS}
        out[side]["first_load"] = statistics.median(r["first_load_ms"] for r in results)
    plans = {r["plans"] for results in runs.values() for r in results}
    out["same_plans"] = len(plans) == 1
    out["rounds_per_process"] = runs["now"][0]["rounds"]
    return out


def _print_table(summary: dict[str, Any], args: argparse.Namespace) -> None:
    names = {
        "read_owner": "read_owner (events.list, ~1,120 events: HTTP + JSON, times)",
        "last_contacts": "last_contacts (the history read)",
        "busy": "busy (the owner's held events + freeBusy)",
        "planner": "dry_run_plan without busy (cadence, owner context, slots)",
        "round": "one planning round, all of the above",
        "first_load": "first policy load of an owner (PolicyBook.load)",
    }
    print(
        f"CPU ms of one planning round: {args.owners} owners x {args.rounds} warm rounds x "
        f"{args.turns} processes per side; before = {args.baseline}"
        f"{' (steady-state rounds)' if args.steady else ''}; {os.cpu_count()} cores, "
        f"Python {sys.version.split()[0]}, {datetime.now(UTC):%Y-%m-%d}"
    )
    width = max(len(n) for n in names.values())
    print(f"| {'step':{width}} | before ms | now ms | before/now |")
    print(f"|{'-' * (width + 2)}|----------:|-------:|-----------:|")
    for key, name in names.items():
        old, new = summary["before"][key], summary["now"][key]
        ratio = f"{old / new:.2f}x" if new > 0 else "-"
        print(f"| {name:{width}} | {old:9.2f} | {new:6.2f} | {ratio:>10} |")
    print(f"same plans before and now: {'yes' if summary['same_plans'] else 'NO'}")


def _print_profile(result: dict[str, Any]) -> None:
    print(
        f"cProfile of {result['rounds']} warm rounds (the working tree); ms per round "
        f"(cProfile inflates call-heavy code); round median {result['ms']['round']:.1f} ms"
    )
    print(f"{'own ms':>7} {'cum ms':>7} {'calls':>6}  function")
    for what, own, cum, calls in result["profile"]:
        print(f"{own:7.2f} {cum:7.2f} {calls:6d}  {what}")


if __name__ == "__main__":
    raise SystemExit(main())
