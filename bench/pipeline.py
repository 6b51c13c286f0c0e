"""``python -m bench.pipeline`` (``make bench-pipeline``): what one user-plan costs, end to end.

Builds N users with 20 stakeholders each (some shared: :func:`bench.soak.world.build_world`),
calendars of ~40 events a week with 26 weeks of history on the Google emulator in its own
process (:mod:`bench.pipeline_emulator`, which generates them on demand), then runs the real
``goodwill tick`` and ``goodwill worker`` processes on PostgreSQL + Redis (``--store postgres``,
the default) or one ``goodwill serve`` on SQLite + the embedded broker (``--store sqlite``, for
a small N), each through :mod:`bench.pipeline_probe` (the real CLI with counters on). Every user
is due at once: the processes start on an empty policy directory, the counters are read, then
all policy files appear. The run ends when every user has been planned once and no meeting is
waiting to be booked (or at ``--timeout``); the counters are read again.

Figures per size (``--json`` prints them as ``{"sizes": [{...}]}``); "per plan" divides by the
users planned, "per booking" by the meetings booked:

- ``plans_per_hour``: users planned x 3600 / wall seconds from the policy files appearing to
  the end (bookings done);
- ``cpu_ms_per_plan``: goodwill CPU (utime + stime of every process in each goodwill process
  group, from /proc) per plan; ``cpu_ms_workers`` and ``cpu_ms_tick`` split it (on SQLite, one
  process: the tick's share is the thread CPU of its rounds);
- ``pg_cpu_ms_per_plan``: CPU of the PostgreSQL backends serving goodwill's connections
  (``pg_stat_activity`` by application name, /proc/<pid>/stat sampled every 0.5 s, so a backend
  that exits keeps its last sample), autovacuum's work included: when the server runs with
  ``autovacuum = off`` (as here), the bench applies autovacuum's rule to its database itself
  (:mod:`bench.pg_maintenance`; ``pg_maintenance`` says which and how often). Without it,
  plans cached on the empty tables scan them whole for the rest of the run;
- ``sql_per_plan``: database round trips inside ``plan_user`` (and ``plan_users``) per planning
  round (a ``plan_users`` message is one round per user),
  ``sql_per_booking`` inside ``book_meeting`` and ``book_meetings`` per meeting booked,
  ``sql_all_per_plan`` every round trip of every goodwill process (tick included) per plan
  (:mod:`bench.pipeline_probe` says what counts as one);
- ``messages_per_plan``: messages enqueued (tick and workers, broker retries included) per plan;
- ``api_calls_per_plan``: Calendar API calls at the emulator per plan (``api`` breaks them down;
  token grants are counted apart), ``creates_per_booking``: ``events.insert`` per booking;
- ``rss_mib``: the largest worker's VmRSS at the end (``rss_mib_tick``: the tick's).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import sqlite3
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.pg_maintenance import Autovacuum
from bench.pipeline_emulator import write_spec
from bench.soak.emulator import RemoteEmulator
from bench.soak.infra import PG_PORT, REDIS_PORT, Postgres, RedisBroker
from bench.soak.world import World, build_world
from scheduler.settings import Settings
from tests.integration.reliability_support import (
    Deployment,
    ServiceProcess,
    free_port,
    service_account_file,
)

__all__ = ["SizeResult", "main", "run_size"]

_ROOT = Path(__file__).resolve().parents[1]
_TICKS = os.sysconf("SC_CLK_TCK")
_PG_ADMIN = f"host=127.0.0.1 port={PG_PORT} user=postgres dbname=postgres connect_timeout=5"
#: Application names of goodwill's connections (the sampler's own connection is not one).
_APP = "gwbench"
#: A Redis database of the bench's own (tests use 12 and 15, the soak 11); flushed around a run.
REDIS_DB = 9
Say = Callable[[str], None]
KEYS = (
    "users",
    "plans_per_hour",
    "cpu_ms_per_plan",
    "pg_cpu_ms_per_plan",
    "sql_per_plan",
    "sql_per_booking",
    "messages_per_plan",
    "rss_mib",
)


@dataclass(frozen=True)
class Config:
    out_dir: Path
    store: str = "postgres"
    stakeholders: int = 20
    hubs: int = 4
    workers: int = 2
    tick_interval_s: float = 2.0
    seed: int = 20261201
    timeout_s: float | None = None
    #: Past meetings with a stakeholder are at least this old (all cadences are <= 6 weeks).
    fresh_weeks: int = 8
    #: The Redis database (flushed before and after): two runs at once need two.
    redis_db: int = REDIS_DB
    #: Users per planning message (``GOODWILL_TICK_PLANS_PER_MESSAGE``; 1: ``plan_user``).
    plans_per_message: int = 1


@dataclass
class SizeResult:
    figures: dict[str, Any]
    notes: list[str] = field(default_factory=list)


# -- /proc ---------------------------------------------------------------------------------------


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def _cpu_ticks(fields: list[str]) -> int:
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)


def group_cpu_s(pgid: int) -> float:
    """CPU seconds of every live process in process group ``pgid``."""
    total = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat(int(entry))
            if fields is not None and int(fields[2]) == pgid:
                total += _cpu_ticks(fields)
    return total / _TICKS


def rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class PgBackends:
    """Samples the CPU of the backends serving ``database`` for goodwill, every 0.5 s."""

    def __init__(self, database: str) -> None:
        self.database = database
        self.last: dict[int, int] = {}
        self.base: dict[int, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        import psycopg

        dsn = f"host=127.0.0.1 port={PG_PORT} user=postgres dbname={self.database}"
        with psycopg.connect(dsn, autocommit=True, application_name="gwprobe") as conn:
            while not self._stop.is_set():
                self.sample(conn)
                self._stop.wait(0.5)

    def sample(self, conn: Any) -> None:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND application_name LIKE %s",
            (self.database, f"{_APP}-%"),
        ).fetchall()
        with self._lock:
            for (pid,) in rows:
                fields = _stat(int(pid))
                if fields is not None:
                    self.last[int(pid)] = _cpu_ticks(fields)

    def mark(self) -> None:
        """The window starts: what the backends have used so far is not counted."""
        with self._lock:
            self.base = dict(self.last)

    def used_s(self) -> float:
        with self._lock:
            return sum(v - self.base.get(pid, 0) for pid, v in self.last.items()) / _TICKS

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


# -- the store under test -----------------------------------------------------------------------


class StoreUnderTest:
    """PostgreSQL (a fresh database) + Redis (db 9, or ``--redis-db``), or SQLite + the
    embedded broker."""

    def __init__(self, kind: str, run_dir: Path, redis_db: int = REDIS_DB) -> None:
        self.kind = kind
        self.redis_db = redis_db
        self.pg: Postgres | None = None
        self.redis: RedisBroker | None = None
        self.backends: PgBackends | None = None
        self.maintenance: Autovacuum | None = None
        self.sqlite_path = run_dir / "data" / "goodwill.db"

    def prepare(self) -> None:
        from scheduler.store import migrate

        if self.kind == "postgres":
            self.pg = Postgres(name=f"goodwill_bench_{secrets.token_hex(4)}")
            self.pg.create()
            migrate(self.pg.direct_url)
            self.redis = RedisBroker(db=self.redis_db)
            self.redis.prepare()
            self.backends = PgBackends(self.pg.name)
            self.backends.start()
            # Autovacuum's work, as on a deployed server (bench.pg_maintenance), counted as
            # goodwill's PostgreSQL CPU by its application name.
            self.maintenance = Autovacuum(
                f"host=127.0.0.1 port={PG_PORT} user=postgres dbname={self.pg.name}",
                application_name=f"{_APP}-maintenance",
            )
            self.maintenance.start()
        else:
            migrate(self.url("migrate"))

    def url(self, role: str) -> str:
        if self.pg is None:
            return f"sqlite:///{self.sqlite_path}"
        return f"{self.pg.direct_url}&application_name={_APP}-{role}"

    @property
    def broker_url(self) -> str:
        return f"redis://127.0.0.1:{REDIS_PORT}/{self.redis.db}" if self.redis else "embedded"

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        if self.pg is not None:
            import psycopg

            dsn = f"host=127.0.0.1 port={PG_PORT} user=postgres dbname={self.pg.name}"
            with psycopg.connect(dsn, application_name="gwprobe") as conn:
                return list(conn.execute(sql).fetchall())
        with sqlite3.connect(f"file:{self.sqlite_path}?mode=ro", uri=True, timeout=5) as conn:
            return list(conn.execute(sql).fetchall())

    def clean(self) -> None:
        if self.maintenance is not None:
            self.maintenance.stop()
        if self.backends is not None:
            self.backends.stop()
        if self.redis is not None:
            self.redis.clean()
        if self.pg is not None:
            self.pg.drop()


# -- one size ----------------------------------------------------------------------------------


@dataclass
class _Role:
    name: str
    args: tuple[str, ...]
    ops_port: int
    probe: Path
    proc: ServiceProcess | None = None


@dataclass
class _Snapshot:
    at: float
    cpu: dict[str, float]
    counts: dict[str, dict[str, int]]
    api: dict[str, int]
    pg_s: float


def _read_probe(path: Path) -> dict[str, int]:
    try:
        return {k: int(v) for k, v in json.loads(path.read_text())["counts"].items()}
    except (OSError, ValueError, KeyError):
        return {}


def _snapshot(roles: list[_Role], emulator: RemoteEmulator, sut: StoreUnderTest) -> _Snapshot:
    cpu = {r.name: group_cpu_s(r.proc.proc.pid) for r in roles if r.proc is not None}
    time.sleep(1.1)  # every probe has dumped since
    counts = {r.name: _read_probe(r.probe) for r in roles}
    pg_s = sut.backends.used_s() if sut.backends is not None else 0.0
    return _Snapshot(time.monotonic(), cpu, counts, emulator.ask("counts"), pg_s)


def _live(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/livez", timeout=2) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False


def _wait(what: str, check: Callable[[], bool], timeout_s: float, roles: list[_Role]) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        dead = [r.name for r in roles if r.proc is not None and not r.proc.alive]
        if dead or time.monotonic() > deadline:
            tails = "\n".join(f"--- {r.name}\n{r.proc.log_tail()}" for r in roles if r.proc)
            raise RuntimeError(f"waiting for {what}: {dead or 'timed out'}\n{tails}")
        time.sleep(0.5)


_PROGRESS_SQL = (
    "SELECT (SELECT count(*) FROM users WHERE last_planned_at IS NOT NULL),"
    " (SELECT count(*) FROM meetings WHERE state IN ('approved', 'booking')),"
    " (SELECT count(*) FROM meetings WHERE state = 'booked')"
)


def _progress(sut: StoreUnderTest) -> tuple[int, int, int]:
    """(users planned, meetings waiting to be booked, meetings booked): one query."""
    ((planned, waiting, booked),) = sut.query(_PROGRESS_SQL)
    return int(planned), int(waiting), int(booked)


@dataclass
class _Reporter:
    """A progress line every ``every_s``: counts, rates overall and since the last line, ETA."""

    label: str
    users: int
    t0: float
    emulator_pid: int
    say: Say
    every_s: float = 30.0
    last_at: float = 0.0
    last_planned: int = 0
    last_booked: int = 0

    def __post_init__(self) -> None:
        self.last_at = self.t0

    def __call__(self, now: float, planned: int, waiting: int, booked: int) -> None:
        if now - self.last_at < self.every_s:
            return
        since, span = now - self.t0, now - self.last_at
        rate = planned * 3600 / since if since else 0.0
        recent = (planned - self.last_planned) * 3600 / span
        left = self.users - planned
        eta = f"~{left * 3600 / recent:,.0f} s to plan" if recent and left else ""
        if left == 0:
            eta = "all planned"
        self.say(
            f"[{self.label}] {since:5.0f} s: planned {planned:,}/{self.users:,} "
            f"({rate:,.0f}/h, {recent:,.0f}/h in the last {span:.0f} s; {eta}), "
            f"booked {booked:,} (+{booked - self.last_booked:,}), waiting {waiting:,}; "
            f"emulator {rss_mib(self.emulator_pid):,.0f} MiB"
        )
        self.last_at, self.last_planned, self.last_booked = now, planned, booked


@contextmanager
def _processes(
    roles: list[_Role], env: dict[str, str], logs: Path, sut: StoreUnderTest
) -> Iterator[None]:
    try:
        for r in roles:
            role_env = {
                **env,
                "GOODWILL_DATABASE_URL": sut.url(r.name),
                "GOODWILL_OPS__PORT": str(r.ops_port),
                "GOODWILL_BENCH_PROBE_FILE": str(r.probe),
            }
            r.proc = ServiceProcess(
                r.args, role_env, logs / f"{r.name}.log", module="bench.pipeline_probe"
            )
        yield
    finally:
        for r in roles:
            if r.proc is not None and r.proc.alive:
                r.proc.stop(timeout_s=20.0)


def _deployment(cfg: Config, run_dir: Path, emulator: RemoteEmulator, sut: StoreUnderTest) -> Any:
    defaults = Settings.model_fields
    return Deployment(
        data_dir=run_dir / "data",
        database_url=sut.url("x"),
        broker_url=sut.broker_url,
        policy_dir=run_dir / "policies",
        emulator=emulator,
        service_account=service_account_file(run_dir / "service-account.json"),
        booking_lease_s=float(defaults["booking_lease_s"].default),
        send_lease_s=float(defaults["send_lease_s"].default),
        tick_interval_s=cfg.tick_interval_s,
        google_timeout_s=30.0,
    )


def _roles(cfg: Config, run_dir: Path) -> list[_Role]:
    def role(name: str, *args: str) -> _Role:
        return _Role(name, args, free_port(), run_dir / f"probe-{name}.json")

    if cfg.store == "sqlite":
        return [role("serve", "serve")]
    return [role("tick", "tick")] + [role(f"worker-{i + 1}", "worker") for i in range(cfg.workers)]


def _publish(world: World, run_dir: Path) -> float:
    """Every policy file appears at once (written aside, then renamed into the directory).

    Returns the seconds the renames took (the files appear during that time)."""
    staging = run_dir / "staging"
    world.write_policies(staging)
    target = run_dir / "policies"
    began = time.monotonic()
    for path in sorted(staging.iterdir()):
        path.replace(target / path.name)
    return time.monotonic() - began


def run_size(cfg: Config, users: int, *, say: Say) -> SizeResult:
    run_dir = cfg.out_dir / f"{cfg.store}-{users}"
    logs = run_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    (run_dir / "policies").mkdir(exist_ok=True)
    start = datetime.now(UTC)
    began = time.monotonic()
    world = build_world(
        users=users,
        stakeholders=cfg.stakeholders,
        hubs=cfg.hubs,
        seed=cfg.seed,
        start=start,
        seed_calendars=False,  # the emulator generates its own (bench.pipeline_emulator)
    )
    built = time.monotonic()
    spec = run_dir / "calendars.json"
    write_spec(world, spec, start=start, seed=cfg.seed, fresh_weeks=cfg.fresh_weeks)
    written = time.monotonic()
    say(
        f"[{cfg.store} {users}] world of {len(world.people()):,} people built in "
        f"{built - began:.1f} s; spec {spec.stat().st_size / 2**20:.1f} MiB written in "
        f"{written - built:.1f} s"
    )
    emulator = RemoteEmulator(spec, logs / "emulator.log", module="bench.pipeline_emulator")
    sut = StoreUnderTest(cfg.store, run_dir, cfg.redis_db)
    hello = emulator.hello
    say(
        f"[{cfg.store} {users}] emulator up in {time.monotonic() - written:.1f} s "
        f"({hello.get('startup_s')} s in the process): {hello.get('people', 0):,} calendars, "
        f"{hello.get('events', 0):,} seeded events generated on demand, "
        f"{rss_mib(emulator.proc.pid):.0f} MiB"
    )
    try:
        sut.prepare()
        env = _deployment(cfg, run_dir, emulator, sut).env()
        env["GOODWILL_TICK_PLANS_PER_MESSAGE"] = str(cfg.plans_per_message)
        roles = _roles(cfg, run_dir)
        with _processes(roles, env, logs, sut):
            return _measure(cfg, users, world, roles, emulator, sut, run_dir, say)
    finally:
        sut.clean()
        emulator.close()


def _measure(
    cfg: Config,
    users: int,
    world: World,
    roles: list[_Role],
    emulator: RemoteEmulator,
    sut: StoreUnderTest,
    run_dir: Path,
    say: Say,
) -> SizeResult:
    _wait("the processes to be live", lambda: all(_live(r.ops_port) for r in roles), 120, roles)
    _wait("a first tick round", lambda: bool(sut.query("SELECT 1 FROM heartbeats")), 60, roles)
    time.sleep(1.0)
    if sut.backends is not None:
        sut.backends.mark()
    before = _snapshot(roles, emulator, sut)
    made = time.monotonic()
    renamed_s = _publish(world, run_dir)
    t0 = time.monotonic()
    say(
        f"[{cfg.store} {users}] {users:,} policy files written in {t0 - made - renamed_s:.1f} s "
        f"and moved into place in {renamed_s:.1f} s"
    )
    timeout = cfg.timeout_s or 300.0 + 3.0 * users
    planned_at: float | None = None
    report = _Reporter(f"{cfg.store} {users}", users, t0, emulator.proc.pid, say)
    result_notes: list[str] = []
    while True:
        time.sleep(1.0)
        planned, waiting, booked = _progress(sut)
        now = time.monotonic()
        if planned >= users and planned_at is None:
            planned_at = now
        if planned >= users and waiting == 0:
            break
        if now - t0 > timeout:
            result_notes.append(
                f"timed out after {timeout:.0f} s: {planned}/{users} planned, {waiting} waiting"
            )
            break
        report(now, planned, waiting, booked)
        dead = [r.name for r in roles if r.proc is not None and not r.proc.alive]
        if dead:
            raise RuntimeError(f"process(es) exited: {dead}")
    wall = time.monotonic() - t0
    rss = {r.name: rss_mib(r.proc.proc.pid) for r in roles if r.proc is not None}
    after = _snapshot(roles, emulator, sut)
    planned, _, booked = _progress(sut)
    figures = _figures(cfg, users, planned, booked, wall, planned_at, t0, before, after, rss)
    figures["emulator_rss_mib"] = round(rss_mib(emulator.proc.pid), 1)
    if sut.maintenance is not None:
        figures["pg_maintenance"] = sut.maintenance.describe()
    say(f"[{cfg.store} {users}] done in {wall:.0f} s: {planned} planned, {booked} booked")
    return SizeResult(figures, result_notes)


def _delta(before: _Snapshot, after: _Snapshot, prefix: str, where: str | None = None) -> int:
    total = 0
    for name, counts in after.counts.items():
        old = before.counts.get(name, {})
        for key, value in counts.items():
            what, _, at = key.partition(":")
            if what == prefix and (where is None or at == where):
                total += value - old.get(key, 0)
    return total


def _figures(
    cfg: Config,
    users: int,
    planned: int,
    booked: int,
    wall: float,
    planned_at: float | None,
    t0: float,
    before: _Snapshot,
    after: _Snapshot,
    rss: dict[str, float],
) -> dict[str, Any]:
    cpu = {name: after.cpu[name] - before.cpu.get(name, 0.0) for name in after.cpu}
    if cfg.store == "sqlite":
        tick_s = _delta(before, after, "cpu_us", "tick") / 1e6
        workers_s = sum(cpu.values()) - tick_s
    else:
        tick_s = cpu.get("tick", 0.0)
        workers_s = sum(v for k, v in cpu.items() if k != "tick")
    plans = max(planned, 1)
    # Planning rounds: one per plan_user message, one per user of a plan_users message.
    rounds = max(
        _delta(before, after, "calls", "plan_user") + _delta(before, after, "rounds", "plan_users"),
        1,
    )
    api = {k: v - before.api.get(k, 0) for k, v in after.api.items()}
    calendar_calls = sum(v for k, v in api.items() if k not in ("token", "other"))
    worker_rss = [v for k, v in rss.items() if k != "tick"]

    def per(n: float, d: float) -> float | None:
        return round(n / d, 2) if d else None

    return {
        "users": users,
        "store": cfg.store,
        "plans_per_hour": round(planned * 3600 / wall) if wall else None,
        "cpu_ms_per_plan": round(1000 * (workers_s + tick_s) / plans, 1),
        "cpu_ms_workers": round(1000 * workers_s / plans, 1),
        "cpu_ms_tick": round(1000 * tick_s / plans, 1),
        "pg_cpu_ms_per_plan": round(1000 * (after.pg_s - before.pg_s) / plans, 1)
        if cfg.store == "postgres"
        else None,
        "sql_per_plan": per(
            _delta(before, after, "sql", "plan_user") + _delta(before, after, "sql", "plan_users"),
            rounds,
        ),
        "sql_per_booking": per(
            _delta(before, after, "sql", "book_meeting")
            + _delta(before, after, "sql", "book_meetings"),
            booked,
        ),
        "sql_all_per_plan": per(_delta(before, after, "sql"), plans),
        "sql_tick_per_plan": per(_delta(before, after, "sql", "tick"), plans),
        "transactions_per_plan": per(
            _delta(before, after, "tx", "plan_user") + _delta(before, after, "tx", "plan_users"),
            rounds,
        ),
        "messages_per_plan": per(_delta(before, after, "msg"), plans),
        "api_calls_per_plan": per(calendar_calls, plans),
        "api": api,
        "creates_per_booking": per(api.get("insert", 0), booked),
        "rss_mib": round(max(worker_rss), 1) if worker_rss else None,
        "rss_mib_tick": round(rss["tick"], 1) if "tick" in rss else None,
        "planned": planned,
        "plan_rounds": rounds,
        "bookings": booked,
        "wall_s": round(wall, 1),
        "planning_wall_s": round(planned_at - t0, 1) if planned_at is not None else None,
        "workers": cfg.workers if cfg.store == "postgres" else 1,
        "per_call": _per_call(before, after, users),
    }


def _per_call(before: _Snapshot, after: _Snapshot, users: int) -> dict[str, dict[str, float]]:
    """Each actor's (and the tick round's) calls per user and thread CPU ms per call, from the
    probes: what stays comparable between sizes whose runs last unequally long (a longer run
    does more periodic work per plan: re-plans, sync passes)."""
    names = sorted({k.partition(":")[2] for c in after.counts.values() for k in c
                    if k.startswith("calls:")})  # fmt: skip
    out: dict[str, dict[str, float]] = {}
    for name in names:
        calls = _delta(before, after, "calls", name)
        if calls:
            cpu_ms = _delta(before, after, "cpu_us", name) / 1000
            out[name] = {
                "calls": calls,
                "per_user": round(calls / users, 2),
                "cpu_ms": round(cpu_ms / calls, 1),
            }
    return out


# -- the table ---------------------------------------------------------------------------------

_COLUMNS = (
    ("N users", "users", "{:,}"),
    ("user-plans/h", "plans_per_hour", "{:,}"),
    ("CPU ms/plan (workers + tick)", "cpu_ms_per_plan", "{:,.0f}"),
    ("PostgreSQL CPU ms/plan", "pg_cpu_ms_per_plan", "{:,.1f}"),
    ("SQL/plan", "sql_per_plan", "{:,.1f}"),
    ("SQL/booking", "sql_per_booking", "{:,.1f}"),
    ("SQL all/plan", "sql_all_per_plan", "{:,.1f}"),
    ("msgs/plan", "messages_per_plan", "{:,.2f}"),
    ("API calls/plan", "api_calls_per_plan", "{:,.1f}"),
    ("worker RSS MiB", "rss_mib", "{:,.0f}"),
)


def _cell(fmt: str, value: Any) -> str:
    return "-" if value is None else fmt.format(value)


def render_table(sizes: list[dict[str, Any]]) -> str:
    lines = [
        "| " + " | ".join(c[0] for c in _COLUMNS) + " |",
        "|" + "---|" * len(_COLUMNS),
    ]
    for s in sizes:
        cells = [_cell(fmt, s.get(key)) for _, key, fmt in _COLUMNS]
        if s.get("cpu_ms_per_plan") is not None:
            cells[2] = (
                f"{s['cpu_ms_per_plan']:,.0f} ({s['cpu_ms_workers']:,.0f} + "
                f"{s['cpu_ms_tick']:,.0f})"
            )
        if s.get("store") == "sqlite":
            cells[0] += " (SQLite)"
        lines.append("| " + " | ".join(cells) + " |")
    if len(sizes) >= 2:
        a, b = sizes[-2], sizes[-1]
        ratios = [f"×{b['users'] / a['users']:g}"]
        for _, key, _fmt in _COLUMNS[1:]:
            x, y = a.get(key), b.get(key)
            ratios.append(f"{y / x:.2f}×" if x and y is not None else "-")
        lines.append("| " + " | ".join(ratios) + " |")
    return "\n".join(lines)


def render_calls(sizes: list[dict[str, Any]]) -> str:
    """Thread CPU ms per call (calls per user) of each actor and the tick round, per size."""
    names = sorted({n for s in sizes for n in s.get("per_call", {})})
    head = "| call | " + " | ".join(f"N = {s['users']:,}" for s in sizes)
    lines = [head + (" | ratio |" if len(sizes) >= 2 else " |"), "|---|" + "---:|" * len(sizes)]
    if len(sizes) >= 2:
        lines[1] += "---:|"
    for name in names:
        cells = []
        for s in sizes:
            c = s.get("per_call", {}).get(name)
            cells.append("-" if c is None else f"{c['cpu_ms']:,.1f} ms ({c['per_user']:g}/user)")
        line = f"| {name} | " + " | ".join(cells) + " |"
        if len(sizes) >= 2:
            a, b = (sizes[i].get("per_call", {}).get(name) for i in (-2, -1))
            line += f" {b['cpu_ms'] / a['cpu_ms']:.2f}× |" if a and b and a["cpu_ms"] else " - |"
        lines.append(line)
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.pipeline", description=__doc__.split("\n")[0])
    p.add_argument("--users", default="1000", help="sizes, comma-separated (default 1000)")
    p.add_argument(
        "--store",
        choices=["postgres", "sqlite"],
        default="postgres",
        help="postgres: PostgreSQL + Redis, tick and worker processes (default); "
        "sqlite: SQLite + the embedded broker in one serve process (small N)",
    )
    p.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    p.add_argument("--stakeholders", type=int, default=20, help="per user (default 20)")
    p.add_argument("--hubs", type=int, default=4, help="stakeholders every user lists (4)")
    p.add_argument("--tick-interval", type=float, default=2.0, help="seconds (default 2)")
    p.add_argument("--timeout", type=float, help="per size, seconds (default 300 + 3 s/user)")
    p.add_argument("--seed", type=int, default=20261201)
    p.add_argument(
        "--redis-db",
        type=int,
        default=REDIS_DB,
        help=f"Redis database, flushed (default {REDIS_DB})",
    )
    p.add_argument(
        "--plans-per-message",
        type=int,
        default=1,
        help="users per planning message (GOODWILL_TICK_PLANS_PER_MESSAGE, default 1)",
    )
    p.add_argument("--json", action="store_true", help='print {"sizes": [...]} only')
    p.add_argument("--out", type=Path, help="logs (default .goodwill/bench-pipeline/<time>)")
    return p


def _maintenance_text(f: dict[str, Any]) -> str:
    done = f.get("pg_maintenance")
    return f"; PostgreSQL maintenance: {done}" if done else ""


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        sizes = [int(x) for x in args.users.split(",") if x.strip()]
    except ValueError:
        print(f"--users {args.users!r}: give sizes like 1000,10000", file=sys.stderr)
        return 2
    if not sizes or min(sizes) < 2:
        print("--users: every size must be at least 2", file=sys.stderr)
        return 2
    stamp = datetime.now(UTC)
    out = args.out or _ROOT / ".goodwill" / "bench-pipeline" / stamp.strftime("%Y%m%dT%H%M%SZ")
    cfg = Config(
        out_dir=out,
        store=args.store,
        stakeholders=args.stakeholders,
        hubs=args.hubs,
        workers=args.workers,
        tick_interval_s=args.tick_interval,
        seed=args.seed,
        redis_db=args.redis_db,
        timeout_s=args.timeout,
        plans_per_message=args.plans_per_message,
    )

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    results = [run_size(cfg, n, say=say) for n in sizes]
    figures = [{**r.figures, "notes": r.notes} for r in results]
    notes = [f"N={r.figures['users']}: {n}" for r in results for n in r.notes]
    if args.json:
        print(json.dumps({"sizes": figures}, indent=2))
    else:
        machine = f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores"
        print(f"\n## bench.pipeline — {stamp:%Y-%m-%d %H:%M} UTC, {machine}, store {cfg.store}\n")
        print(render_table(figures))
        print()
        print(render_calls(figures))
        print()
        for f in figures:
            print(
                f"N={f['users']}: {f['planned']} planned in {f['plan_rounds']} rounds, "
                f"{f['bookings']} booked, {f['wall_s']} s (planning {f['planning_wall_s']} s); "
                f"API {f['api']}; creates/booking {f['creates_per_booking']}; "
                f"tick RSS {f['rss_mib_tick']} MiB; emulator RSS {f['emulator_rss_mib']} MiB"
                + _maintenance_text(f)
            )
        for n in notes:
            print(f"note: {n}")
    return 1 if notes else 0


if __name__ == "__main__":
    raise SystemExit(main())
