"""The owner's web page as one Starlette application: :func:`create_web_app`.

Every state change is a POST carrying the session's CSRF token; a GET never changes anything.
Error pages are plain HTML and say nothing about any meeting (see :mod:`.pages`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from scheduler.core.errors import ConfigurationError
from scheduler.entrypoints.web import common, pages
from scheduler.entrypoints.web.deps import WebDeps
from scheduler.entrypoints.web.session import session_middleware
from scheduler.entrypoints.web.templating import make_templates

if TYPE_CHECKING:
    from scheduler.entrypoints.bootstrap import App
    from scheduler.settings import Settings

__all__ = ["MAX_BODY_BYTES", "create_web_app", "require_secret_key"]

log = logging.getLogger("goodwill.web")

#: The largest request body the page accepts (its forms are a few hundred bytes).
MAX_BODY_BYTES = 64 * 1024

_SECURITY_HEADERS = [
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    # The page loads nothing from elsewhere; no Referer carries an /action?token= URL away.
    (b"referrer-policy", b"no-referrer"),
    (
        b"content-security-policy",
        b"default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        b"frame-ancestors 'none'; base-uri 'none'",
    ),
    (b"cache-control", b"no-store"),
]


class _Guard:
    """Bounds request bodies (413 past :data:`MAX_BODY_BYTES`) and adds security headers."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            response = Response("That request is too large for goodwill's page.", 413)
            await response(scope, receive, send)
            return
        seen = 0

        async def bounded() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise HTTPException(413, "That request is too large for goodwill's page.")
            return message

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in _SECURITY_HEADERS if k not in names]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, bounded, with_headers)


def _signin_routes() -> list[BaseRoute]:
    try:
        from scheduler.entrypoints.web.signin import signin_routes
    except ModuleNotFoundError as exc:  # sign-in not built yet: the page alone
        if exc.name != "scheduler.entrypoints.web.signin":
            raise
        return []
    return list(signin_routes())


def require_secret_key(settings: Settings) -> None:
    """Raise the ConfigurationError naming the fix when ``GOODWILL_SECRET_KEY`` is unset; the
    page's commands call it before anything is migrated or created."""
    if settings.secret_key is None:
        raise ConfigurationError(
            "the owner's page needs GOODWILL_SECRET_KEY (it signs the session cookie and the "
            "e-mailed links): run `goodwill secret` and set GOODWILL_SECRET_KEY to its output"
        )


def create_web_app(app: App, *, links: Any, oidc: Any = None, mailer: Any = None) -> Starlette:
    """The owner's page for ``app``'s store and pipeline.

    Args:
        links: :class:`scheduler.entrypoints.web.signin.LinkTokens` (sign-in and action links).
        oidc: :class:`scheduler.entrypoints.web.signin.OidcClients`, or None.
        mailer: sends sign-in links by e-mail, or None.

    Raises:
        ConfigurationError: ``GOODWILL_SECRET_KEY`` is not set (it signs the session cookie).
    """
    settings = app.settings
    require_secret_key(settings)
    assert settings.secret_key is not None
    base_url = settings.web.effective_base_url
    templates = make_templates()
    common.add_filters(templates.env)
    middleware = [
        Middleware(_Guard),
        session_middleware(settings.secret_key.get_secret_value(), base_url),
    ]
    web = Starlette(
        routes=[*pages.routes(), *_signin_routes()],
        middleware=middleware,
        exception_handlers={HTTPException: common.http_error, Exception: common.server_error},
    )
    web.state.deps = WebDeps(
        app=app, templates=templates, base_url=base_url, links=links, oidc=oidc, mailer=mailer
    )
    return web
