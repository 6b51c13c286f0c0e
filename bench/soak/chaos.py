"""What goes wrong during a soak, on a seeded schedule: ``kill -9`` of a worker or the tick
(restarted a moment later) and short cuts of the database or the broker (a loopback proxy
closes every connection and refuses new ones, then listens again on the same port).

:class:`Supervisor` keeps one process per role running, as systemd or Kubernetes would: a
process that exits by itself (say it could not reach the database at start-up) is restarted too
and counted apart from the kills.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

from tests.integration.reliability_support import Processes, ServiceProcess, TcpProxy

__all__ = ["Chaos", "ChaosLog", "ChaosSettings", "Role", "Supervisor"]

#: A process that died by itself is restarted after this long (a supervisor's back-off).
_RESTART_AFTER_EXIT_S = 1.0
#: A role that exits by itself this many times in a row, each time within ``_QUICK_S`` of its
#: start, is broken (bad settings, a schema behind the code), not unlucky: the soak stops.
_MAX_QUICK_EXITS = 8
_QUICK_S = 10.0


@dataclass(frozen=True)
class Role:
    """One long-running process: ``python -m scheduler ARGS`` with its own environment."""

    name: str
    args: tuple[str, ...]
    env: dict[str, str]


@dataclass
class ChaosLog:
    kills: Counter[str] = field(default_factory=Counter)
    exits: Counter[str] = field(default_factory=Counter)
    cuts: Counter[str] = field(default_factory=Counter)
    cut_s: float = 0.0
    #: (wall-clock time, what happened), to read next to the audit trails.
    timeline: list[tuple[datetime, str]] = field(default_factory=list)

    def note(self, what: str) -> None:
        self.timeline.append((datetime.now(UTC), what))

    def describe(self) -> str:
        kills = ", ".join(f"{k} {n}" for k, n in sorted(self.kills.items())) or "-"
        cuts = ", ".join(f"{k} {n}" for k, n in sorted(self.cuts.items())) or "-"
        exits = ", ".join(f"{k} {n}" for k, n in sorted(self.exits.items())) or "none"
        return (
            f"kills: {sum(self.kills.values())} ({kills}); cuts: {sum(self.cuts.values())} "
            f"({cuts}; {self.cut_s:.0f} s cut in all); exits on their own: {exits}"
        )


class Supervisor:
    """Keeps every role running; :meth:`kill` takes one down until a given time."""

    def __init__(self, processes: Processes, roles: list[Role], log: ChaosLog) -> None:
        self.processes = processes
        self.roles = {r.name: r for r in roles}
        self.log = log
        self.current: dict[str, ServiceProcess] = {}
        self._down_until: dict[str, float] = {}
        self._paused: set[str] = set()
        self._started_at: dict[str, float] = {}
        self._quick_exits: Counter[str] = Counter()

    def start_all(self) -> None:
        for name in self.roles:
            self._start(name)

    def kill(self, name: str, *, down_for_s: float, now: float) -> None:
        proc = self.current.get(name)
        if proc is not None and proc.alive:
            proc.kill9()
            self.log.kills[name] += 1
            self.log.note(f"kill -9 {name} (pid {proc.proc.pid}), down {down_for_s:.1f} s")
        self._down_until[name] = now + down_for_s

    def pause(self, name: str) -> None:
        """Stop a role gracefully (SIGTERM) and keep it down until :meth:`resume`."""
        self._paused.add(name)
        self._down_until.pop(name, None)
        proc = self.current.get(name)
        if proc is not None:
            proc.stop()
        self.log.note(f"{name} stopped")

    def resume(self, name: str) -> None:
        self._paused.discard(name)
        self._start(name)
        self.log.note(f"{name} started again")

    def step(self, now: float) -> None:
        for name in self.roles:
            if name in self._paused:
                continue
            due = self._down_until.get(name)
            if due is not None:
                if now >= due:
                    del self._down_until[name]
                    self._start(name)
                continue
            proc = self.current.get(name)
            if proc is not None and not proc.alive:
                proc.stop()  # reaps it and closes its log
                self.log.exits[name] += 1
                self.log.note(f"{name} exited by itself (code {proc.proc.returncode})")
                self._down_until[name] = now + _RESTART_AFTER_EXIT_S
                if now - self._started_at.get(name, now) < _QUICK_S:
                    self._quick_exits[name] += 1
                    if self._quick_exits[name] >= _MAX_QUICK_EXITS:
                        raise RuntimeError(
                            f"{name} exited {_MAX_QUICK_EXITS} times in a row right after "
                            f"starting; its log ({proc.log_path}) ends:\n{proc.log_tail(15)}"
                        )
                else:
                    self._quick_exits[name] = 0

    def up(self, name: str) -> bool:
        proc = self.current.get(name)
        return name not in self._down_until and proc is not None and proc.alive

    def restart_downed(self) -> None:
        """Bring back at once every role that is down (the end of the chaos)."""
        for name in list(self._down_until):
            del self._down_until[name]
            self._start(name)

    def _start(self, name: str) -> None:
        role = self.roles[name]
        self.current[name] = self.processes.start(*role.args, env=role.env)
        self._started_at[name] = time.monotonic()


@dataclass(frozen=True)
class ChaosSettings:
    """Seconds, drawn uniformly from each (low, high)."""

    kill_every_s: tuple[float, float] = (8.0, 30.0)
    down_for_s: tuple[float, float] = (0.5, 3.0)
    cut_every_s: tuple[float, float] = (20.0, 50.0)
    cut_for_s: tuple[float, float] = (1.0, 6.0)


class Chaos:
    """Call :meth:`step` often (every ~0.2 s); :meth:`calm` ends every outage at once."""

    def __init__(
        self,
        supervisor: Supervisor,
        cuttable: dict[str, TcpProxy],
        settings: ChaosSettings,
        rng: random.Random,
        *,
        now: float | None = None,
    ) -> None:
        self.supervisor = supervisor
        self.cuttable = cuttable
        self.settings = settings
        self.rng = rng
        self.log = supervisor.log
        start = time.monotonic() if now is None else now
        self._next_kill = start + rng.uniform(*settings.kill_every_s)
        self._next_cut = start + rng.uniform(*settings.cut_every_s)
        self._cut: tuple[str, float, float] | None = None  # (target, since, until)

    def step(self, now: float) -> None:
        self.supervisor.step(now)
        if now >= self._next_kill:
            name = self.rng.choice(sorted(self.supervisor.roles))
            if self.supervisor.up(name):
                down_for_s = self.rng.uniform(*self.settings.down_for_s)
                self.supervisor.kill(name, down_for_s=down_for_s, now=now)
            self._next_kill = now + self.rng.uniform(*self.settings.kill_every_s)
        if self._cut is not None and now >= self._cut[2]:
            self._restore(now)
        if self._cut is None and now >= self._next_cut and self.cuttable:
            target = self.rng.choice(sorted(self.cuttable))
            length = self.rng.uniform(*self.settings.cut_for_s)
            self.cuttable[target].stop()
            self.log.cuts[target] += 1
            self.log.note(f"cut {target} for {length:.1f} s")
            self._cut = (target, now, now + length)
            self._next_cut = now + length + self.rng.uniform(*self.settings.cut_every_s)

    def calm(self) -> None:
        if self._cut is not None:
            self._restore(time.monotonic())
        self.supervisor.restart_downed()
        self.log.note("chaos over")

    def _restore(self, now: float) -> None:
        assert self._cut is not None
        target, since, _ = self._cut
        try:
            self.cuttable[target].start()
        except OSError as exc:  # the port is not free yet: try again on the next step
            self.log.note(f"restoring {target} failed ({exc}); retrying")
            return
        self.log.cut_s += now - since
        self.log.note(f"{target} back")
        self._cut = None
