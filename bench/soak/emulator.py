"""The Google emulator in its own process, and the soak's handle on it.

``python -m bench.soak.emulator CALENDARS.json`` starts :class:`GoogleEmulator` on a free
loopback port, creates the calendars and seeds the events listed in the file (see
:meth:`bench.soak.world.World.write_calendars`), prints one JSON line ``{"base_url": ...}`` and
serves until killed or until its stdin closes. State lives in that process's memory only.

Goodwill's processes reach it through the real Google client libraries; the soak reads the
events back the same way (``events.list`` as each owner, see :mod:`bench.soak.counting`). The
only other channel is the process's stdin, used to switch the random faults on and off and to
ask what was injected; each command line gets one JSON line back:

- ``faults RATE SEED SLOW_S``: fail RATE of the API calls at random (500, 503, 429 with
  Retry-After, a reply slower than the client's timeout, a dropped connection before or after
  the change is applied);
- ``stop-faults``: turn them off; ``stats``: counts so far.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from tests.emulators.google_emulator import GoogleEmulator, make_fault

__all__ = ["FaultStats", "RemoteEmulator", "main"]

_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class FaultStats:
    """What the emulator saw: API calls, faults drawn at random (by kind), schema violations."""

    api_calls: int
    injected: dict[str, int]
    schema_violations: list[str]

    @property
    def injected_total(self) -> int:
        return sum(self.injected.values())

    def describe(self) -> str:
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(self.injected.items()))
        share = self.injected_total / self.api_calls if self.api_calls else 0.0
        return f"{self.injected_total} of {self.api_calls} API calls ({share:.1%}): {kinds or '-'}"


class RemoteEmulator:
    """Starts ``python -m bench.soak.emulator`` in its own process group and talks to it."""

    def __init__(
        self, calendars_file: Path, log_path: Path, *, module: str = "bench.soak.emulator"
    ) -> None:
        """``module``: the child to run (``bench.pipeline_emulator`` speaks the same protocol)."""
        self._log = log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module, str(calendars_file)],
            cwd=_ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            start_new_session=True,
        )
        self._lock = threading.Lock()
        first = self._read()
        #: The child's first line (``base_url`` and whatever else it reports).
        self.hello = first
        self.base_url = str(first["base_url"])

    @property
    def token_uri(self) -> str:
        return f"{self.base_url}/token"

    @property
    def api_endpoint(self) -> str:
        return f"{self.base_url}/calendar/v3/"

    def faults_on(self, rate: float, *, seed: int, slow_s: float) -> None:
        self._command(f"faults {rate} {seed} {slow_s}")

    def faults_off(self) -> FaultStats:
        return _stats(self._command("stop-faults"))

    def stats(self) -> FaultStats:
        return _stats(self._command("stats"))

    def ask(self, line: str) -> dict[str, Any]:
        """Send one command line; its JSON reply."""
        return self._command(line)

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.close()  # the child exits at end of input
                self.proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout=5)
        self._log.close()

    def _command(self, line: str) -> dict[str, Any]:
        with self._lock:
            assert self.proc.stdin is not None
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()
            return self._read()

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        text = self.proc.stdout.readline()
        if not text:
            raise RuntimeError(f"the emulator process exited (code {self.proc.poll()})")
        reply: dict[str, Any] = json.loads(text)
        if "error" in reply:
            raise RuntimeError(f"emulator: {reply['error']}")
        return reply


def _stats(reply: dict[str, Any]) -> FaultStats:
    return FaultStats(
        api_calls=int(reply["api_calls"]),
        injected={str(k): int(v) for k, v in reply["injected"].items()},
        schema_violations=[str(v) for v in reply["schema_violations"]],
    )


# -- the child process ----------------------------------------------------------------------


def _load(emulator: GoogleEmulator, calendars_file: Path) -> None:
    data = json.loads(calendars_file.read_text(encoding="utf-8"))
    for email, zone in data["calendars"]:
        emulator.add_calendar(email, zone)
    for email, body in data["events"]:
        emulator.seed(email, body)


def _reply_stats(emulator: GoogleEmulator) -> dict[str, Any]:
    injected = Counter(
        f.kind if f.kind != "status" else f"status {f.status}"
        for f in list(emulator.faults.injected)
        if f.random
    )
    api_calls = sum(1 for _, path in list(emulator.calls) if path.startswith("/calendar/v3/"))
    return {
        "api_calls": api_calls,
        "injected": dict(injected),
        "schema_violations": list(emulator.schema_violations)[:20],
    }


def _forget_bodies(emulator: GoogleEmulator, stop: threading.Event) -> None:
    """The soak never reads recorded request bodies: keep memory flat over a long run."""
    while not stop.wait(30.0):
        emulator.requests = []


def _serve(emulator: GoogleEmulator, commands: IO[str], out: IO[str]) -> None:
    for line in commands:
        words = line.split()
        reply: dict[str, Any]
        try:
            if words[:1] == ["faults"] and len(words) == 4:
                rate, seed, slow_s = float(words[1]), int(words[2]), float(words[3])
                emulator.faults.random(
                    rate,
                    [
                        make_fault("status", status=500),
                        make_fault("status", status=503),
                        make_fault("status", status=429, retry_after=1),
                        make_fault("slow", delay_s=slow_s),
                        make_fault("drop"),
                        make_fault("drop_after"),
                    ],
                    seed=seed,
                )
                reply = {"ok": True}
            elif words == ["stop-faults"]:
                emulator.faults.stop_random()
                reply = _reply_stats(emulator)
            elif words == ["stats"]:
                reply = _reply_stats(emulator)
            else:
                reply = {"error": f"unknown command {line.strip()!r}"}
        except ValueError as exc:
            reply = {"error": str(exc)}
        out.write(json.dumps(reply) + "\n")
        out.flush()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m bench.soak.emulator CALENDARS.json", file=sys.stderr)
        return 2
    emulator = GoogleEmulator(page_size=100)
    _load(emulator, Path(args[0]))
    emulator.start()
    stop = threading.Event()
    threading.Thread(target=_forget_bodies, args=(emulator, stop), daemon=True).start()
    print(json.dumps({"base_url": emulator.base_url}), flush=True)
    try:
        _serve(emulator, sys.stdin, sys.stdout)
    finally:
        stop.set()
        emulator.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
