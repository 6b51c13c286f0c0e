"""What the page's handlers share: the signed-in owner, rendering, error pages, bounded input.

Error pages never name a meeting, a stakeholder or an owner: a meeting that is not the signed-in
owner's gets the same 404 as one that does not exist.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from scheduler.app.records import User
from scheduler.entrypoints.web.deps import deps_of
from scheduler.entrypoints.web.session import current_email

__all__ = [
    "FLASH",
    "add_filters",
    "bad_input",
    "error_page",
    "gone",
    "http_error",
    "meeting_id",
    "not_found",
    "render",
    "server_error",
    "signed_in_owner",
    "slot_label",
    "when_label",
]

log = logging.getLogger("goodwill.web")

#: The session key of the one-line message shown once on the next page.
FLASH = "flash"
#: Meeting ids are positive 32-bit integers; anything else is "not found" without a lookup.
MAX_ID = 2**31 - 1

_TITLES = {
    400: "That did not work",
    403: "Not allowed",
    404: "Not found",
    405: "Not allowed",
    409: "That cannot be done now",
    410: "This link no longer works",
    413: "Too large",
}
_NOT_FOUND = "There is nothing here. It may have been removed, or the address is wrong."


def when_label(moment: datetime, zone: str) -> str:
    """``Wed 3 Dec 10:00 CET``: ``moment`` on ``zone``'s wall clock."""
    local = moment.astimezone(ZoneInfo(zone))
    return f"{local:%a} {local.day} {local:%b %H:%M} {local.tzname()}"


def slot_label(start: datetime, end: datetime, zone: str) -> str:
    """``Wed 3 Dec 10:00–10:30 CET``."""
    a, b = start.astimezone(ZoneInfo(zone)), end.astimezone(ZoneInfo(zone))
    return f"{a:%a} {a.day} {a:%b %H:%M}–{b:%H:%M} {b.tzname()}"


def _day(moment: datetime | None, zone: str) -> str:
    if moment is None:
        return "—"
    local = moment.astimezone(ZoneInfo(zone))
    return f"{local:%a} {local.day} {local:%b %Y}"


def add_filters(env: Environment) -> None:
    env.filters["when"] = when_label
    env.filters["slot"] = slot_label
    env.filters["day"] = _day


def render(request: Request, name: str, context: dict[str, Any], status: int = 200) -> Response:
    has_session = "session" in request.scope
    ctx: dict[str, Any] = {
        "signed_in": current_email(request) if has_session else None,
        "flash": None,
        "has_session": has_session,
        **context,
    }
    return deps_of(request).templates.TemplateResponse(request, name, ctx, status_code=status)


def error_page(request: Request, status: int, message: str, *, back: bool = True) -> Response:
    return render(
        request,
        "error.html",
        {"title": _TITLES.get(status, "Something went wrong"), "message": message, "back": back},
        status,
    )


def not_found(request: Request) -> Response:
    return error_page(request, 404, _NOT_FOUND)


def gone(request: Request) -> Response:
    return error_page(
        request,
        410,
        "This link has expired or was already used. Your goodwill page shows what is waiting.",
    )


def bad_input(message: str) -> HTTPException:
    """A 400 with a plain explanation (raise it from a handler)."""
    return HTTPException(400, message)


def meeting_id(request: Request) -> int | None:
    """The ``{id}`` of the path as a meeting id, or None when it cannot be one."""
    raw = request.path_params.get("id")
    if not isinstance(raw, str) or not raw.isdigit() or len(raw) > 10:
        return None
    value = int(raw)
    return value if 1 <= value <= MAX_ID else None


async def signed_in_owner(request: Request) -> User | Response:
    """The signed-in owner, or the response to send instead (303 to /signin; a page saying
    goodwill plans nothing for this address)."""
    email = current_email(request)
    if email is None:
        return RedirectResponse("/signin", status_code=303)
    user = await run_in_threadpool(deps_of(request).app.store.get_user_by_email, email)
    if user is None:
        return error_page(
            request,
            403,
            f"You are signed in as {email}, but goodwill has no policy file for this address. "
            "Ask whoever runs goodwill to add one, or sign out and use another address.",
            back=False,
        )
    return user


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return not_found(request)
    if exc.status_code == 405:
        message = "This address does not take that kind of request. Go back to your page."
    elif exc.status_code in _TITLES:
        message = exc.detail
    else:
        message = "Something went wrong. Go back to your page and try again."
    response = error_page(request, exc.status_code, message)
    for key, value in (exc.headers or {}).items():
        response.headers[key] = value
    return response


async def server_error(request: Request, exc: Exception) -> Response:
    # The type only at ERROR: an exception's text may name a person.
    log.error("web: %s %s failed: %s", request.method, request.url.path, type(exc).__name__)
    log.debug("web: failure details", exc_info=exc)
    return HTMLResponse(
        '<!doctype html><html lang="en"><title>goodwill</title><h1>Something went wrong</h1>'
        "<p>goodwill could not do that just now. Go back to "
        '<a href="/">your page</a> and try again in a minute.</p></html>',
        500,
    )
