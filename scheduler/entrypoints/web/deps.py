"""What the web routes share, built once by :func:`scheduler.entrypoints.web.app.create_web_app`
and found by every handler at ``request.app.state.deps``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.templating import Jinja2Templates

if TYPE_CHECKING:
    from scheduler.entrypoints.bootstrap import App

__all__ = ["WebDeps", "deps_of"]


@dataclass
class WebDeps:
    app: App  # the composition root: settings, store, pipeline, clock
    templates: Jinja2Templates
    base_url: str  # GOODWILL_WEB__BASE_URL (or http://HOST:PORT)
    #: scheduler.entrypoints.web.signin.LinkTokens (sign-in and action links)
    links: Any
    #: scheduler.entrypoints.web.signin.OidcClients (Google / Microsoft sign-in), or None
    oidc: Any = None
    #: scheduler.app.digest.Mailer for sign-in links by e-mail, or None (no SMTP configured)
    mailer: Any = None


def deps_of(request: Request) -> WebDeps:
    deps = request.app.state.deps
    assert isinstance(deps, WebDeps)
    return deps
