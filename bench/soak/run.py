"""One soak run: build the organisation, start goodwill on PostgreSQL and one broker, let the
chaos run for a while, turn it off, let the system settle, and count at the calendar.

Processes (all on loopback): the Google emulator (its own process, :mod:`bench.soak.emulator`),
``python -m scheduler worker`` × N and ``python -m scheduler tick``, each in its own process
group, reaching PostgreSQL and the broker through proxies :mod:`bench.soak.chaos` can cut.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.soak.chaos import Chaos, ChaosLog, ChaosSettings, Role, Supervisor
from bench.soak.counting import Tally, diagnose, read_goodwill_events, recovery_paths, tally
from bench.soak.emulator import FaultStats, RemoteEmulator
from bench.soak.infra import Postgres, make_broker
from bench.soak.world import World, build_world
from scheduler.core.states import MeetingState
from scheduler.store import Store, make_engine, migrate
from tests.integration.reliability_support import (
    Deployment,
    Processes,
    all_meetings,
    free_port,
    service_account_file,
)

__all__ = ["RunResult", "SoakConfig", "run_soak"]

_S = MeetingState
#: Where progress lines go.
Say = Callable[[str], None]


@dataclass(frozen=True)
class SoakConfig:
    out_dir: Path
    users: int = 45
    stakeholders: int = 10
    hubs: int = 6
    seconds: float = 600.0
    #: The settle gives up after this long, or later while retries are scheduled later...
    settle_s: float = 240.0
    #: ...but never after more than this.
    settle_cap_s: float = 900.0
    fault_rate: float = 0.15
    seed: int = 20260302
    workers: int = 2
    booking_lease_s: float = 3.0
    send_lease_s: float = 5.0
    tick_interval_s: float = 1.0
    #: The client's timeout; a "slow" fault answers after ``slow_s``, so the client gives up
    #: while the emulator still applies the call (an outcome the worker cannot know).
    google_timeout_s: float = 3.0
    slow_s: float = 4.0
    plan_every_s: float = 90.0
    plan_retry_s: float = 15.0
    #: Users join in this many waves (1: everyone at the start).
    waves: int = 8
    #: Goodwill coffees one stakeholder may have a week across all owners (default 2): raised
    #: so the hubs are contested by many owners, not only by the first two.
    stakeholder_weekly_cap: int = 10
    keep_database: bool = False
    chaos: ChaosSettings = field(default_factory=ChaosSettings)


@dataclass
class RunResult:
    broker: str
    world: World
    tally: Tally
    chaos: ChaosLog
    faults: FaultStats
    settle_s: float
    run_dir: Path
    database: str
    details: str = ""
    notes: list[str] = field(default_factory=list)
    #: How often each recovery path ran (from ``audit_log``).
    recovery: Counter[str] = field(default_factory=Counter)

    def parameters(self, cfg: SoakConfig) -> str:
        w = self.world
        states = ", ".join(f"{k} {n}" for k, n in sorted(self.tally.states().items()))
        endings = ", ".join(f"{k} ×{n}" for k, n in self.tally.endings().most_common(6))
        joined = (
            f"{len(w.in_wave(0))} at the start, the others in {w.waves - 1} waves over "
            f"{0.8 * cfg.seconds:.0f} s"
            if w.waves > 1
            else "all at the start"
        )
        lines = [
            f"run {self.broker}: {len(w.users)} users × {cfg.stakeholders} stakeholders "
            f"({len(w.hubs)} shared hubs, {len(w.mutual_pairs)} pairs who list each other; "
            f"{joined}), {cfg.workers} workers + tick on PostgreSQL + {self.broker}",
            f"  {cfg.seconds:.0f} s of chaos, then settled in {self.settle_s:.0f} s; booking "
            f"lease {cfg.booking_lease_s:g} s, send lease {cfg.send_lease_s:g} s, tick "
            f"{cfg.tick_interval_s:g} s, client timeout {cfg.google_timeout_s:g} s, "
            f"{cfg.stakeholder_weekly_cap} coffees/week per stakeholder",
            f"  {self.chaos.describe()}",
            f"  faults injected: {self.faults.describe()}",
            f"  meetings in the database: {states}",
            "  recovery paths (audit_log): "
            + (", ".join(f"{k} {n}" for k, n in self.recovery.most_common()) or "none"),
        ]
        if endings:
            lines.append(f"  ended unbooked: {endings}")
        if self.faults.schema_violations:
            lines.append(f"  SCHEMA VIOLATIONS: {self.faults.schema_violations[:3]}")
        lines += [f"  note: {n}" for n in self.notes]
        lines.append(f"  logs, timeline: {self.run_dir}")
        return "\n".join(lines)


def run_soak(cfg: SoakConfig, broker_name: str, *, say: Say) -> RunResult:
    run_dir = cfg.out_dir / broker_name
    logs = run_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    started_at = datetime.now(UTC)
    world = build_world(
        users=cfg.users,
        stakeholders=cfg.stakeholders,
        hubs=cfg.hubs,
        seed=cfg.seed,
        start=started_at,
        waves=cfg.waves,
    )
    world.write_policies(run_dir / "policies", wave=0)
    world.write_calendars(run_dir / "calendars.json")
    key_file = service_account_file(run_dir / "service-account.json")
    pg = Postgres()
    broker = make_broker(broker_name)
    rng = random.Random(f"{cfg.seed}-{broker_name}")
    emulator: RemoteEmulator | None = None
    processes: Processes | None = None
    engine = None
    keep = cfg.keep_database
    log = ChaosLog()
    prepared: list[str] = []
    try:
        emulator = RemoteEmulator(run_dir / "calendars.json", logs / "emulator.log")
        pg.create()
        prepared.append("database")
        migrate(pg.direct_url)
        broker.prepare()
        prepared.append("broker")
        deployment = Deployment(
            data_dir=run_dir / "data",
            database_url=pg.proxied_url,
            broker_url=broker.proxied_url,
            policy_dir=run_dir / "policies",
            emulator=emulator,
            service_account=key_file,
            booking_lease_s=cfg.booking_lease_s,
            send_lease_s=cfg.send_lease_s,
            tick_interval_s=cfg.tick_interval_s,
            google_timeout_s=cfg.google_timeout_s,
        )
        env = deployment.env()
        env.update(
            GOODWILL_PLAN_EVERY_S=str(cfg.plan_every_s),
            GOODWILL_PLAN_RETRY_S=str(cfg.plan_retry_s),
            GOODWILL_STAKEHOLDER_WEEKLY_CAP=str(cfg.stakeholder_weekly_cap),
        )
        roles = [
            Role(f"worker-{i + 1}", ("worker",), {**env, "GOODWILL_OPS__PORT": str(free_port())})
            for i in range(cfg.workers)
        ]
        roles.append(Role("tick", ("tick",), {**env, "GOODWILL_OPS__PORT": str(free_port())}))
        processes = Processes(env, logs)
        supervisor = Supervisor(processes, roles, log)
        engine = make_engine(pg.direct_url)
        store = Store(engine)

        supervisor.start_all()
        emulator.faults_on(cfg.fault_rate, seed=cfg.seed, slow_s=cfg.slow_s)
        log.note(f"faults on ({cfg.fault_rate:.0%})")
        chaos = Chaos(supervisor, {"database": pg.proxy, "broker": broker.proxy}, cfg.chaos, rng)
        _chaos_phase(cfg, chaos, store, say, broker_name, world, run_dir / "policies")
        faults = emulator.faults_off()
        log.note("faults off")
        chaos.calm()
        settle_s = _settle(cfg, supervisor, store, say, broker_name)
        processes.close()
        log.note("processes stopped")

        events = read_goodwill_events(
            emulator,
            key_file,
            world.owners,
            time_min=started_at - timedelta(days=1),
            time_max=started_at + timedelta(days=60),
        )
        meetings = all_meetings(store, world.owners)
        owner_of = {u.id: u.email for u in store.all_users()}
        t = tally(broker_name, events, meetings, owner_of)
        violations = emulator.stats().schema_violations
        result = RunResult(
            broker_name,
            world,
            t,
            log,
            FaultStats(faults.api_calls, faults.injected, violations),
            settle_s,
            run_dir,
            pg.name,
        )
        result.recovery = recovery_paths(store, meetings)
        if broker.note:
            result.notes.append(broker.note)
        if not t.ok:
            result.details = diagnose(t, store, owner_of, logs)
            keep = True
        if keep:
            result.notes.append(f"database kept: {pg.direct_url}")
        return result
    finally:
        _write_timeline(run_dir / "timeline.txt", log)
        if processes is not None:
            processes.close()
        if engine is not None:
            engine.dispose()
        if "broker" in prepared:
            broker.clean()
        if "database" in prepared:
            if keep:
                pg.proxy.stop()
            else:
                pg.drop()
        if emulator is not None:
            emulator.close()


def _counts(store: Store) -> dict[str, int]:
    return {s.value: len(store.meetings_by_state(s)) for s in (_S.APPROVED, _S.BOOKING, _S.BOOKED)}


def _chaos_phase(
    cfg: SoakConfig,
    chaos: Chaos,
    store: Store,
    say: Say,
    name: str,
    world: World,
    policy_dir: Path,
) -> None:
    """The chaos for ``cfg.seconds``; the later waves of users join over its first 80%."""
    started = time.monotonic()
    end = started + cfg.seconds
    next_report = started + 60.0
    joins = {
        wave: started + 0.8 * cfg.seconds * wave / (world.waves - 1)
        for wave in range(1, world.waves)
    }
    while (now := time.monotonic()) < end:
        for wave, at in list(joins.items()):
            if now >= at:
                del joins[wave]
                world.write_policies(policy_dir, wave=wave)
                chaos.log.note(f"wave {wave} joins: {len(world.in_wave(wave))} user(s)")
        chaos.step(now)
        if now >= next_report:
            next_report += 60.0
            c = _counts(store)
            say(
                f"[soak {name}] {now - started:4.0f} s: booked {c['booked']}, approved "
                f"{c['approved']}, booking {c['booking']}; {chaos.log.describe()}"
            )
        time.sleep(0.2)


def _settle(cfg: SoakConfig, supervisor: Supervisor, store: Store, say: Say, name: str) -> float:
    """Wait until no meeting is approved or being booked, bounded.

    Gives up after ``settle_s``, or later while retries are scheduled later than that (never
    beyond ``settle_cap_s``). Quiet means three polls in a row with nothing open; then
    the tick is stopped and, if a planning round still in the queue writes new meetings, started
    again so they are booked too.
    """
    started = time.monotonic()
    cap = started + cfg.settle_cap_s
    deadline = started + cfg.settle_s
    quiet = 0
    tick_stopped = False
    while True:
        now = time.monotonic()
        supervisor.step(now)
        open_ = store.meetings_by_state(_S.APPROVED) + store.meetings_by_state(_S.BOOKING)
        if open_:
            quiet = 0
            if tick_stopped:
                say(f"[soak {name}] settle: {len(open_)} new open meeting(s); tick back on")
                supervisor.resume("tick")
                tick_stopped = False
            retries = [m.next_attempt_at for m in open_ if m.next_attempt_at is not None]
            if retries:
                wait = (max(retries) - datetime.now(UTC)).total_seconds() + 20.0
                deadline = min(max(deadline, now + wait), cap)
        else:
            quiet += 1
            if quiet >= 3 and not tick_stopped:
                supervisor.pause("tick")
                tick_stopped = True
                quiet = 0
            elif quiet >= 3:
                break
        if now >= deadline:
            say(f"[soak {name}] settle: gave up with {len(open_)} open meeting(s)")
            break
        time.sleep(2.0)
    return time.monotonic() - started


def _write_timeline(path: Path, log: ChaosLog) -> None:
    path.write_text(
        "\n".join(f"{at.isoformat(timespec='milliseconds')} {what}" for at, what in log.timeline)
        + "\n",
        encoding="utf-8",
    )
