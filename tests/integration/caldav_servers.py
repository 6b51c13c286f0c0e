"""Real CalDAV servers and an SMTP sink for tests, all on 127.0.0.1 only.

* :func:`start_radicale` runs Radicale (the installed package, ``python -m radicale``) in a
  subprocess: htpasswd users (plain), a rights file where every authenticated user may read and
  write everything except collections under ``/private/`` (only user ``owner``; for 403 tests),
  storage in a temp dir.
* :func:`start_xandikos` runs ``xandikos multi-user`` in a subprocess: identities come from the
  ``X-Remote-User`` header (trusted from 127.0.0.1 only), RFC 6638 scheduling is on, and with
  ``smtp_port`` it mails iMIP to external attendees through that port.
* :class:`SmtpSink` is an aiosmtpd server in a thread that keeps every message's raw bytes.

Each ``start_*`` returns an object whose ``stop()`` ends the process it started (and only that
one). The pytest fixtures at the bottom (``radicale``, ``xandikos``, ``smtp_sink``) are
module-scoped: a server per test module, with fresh user names per test so tests never see each
other's events. Import them as ``from tests.integration.caldav_servers import radicale_fixture``
(the ``*_fixture`` names keep the import from clashing with the parameter name).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

__all__ = [
    "RadicaleServer",
    "SmtpSink",
    "XandikosServer",
    "free_port",
    "radicale_fixture",
    "running_radicale",
    "smtp_sink_fixture",
    "start_radicale",
    "start_xandikos",
    "unique_user",
    "xandikos_fixture",
]

HOST = "127.0.0.1"
READY_TIMEOUT_S = 20.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def unique_user(prefix: str) -> str:
    """A fresh user name, so each test has its own calendars on a shared server."""
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Poll ``url`` until the server answers any HTTP status; fail fast if it died."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    _terminate(proc)
    raise RuntimeError(f"server not ready after {READY_TIMEOUT_S}s:\n{log.read_text()[-3000:]}")


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


# Loaded in the parent so the child between fork and exec only makes one libc call.
_LIBC = ctypes.CDLL(None) if sys.platform.startswith("linux") else None


def _die_with_parent() -> None:
    """Linux: SIGTERM the server if the test process dies without tearing down (e.g. killed)."""
    if _LIBC is not None:
        _LIBC.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _spawn(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    with log.open("wb") as out:
        return subprocess.Popen(
            args,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            preexec_fn=_die_with_parent if _LIBC is not None else None,
        )


# -- Radicale ----------------------------------------------------------------------------------


@dataclass
class RadicaleServer:
    """A running Radicale. ``url`` ends with ``/``; ``users`` maps name → password."""

    url: str
    root: Path
    proc: subprocess.Popen[bytes]
    users: dict[str, str]

    def add_user(self, name: str, password: str = "secret") -> None:
        """Add a login (Radicale re-reads the htpasswd file on every request)."""
        self.users[name] = password
        (self.root / "users").write_text("".join(f"{u}:{p}\n" for u, p in self.users.items()))

    def make_calendar(self, path: str, *, as_user: str = "service") -> str:
        """MKCALENDAR ``path`` (``"alice/calendar/"``) and return its absolute URL."""
        auth = (as_user, self.users[as_user])
        segments = path.strip("/").split("/")
        for depth in range(1, len(segments)):  # Radicale wants the parents to exist
            parent = self.url + "/".join(segments[:depth]) + "/"
            made = httpx.request("MKCOL", parent, auth=auth, timeout=10.0)
            if made.status_code not in (201, 405):
                raise RuntimeError(f"MKCOL {parent}: {made.status_code} {made.text}")
        url = self.url + "/".join(segments) + "/"
        response = httpx.request("MKCALENDAR", url, auth=auth, timeout=10.0)
        if response.status_code not in (201, 405):  # 405: exists already
            raise RuntimeError(f"MKCALENDAR {url}: {response.status_code} {response.text}")
        return url

    def stop(self) -> None:
        _terminate(self.proc)


_RIGHTS = """\
[private-owner]
user: owner
collection: private(/.*)?
permissions: RrWw

[private]
user: .+
collection: private(/.*)?
permissions: 

[everything]
user: .+
collection: .*
permissions: RrWw
"""


def start_radicale(root: Path, users: Mapping[str, str] | None = None) -> RadicaleServer:
    """Start Radicale with htpasswd (plain) logins.

    ``service:secret`` may read and write everything except ``/private/``, which only
    ``owner:secret`` may use.
    """
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    all_users = {"service": "secret", "owner": "secret", **(users or {})}
    (root / "users").write_text("".join(f"{u}:{p}\n" for u, p in all_users.items()))
    (root / "rights").write_text(_RIGHTS)
    # No inline comments in this file: Radicale's parser would keep them in the value.
    (root / "config").write_text(
        f"""[server]
hosts = {HOST}:{port}

[auth]
type = htpasswd
htpasswd_filename = {root / "users"}
htpasswd_encryption = plain
delay = 0

[rights]
type = from_file
file = {root / "rights"}

[storage]
filesystem_folder = {root / "store"}

[logging]
level = warning
"""
    )
    log = root / "radicale.log"
    proc = _spawn([sys.executable, "-m", "radicale", "--config", str(root / "config")], log)
    url = f"http://{HOST}:{port}/"
    _wait_ready(url, proc, log)
    return RadicaleServer(url=url, root=root, proc=proc, users=all_users)


# -- Xandikos ----------------------------------------------------------------------------------


@dataclass
class XandikosServer:
    """A running ``xandikos multi-user``. Act as a user with header ``X-Remote-User: <name>``."""

    url: str
    root: Path
    proc: subprocess.Popen[bytes]

    @staticmethod
    def headers(user: str) -> dict[str, str]:
        return {"X-Remote-User": user}

    def calendar_url(self, user: str) -> str:
        """The default calendar ``--defaults`` creates for ``user``."""
        return f"{self.url}{user}/calendars/calendar/"

    def add_user(self, user: str, email: str) -> str:
        """Create ``user`` (first request) and give the principal its calendar address.

        Without a ``calendar-user-address-set`` Xandikos cannot tell that ``mailto:email`` is
        this user, and scheduling would treat them as external. Returns the calendar URL.
        """
        body = (
            '<D:propertyupdate xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
            "<D:set><D:prop><C:calendar-user-address-set>"
            f"<D:href>mailto:{email}</D:href>"
            "</C:calendar-user-address-set></D:prop></D:set></D:propertyupdate>"
        )
        response = httpx.request(
            "PROPPATCH",
            f"{self.url}{user}/",
            content=body,
            headers={**self.headers(user), "Content-Type": "application/xml"},
            timeout=10.0,
        )
        if response.status_code != 207:
            raise RuntimeError(f"PROPPATCH {user}: {response.status_code} {response.text}")
        return self.calendar_url(user)

    def items(self, user: str, collection: str) -> list[str]:
        """The bodies of all resources in ``/<user>/<collection>/`` (e.g. ``inbox``)."""
        url = f"{self.url}{user}/{collection.strip('/')}/"
        body = '<D:propfind xmlns:D="DAV:"><D:prop><D:getetag/></D:prop></D:propfind>'
        response = httpx.request(
            "PROPFIND",
            url,
            content=body,
            headers={**self.headers(user), "Depth": "1", "Content-Type": "application/xml"},
            timeout=10.0,
        )
        response.raise_for_status()
        hrefs = [
            part.split("<", 1)[0]
            for part in response.text.split("href>")[1:]
            if part.split("<", 1)[0].endswith(".ics")
        ]
        out = []
        for href in hrefs:
            got = httpx.get(
                httpx.URL(self.url).join(href), headers=self.headers(user), timeout=10.0
            )
            got.raise_for_status()
            out.append(got.text)
        return out

    def stop(self) -> None:
        _terminate(self.proc)


def start_xandikos(root: Path, *, smtp_port: int | None = None) -> XandikosServer:
    """Start ``xandikos multi-user`` with scheduling; iMIP out to ``smtp_port`` when given."""
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    args = [
        sys.executable,
        "-m",
        "xandikos",
        "multi-user",
        "-d",
        str(root / "data"),
        "--defaults",
        "-l",
        HOST,
        "-p",
        str(port),
        "--state-dir",
        str(root / "state"),
        "--no-detect-systemd",
        "--trust-x-remote-user-from",
        HOST,
    ]
    if smtp_port is not None:
        args += [
            "--imip-send",
            "smtp",
            "--smtp-host",
            HOST,
            "--smtp-port",
            str(smtp_port),
            "--smtp-from",
            "caldav@xandikos.example",
        ]
    log = root / "xandikos.log"
    proc = _spawn(args, log)
    url = f"http://{HOST}:{port}/"
    _wait_ready(url, proc, log)
    return XandikosServer(url=url, root=root, proc=proc)


# -- SMTP sink ---------------------------------------------------------------------------------


@dataclass
class _Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes


@dataclass
class SmtpSink:
    """aiosmtpd on 127.0.0.1 keeping each message's bytes exactly as received."""

    port: int
    #: When set, clients must log in with this (user, password); no TLS needed on loopback.
    login: tuple[str, str] | None = None
    messages: list[_Received] = field(default_factory=list)
    _controller: Any = None
    _cond: threading.Condition = field(default_factory=threading.Condition)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        if self.login is not None and not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self._cond:
            self.messages.append(
                _Received(
                    mail_from=str(envelope.mail_from),
                    rcpt_tos=[str(r) for r in envelope.rcpt_tos],
                    data=bytes(envelope.original_content),
                )
            )
            self._cond.notify_all()
        return "250 OK"

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        assert self.login is not None
        user, password = self.login
        ok = isinstance(auth_data, LoginPassword) and (
            auth_data.login.decode(),
            auth_data.password.decode(),
        ) == (user, password)
        # handled=False: aiosmtpd itself answers 235/535 (True means "I already replied").
        return AuthResult(success=ok, handled=False)

    def start(self) -> SmtpSink:
        auth: dict[str, Any] = {}
        if self.login is not None:
            # AUTH without TLS (loopback only). aiosmtpd's own ``auth_required`` warns about
            # exactly that, so handle_RCPT refuses unauthenticated sessions instead.
            auth = {"authenticator": self._authenticate, "auth_require_tls": False}
        self._controller = Controller(self, hostname=HOST, port=self.port, **auth)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def wait_for(self, predicate: Any, timeout_s: float = 10.0) -> list[_Received]:
        """Wait until some received messages satisfy ``predicate``; return those."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                found = [m for m in self.messages if predicate(m)]
                remaining = deadline - time.monotonic()
                if found or remaining <= 0:
                    return found
                self._cond.wait(remaining)

    def to(self, address: str) -> list[_Received]:
        """Messages received so far for ``address``."""
        with self._cond:
            return [m for m in self.messages if address in m.rcpt_tos]


# -- pytest fixtures ---------------------------------------------------------------------------


@pytest.fixture(scope="module", name="smtp_sink")
def smtp_sink_fixture() -> Iterator[SmtpSink]:
    sink = SmtpSink(port=free_port()).start()
    try:
        yield sink
    finally:
        sink.stop()


@pytest.fixture(scope="module", name="radicale")
def radicale_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RadicaleServer]:
    server = start_radicale(tmp_path_factory.mktemp("radicale"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module", name="xandikos")
def xandikos_fixture(
    tmp_path_factory: pytest.TempPathFactory, smtp_sink: SmtpSink
) -> Iterator[XandikosServer]:
    # iMIP for external attendees goes to the module's SMTP sink.
    server = start_xandikos(tmp_path_factory.mktemp("xandikos"), smtp_port=smtp_sink.port)
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def running_radicale(root: Path) -> Iterator[RadicaleServer]:
    """Context-manager form of :func:`start_radicale`."""
    server = start_radicale(root)
    try:
        yield server
    finally:
        server.stop()
