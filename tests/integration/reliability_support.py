"""Helpers for the reliability tests: an organisation on the Google emulator, goodwill processes
started from ``GOODWILL_*`` settings, and checks made at the calendar (never only our database).

- :func:`write_org` writes one YAML policy per user (auto-mode peers, provider google) and gives
  everyone a calendar on the emulator.
- :class:`Deployment` is one set of settings, as an environment for subprocesses
  (:meth:`Deployment.env`) and as a :class:`Settings` object for in-process components.
- :class:`Processes` starts ``python -m scheduler …`` in its own process group, kills it
  with SIGKILL (the whole group) and always cleans up.
- :class:`TcpProxy` forwards a loopback port to a service; stopping it cuts every connection.
- :func:`check_calendars` compares the emulator's stored events with the meeting rows.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from connectors.google_events import google_event_id
from scheduler.core.states import MeetingState
from scheduler.settings import GoogleSettings, OpsSettings, Settings
from scheduler.store import Meeting, Store
from tests.emulators.google_emulator import GoogleEmulator

__all__ = [
    "DOMAIN",
    "CalendarCheck",
    "Deployment",
    "GoogleEndpoints",
    "Org",
    "Processes",
    "ServiceProcess",
    "TcpProxy",
    "all_booked",
    "all_meetings",
    "check_calendars",
    "free_port",
    "iter_audit",
    "service_account_file",
    "state_summary",
    "wait_until",
    "write_org",
    "write_policy",
]

DOMAIN = "corp.example"
ROOT = Path(__file__).resolve().parents[2]
_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_FAR = datetime(2100, 1, 1, tzinfo=UTC)


# -- the organisation ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Org:
    """Users (policy owners) and, per user, the peers their policy auto-books."""

    policy_dir: Path
    peers: dict[str, tuple[str, ...]]

    @property
    def owners(self) -> tuple[str, ...]:
        return tuple(self.peers)

    @property
    def expected_meetings(self) -> int:
        """Every peer is due (never met) and the calendars are empty: one meeting each."""
        return sum(len(p) for p in self.peers.values())


def write_policy(policy_dir: Path, owner: str, peers: Sequence[str], *, name: str = "") -> Path:
    """One valid policy: UTC working hours, every peer in auto mode, caps that fit them all."""
    lines = [
        f"owner: {{email: {owner}, name: {name or 'Owner ' + owner.split('@')[0]}, timezone: UTC}}",
        "calendar: {provider: google}",
        "meeting: {kind: coffee, duration: 30m, video: none}",
        "availability:",
        '  working_hours: {mon-fri: "09:00-17:00"}',
        "  min_notice: 1d",
        "  horizon: 14d",
        "  max_per_day: 3",
        "  max_per_week: 10",
        "tiers:",
        "  peer: {every: 4w, mode: auto}",
        "stakeholders:",
        *(
            f"  - {{email: {p}, name: Peer {p.split('@')[0].upper()}, tier: peer, timezone: UTC}}"
            for p in peers
        ),
        f"allowed_domains: [{DOMAIN}]",
    ]
    path = policy_dir / f"{owner.split('@')[0]}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def write_org(
    policy_dir: Path, emulator: GoogleEmulator, *, users: int = 3, peers: int = 3, tag: str = "u"
) -> Org:
    """``users`` policies with ``peers`` distinct peers each; calendars for all on the emulator."""
    policy_dir.mkdir(parents=True, exist_ok=True)
    table: dict[str, tuple[str, ...]] = {}
    for u in range(users):
        owner = f"{tag}{u}@{DOMAIN}"
        mine = tuple(f"{tag}{u}-peer{p}@{DOMAIN}" for p in range(peers))
        write_policy(policy_dir, owner, mine)
        for email in (owner, *mine):
            emulator.add_calendar(email, "UTC")
        table[owner] = mine
    return Org(policy_dir, table)


@functools.lru_cache(maxsize=1)
def _private_key_pem() -> str:
    # One RSA key per test session: generating it costs ~0.1-0.5 s.
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def service_account_file(path: Path) -> Path:
    """A Workspace service-account key file; google-auth signs jwt-bearer grants with it."""
    info = {
        "type": "service_account",
        "project_id": "goodwill-test",
        "private_key_id": "k1",
        "private_key": _private_key_pem(),
        "client_email": "goodwill@goodwill-test.iam.gserviceaccount.com",
        "client_id": "1234567890",
        "token_uri": "https://oauth2.googleapis.com/token",  # overridden by the settings
    }
    path.write_text(json.dumps(info))
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- settings -----------------------------------------------------------------------------------


class GoogleEndpoints(Protocol):
    """Where the Google emulator answers: a :class:`GoogleEmulator`, or a handle on one."""

    @property
    def token_uri(self) -> str: ...

    @property
    def api_endpoint(self) -> str: ...


@dataclass
class Deployment:
    """One goodwill configuration shared by every process of a test.

    Leases and the tick interval are seconds, small so a killed worker's meeting is re-driven
    within the test's time budget.
    """

    data_dir: Path
    database_url: str
    broker_url: str
    policy_dir: Path
    #: The Google emulator (in this process, or a handle on one in another process).
    emulator: GoogleEndpoints
    service_account: Path
    booking_lease_s: float = 3.0
    send_lease_s: float = 3.0
    tick_interval_s: float = 0.5
    google_timeout_s: float = 10.0
    ops_port: int = field(default_factory=free_port)

    def env(self) -> dict[str, str]:
        """The environment of a subprocess: the parent's, minus any GOODWILL_*, plus ours."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("GOODWILL_")}
        env.update(
            GOODWILL_DATA_DIR=str(self.data_dir),
            GOODWILL_DATABASE_URL=self.database_url,
            GOODWILL_BROKER_URL=self.broker_url,
            GOODWILL_POLICY_DIR=str(self.policy_dir),
            GOODWILL_TICK_INTERVAL_S=str(self.tick_interval_s),
            GOODWILL_BOOKING_LEASE_S=str(self.booking_lease_s),
            GOODWILL_SEND_LEASE_S=str(self.send_lease_s),
            GOODWILL_GOOGLE__SERVICE_ACCOUNT_FILE=str(self.service_account),
            GOODWILL_GOOGLE__TOKEN_URI=self.emulator.token_uri,
            GOODWILL_GOOGLE__API_ENDPOINT=self.emulator.api_endpoint,
            GOODWILL_GOOGLE__TIMEOUT_S=str(self.google_timeout_s),
            GOODWILL_OPS__HOST="127.0.0.1",
            GOODWILL_OPS__PORT=str(self.ops_port),
            GOODWILL_LOG_FORMAT="text",
            PYTHONUNBUFFERED="1",
        )
        return env

    def settings(self, **overrides: Any) -> Settings:
        """The same configuration for components run inside the test process."""
        values: dict[str, Any] = {
            "data_dir": self.data_dir,
            "database_url": self.database_url,
            "broker_url": self.broker_url,
            "policy_dir": self.policy_dir,
            "tick_interval_s": self.tick_interval_s,
            "booking_lease_s": self.booking_lease_s,
            "send_lease_s": self.send_lease_s,
            "google": GoogleSettings(
                service_account_file=self.service_account,
                token_uri=self.emulator.token_uri,
                api_endpoint=self.emulator.api_endpoint,
                timeout_s=self.google_timeout_s,
            ),
            "ops": OpsSettings(host="127.0.0.1", port=self.ops_port),
            **overrides,
        }
        return Settings(_env_file=None, **values)


# -- processes ----------------------------------------------------------------------------------


class ServiceProcess:
    """``python -m scheduler ARGS`` in its own process group, output to ``log_path``."""

    def __init__(
        self,
        args: Sequence[str],
        env: dict[str, str],
        log_path: Path,
        *,
        module: str = "scheduler",
    ) -> None:
        """``module``: run ``python -m MODULE ARGS`` instead (a wrapper that ends in the CLI)."""
        self.args = list(args)
        self.log_path = log_path
        self._log = log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module, *self.args],
            env=env,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group: kill -9 reaches every child it forks
        )

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill9(self) -> None:
        """SIGKILL the whole process group (no cleanup runs: the crash under test)."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=10)
        self._log.close()

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM the group, then SIGKILL it if it has not exited in ``timeout_s``."""
        if self.alive:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=timeout_s)
            except ProcessLookupError:
                pass
            except subprocess.TimeoutExpired:
                self.kill9()
        self.proc.wait(timeout=10)
        self._log.close()

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


class Processes:
    """Every process a test started; :meth:`close` (in a fixture's finally) stops them all."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.started: list[ServiceProcess] = []

    def start(self, *args: str, env: dict[str, str] | None = None) -> ServiceProcess:
        """Start ``python -m scheduler ARGS`` (``env`` replaces :attr:`env` for this one)."""
        name = f"{len(self.started):02d}-{'-'.join(args)}.log"
        proc = ServiceProcess(args, self.env if env is None else env, self.log_dir / name)
        self.started.append(proc)
        return proc

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.log_path.name} (exit {p.proc.poll()}) ---\n{p.log_tail()}"
            for p in self.started
        )

    def close(self) -> None:
        for proc in self.started:
            if proc.alive:
                proc.stop(timeout_s=5.0)


# -- network cuts ------------------------------------------------------------------------------


class TcpProxy:
    """Forwards 127.0.0.1:<port> to 127.0.0.1:<target>; ``stop()`` drops every connection.

    ``start()`` after ``stop()`` listens on the same port again, so clients reconnect to the
    same address, as they would after a real outage.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._listener: socket.socket | None = None
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(32)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def stop(self) -> None:
        if self._listener is not None:
            # shutdown() wakes the thread blocked in accept(); close() alone leaves the port open.
            try:
                self._listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._listener.close()
            self._listener = None
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for s in sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


# -- waiting and checking -----------------------------------------------------------------------


def wait_until(
    predicate: Callable[[], bool],
    *,
    timeout_s: float,
    what: str,
    interval_s: float = 0.05,
    diagnose: Callable[[], str] | None = None,
) -> float:
    """Poll ``predicate`` until it is true; return the seconds waited, fail after ``timeout_s``."""
    started = time.monotonic()
    deadline = started + timeout_s
    while True:
        if predicate():
            return time.monotonic() - started
        if time.monotonic() >= deadline:
            extra = f"\n{diagnose()}" if diagnose is not None else ""
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}{extra}")
        time.sleep(interval_s)


def all_meetings(store: Store, owners: Iterable[str]) -> list[Meeting]:
    """Every meeting row of these users, in any state."""
    out: list[Meeting] = []
    for owner in owners:
        user = store.get_user_by_email(owner)
        if user is not None:
            out.extend(store.meetings_between(user.id, _EPOCH, _FAR))
    return out


def all_booked(store: Store, owners: Iterable[str], expected: int) -> bool:
    meetings = all_meetings(store, owners)
    return len(meetings) >= expected and all(m.state == MeetingState.BOOKED for m in meetings)


def state_summary(store: Store, owners: Iterable[str]) -> str:
    meetings = all_meetings(store, owners)
    return "meetings: " + ", ".join(
        f"{m.id}:{m.state.value}(attempts={m.attempts}, error={m.last_error!r})" for m in meetings
    )


@dataclass
class CalendarCheck:
    """What the calendars hold compared with the meeting rows."""

    meetings: list[Meeting]
    #: Events organised on each owner's calendar, cancelled ones included.
    events: dict[str, list[dict[str, Any]]]
    problems: list[str]


def check_calendars(
    emulator: GoogleEmulator, store: Store, owners: Iterable[str], *, expected: int
) -> CalendarCheck:
    """Every meeting booked exactly once, at the calendar.

    Problems reported: a meeting not booked, a booked row whose ``provider_event_id`` is not the
    id derived from its idempotency key, a meeting with no event or more than one (by attendee
    and start), a cancelled event, an event no meeting accounts for, or a meeting count other
    than ``expected``.
    """
    owners = list(owners)
    meetings = all_meetings(store, owners)
    problems: list[str] = []
    if len(meetings) != expected:
        problems.append(f"{len(meetings)} meetings in the database, expected {expected}")
    keys = [m.idempotency_key for m in meetings]
    if len(set(keys)) != len(keys):
        problems.append("two meeting rows share an idempotency key")
    by_user = {}
    for owner in owners:
        user = store.get_user_by_email(owner)
        if user is not None:
            by_user[user.id] = owner
    events = {o: emulator.events(o, include_cancelled=True) for o in owners}
    claimed: set[tuple[str, str]] = set()
    for m in meetings:
        owner = by_user[m.user_id]
        if m.state != MeetingState.BOOKED:
            problems.append(f"meeting {m.id} is {m.state.value}, not booked ({m.last_error})")
        expected_id = google_event_id(m.idempotency_key)
        if m.provider_event_id != expected_id:
            problems.append(f"meeting {m.id}: provider_event_id {m.provider_event_id!r}")
        start = m.start.astimezone(UTC)
        same = [
            e
            for e in events[owner]
            if m.stakeholder_email in _attendees(e)
            and datetime.fromisoformat(e["start"]["dateTime"]).astimezone(UTC) == start
        ]
        if [e["id"] for e in same] != [expected_id]:
            problems.append(
                f"meeting {m.id} ({m.stakeholder_email} at {start:%Y-%m-%d %H:%M}Z) has "
                f"{len(same)} event(s) at the calendar: {[e['id'] for e in same]}"
            )
        claimed.add((owner, expected_id))
    for owner, evs in events.items():
        for e in evs:
            if e.get("status") == "cancelled":
                problems.append(f"event {e['id']} on {owner} is cancelled")
            if (owner, e["id"]) not in claimed:
                problems.append(f"event {e['id']} on {owner} belongs to no meeting")
    return CalendarCheck(meetings, events, problems)


def _attendees(event: dict[str, Any]) -> set[str]:
    return {str(a.get("email", "")).lower() for a in event.get("attendees", [])}


def iter_audit(store: Store, meetings: Iterable[Meeting]) -> Iterator[tuple[Meeting, str]]:
    """(meeting, audit detail) for every audit row of these meetings."""
    for m in meetings:
        for entry in store.audit_trail(m.id):
            yield m, entry.detail
