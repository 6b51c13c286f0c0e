"""A real uvicorn server on 127.0.0.1 in a thread, for web tests (httpx or a browser).

The socket is bound when the :class:`WebServer` is made, so its :attr:`~WebServer.base_url` is
known before the app is built (the app needs it for links and OpenID redirect URIs)::

    server = WebServer()                 # bound to 127.0.0.1:<free port>, not serving yet
    app = make_app(base_url=server.base_url)
    server.start(app)                    # serves in a thread; returns once it accepts requests
    ...
    server.stop()                        # or: with WebServer() as server: server.start(app)

The ``web_server`` fixture yields a fresh, not yet started server and stops it afterwards
(import it into a test module: ``from tests.web_support import web_server``).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn

__all__ = ["WebServer", "web_server"]


class WebServer:
    """One uvicorn server on a loopback port chosen by the OS; see the module docstring."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, 0))
        self.host = host
        self.port: int = self._socket.getsockname()[1]
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, app: Any, *, timeout_s: float = 20.0) -> WebServer:
        """Serve ``app`` (any ASGI app) in a daemon thread; wait until it is up."""
        if self._server is not None:
            raise RuntimeError("this WebServer is already serving")
        config = uvicorn.Config(
            app, log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=2
        )
        server = uvicorn.Server(config)
        self._server = server
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [self._socket]}, name="web-server", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the web server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        """Stop serving and close the socket (safe to call twice, or before start)."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=15)
            self._thread = None
        self._server = None
        self._socket.close()

    def __enter__(self) -> WebServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@pytest.fixture
def web_server() -> Iterator[WebServer]:
    """A bound, not yet started :class:`WebServer`; stopped after the test."""
    server = WebServer()
    try:
        yield server
    finally:
        server.stop()
