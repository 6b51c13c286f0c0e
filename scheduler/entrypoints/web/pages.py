"""The owner's main page (``GET /``) and the list of the page's routes.

One page holds everything: proposals waiting (why this slot, both time zones, the invite exactly
as it will be sent, other slots), upcoming meetings, the pause form, the coverage report and the
policy's validation status. The buttons POST to :mod:`.actions`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from scheduler.app import owner
from scheduler.core.report import UserReport
from scheduler.entrypoints.web import actions
from scheduler.entrypoints.web.common import FLASH, not_found, render, signed_in_owner
from scheduler.entrypoints.web.deps import deps_of

__all__ = ["SNOOZE_WEEKS", "paused_until_day", "routes"]

#: What the snooze select offers (weeks); the POST accepts nothing else.
SNOOZE_WEEKS = actions.SNOOZE_WEEKS


def paused_until_day(paused_until: datetime, zone: str) -> str:
    """The last paused day as the owner typed it: the pause ends at the start of the next day
    in their zone, so the day shown is the one before that moment."""
    last = (paused_until - timedelta(microseconds=1)).astimezone(ZoneInfo(zone))
    return f"{last:%a} {last.day} {last:%b %Y}"


async def home(request: Request) -> Response:
    user = await signed_in_owner(request)
    if isinstance(user, Response):
        return user
    deps = deps_of(request)
    view = await run_in_threadpool(owner.owner_view, deps.app.pipeline, user.id)
    if view is None:
        return not_found(request)
    flash = request.session.pop(FLASH, None)
    now = deps.app.clock.now()
    today = now.astimezone(ZoneInfo(view.zone)).date()
    paused = view.paused_until is not None and view.paused_until > now
    report = view.report if isinstance(view.report, UserReport) else None
    return render(
        request,
        "owner.html",
        {
            "view": view,
            "report": report,
            "flash": flash if isinstance(flash, str) else None,
            "paused": paused,
            "paused_day": paused_until_day(view.paused_until, view.zone)
            if paused and view.paused_until is not None
            else None,
            "today": today.isoformat(),
            "last_pause_day": (today + timedelta(days=actions.MAX_PAUSE_DAYS)).isoformat(),
            "snooze_weeks": SNOOZE_WEEKS,
        },
    )


def routes() -> list[BaseRoute]:
    return [
        Route("/", home, methods=["GET"]),
        *actions.routes(),
    ]
