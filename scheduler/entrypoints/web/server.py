"""Serving the owner's page: uvicorn in a daemon thread (``goodwill serve``, ``goodwill web``).

The socket is bound when :class:`WebServer` is made, so a port already in use fails at start-up
with a clear line, and port 0 picks a free port (read it back from :attr:`WebServer.port`).
uvicorn's access log is off: an ``/action?token=…`` URL must not reach the logs.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from datetime import timedelta
from typing import TYPE_CHECKING

import uvicorn
from starlette.types import ASGIApp

from scheduler.core.errors import ConfigurationError

if TYPE_CHECKING:
    from scheduler.entrypoints.bootstrap import App
    from scheduler.settings import WebSettings

__all__ = ["WebServer", "build_web_server", "warn_unreachable_links"]

log = logging.getLogger("goodwill.web")


class WebServer:
    """One ASGI app served by uvicorn from a daemon thread.

    Args:
        app: the ASGI application (:func:`scheduler.entrypoints.web.app.create_web_app`).
        host: interface to bind (``GOODWILL_WEB__HOST``).
        port: TCP port (``GOODWILL_WEB__PORT``); 0 picks a free one.
        public_url: the address people open (``GOODWILL_WEB__BASE_URL``), for the log line.
    """

    def __init__(self, app: ASGIApp, host: str, port: int, *, public_url: str | None = None):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._sock.bind((host, port))
        except OSError as exc:
            self._sock.close()
            raise ConfigurationError(
                f"the owner's page cannot listen on {host}:{port} ({exc.strerror}): set "
                "GOODWILL_WEB__HOST / GOODWILL_WEB__PORT to a free address"
            ) from exc
        self._sock.listen(128)
        self._address = (str(self._sock.getsockname()[0]), int(self._sock.getsockname()[1]))
        self._sock.setblocking(False)
        config = uvicorn.Config(
            app,
            log_config=None,  # our logging configuration stays in charge
            access_log=False,
            lifespan="off",
            proxy_headers=False,
            server_header=False,
            timeout_graceful_shutdown=5,
        )
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None
        self._public_url = public_url

    @property
    def host(self) -> str:
        return self._address[0]

    @property
    def port(self) -> int:
        return self._address[1]

    @property
    def url(self) -> str:
        """The address it listens on, ``http://HOST:PORT``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def public_url(self) -> str:
        return self._public_url or self.url

    def start(self, timeout_s: float = 10.0) -> None:
        """Serve in a daemon thread; returns once uvicorn is accepting connections."""
        if self._thread is not None:
            raise RuntimeError("WebServer already started")
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._sock]},
            name="goodwill-web",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started and self._thread.is_alive():
            if time.monotonic() > deadline:
                raise RuntimeError("the owner's page did not start in time")
            time.sleep(0.02)
        if not self._server.started:
            raise RuntimeError("the owner's page failed to start (see the log above)")
        log.info("owner's page on %s (listening on %s)", self.public_url, self.url)

    def stop(self) -> None:
        """Stop serving and close the socket (idempotent)."""
        if self._thread is not None:
            self._server.should_exit = True
            self._thread.join(10)
            self._thread = None
        self._sock.close()


def warn_unreachable_links(web: WebSettings) -> None:
    """Warn (once per start) when e-mailed links would point at a wildcard address."""
    if web.base_url_unreachable:
        log.warning(
            "GOODWILL_WEB__HOST is %s and GOODWILL_WEB__BASE_URL is unset: e-mailed links point "
            "at %s, an unreachable address; set GOODWILL_WEB__BASE_URL to the page's public "
            "address (for example https://goodwill.corp.example)",
            web.host,
            web.effective_base_url,
        )


def build_web_server(app: App) -> WebServer:
    """The owner's page for ``app``, with e-mailed links, Google/Microsoft sign-in and SMTP.

    Raises:
        ConfigurationError: no ``GOODWILL_SECRET_KEY``, or the address is taken.
    """
    from connectors.imip import ImipSender
    from scheduler.entrypoints.web.app import create_web_app
    from scheduler.entrypoints.web.signin import LinkTokens, OidcClients

    settings = app.settings
    web = settings.web
    if settings.secret_key is None:
        create_web_app(app, links=None)  # raises the ConfigurationError that names the fix
    assert settings.secret_key is not None
    links = LinkTokens(
        settings.secret_key.get_secret_value(),
        web.effective_base_url,
        app.store,
        app.clock,
        sign_in_ttl=timedelta(seconds=web.link_ttl_s),
        action_ttl=timedelta(seconds=web.action_link_ttl_s),
    )
    warn_unreachable_links(web)
    # Sign-in links are e-mailed only from GOODWILL_SMTP__SENDER: without it, no form is offered.
    mailer = ImipSender(settings.smtp) if settings.smtp.sender else None
    asgi = create_web_app(app, links=links, oidc=OidcClients(settings), mailer=mailer)
    return WebServer(asgi, web.host, web.port, public_url=web.effective_base_url)
