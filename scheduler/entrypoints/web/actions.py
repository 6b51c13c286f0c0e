"""The owner's actions: every one a POST with the session's CSRF token, every meeting loaded
through :func:`scheduler.app.owner.meeting_for_owner` for the signed-in owner (another owner's
meeting is a 404, exactly like a missing one), every result mapped to one status:

- DONE → 303 to ``/`` with a one-line message shown once;
- NOT_FOUND → 404 that says nothing of the meeting;
- CONFLICT → 409 with the plain message and a link back;
- SLOT_GONE → 409 offering the next slots as buttons.

Also the digest's one-click links: ``GET /action?token=`` asks for confirmation (a GET changes
nothing), ``POST /action`` uses the token once and does that one action; it signs nobody in
(the result page links to the page, which asks to sign in).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from scheduler.app import owner
from scheduler.app.owner import ActionResult, Outcome
from scheduler.app.owner_model import ProposalView, UpcomingView
from scheduler.app.pipeline import Pipeline
from scheduler.app.records import Meeting, User
from scheduler.core.policy.groups import INTRODUCTION
from scheduler.core.states import MeetingState
from scheduler.entrypoints.web.common import (
    FLASH,
    bad_input,
    error_page,
    gone,
    meeting_id,
    not_found,
    render,
    signed_in_owner,
    when_label,
)
from scheduler.entrypoints.web.deps import deps_of
from scheduler.entrypoints.web.session import check_csrf

__all__ = ["LINK_ACTIONS", "MAX_PAUSE_DAYS", "SNOOZE_WEEKS", "routes"]

log = logging.getLogger("goodwill.web")

SNOOZE_WEEKS = (2, 4, 8)
#: The furthest a pause may reach, in days from today.
MAX_PAUSE_DAYS = 366
MAX_EMAIL = 320
MAX_TOKEN = 2048
#: Who the audit trail names for a change made on the page, and through an e-mailed link.
ACTOR, LINK_ACTOR = "web", "web-link"


@dataclass(frozen=True, slots=True)
class _LinkAction:
    verb: str  # the button, e.g. "Approve"
    act: Callable[[Pipeline, int, int, str], ActionResult]


#: What a digest link may do, by the ``action`` its token carries.
LINK_ACTIONS: dict[str, _LinkAction] = {
    "approve": _LinkAction("Approve", lambda p, u, m, a: owner.approve(p, u, m, actor=a)),
    "decline": _LinkAction("Decline", lambda p, u, m, a: owner.decline(p, u, m, actor=a)),
    "cancel": _LinkAction("Cancel", lambda p, u, m, a: owner.cancel(p, u, m, actor=a)),
}


def _field(form: dict[str, Any], name: str, max_len: int = 64) -> str:
    value = form.get(name)
    if not isinstance(value, str) or not value.strip():
        raise bad_input(f"The form is missing its {name!r} field. Go back and try again.")
    if len(value) > max_len:
        raise bad_input(f"The {name!r} field is too long (at most {max_len} characters).")
    return value.strip()


def _small_int(form: dict[str, Any], name: str, allowed: range | tuple[int, ...]) -> int:
    raw = _field(form, name, 4)
    if not raw.isdigit() or int(raw) not in allowed:
        choices = ", ".join(str(i) for i in allowed)
        raise bad_input(f"{name!r} must be one of {choices}, got {raw!r}.")
    return int(raw)


async def _result(request: Request, user: User, mid: int | None, result: ActionResult) -> Response:
    log.info("web: user %s, meeting %s: %s", user.id, mid, result.outcome.value)
    if result.outcome == Outcome.DONE:
        request.session[FLASH] = result.message
        return RedirectResponse("/", status_code=303)
    if result.outcome == Outcome.NOT_FOUND:
        return not_found(request)
    if result.outcome == Outcome.SLOT_GONE and result.alternatives:
        target = result.meeting_id or mid
        view = await run_in_threadpool(owner.owner_view, deps_of(request).app.pipeline, user.id)
        zone = view.zone if view is not None else "UTC"
        proposals = view.proposals if view is not None else ()
        other = next((p.stakeholder_zone for p in proposals if p.meeting.id == target), zone)
        return render(
            request,
            "slot_gone.html",
            {"message": result.message, "meeting_id": target, "alternatives": result.alternatives,
             "zone": zone, "other_zone": other},
            409,
        )  # fmt: skip
    return error_page(request, 409, result.message)


async def _on_meeting(
    request: Request,
    act: Callable[[Pipeline, int, int], ActionResult],
    form_check: Callable[[dict[str, Any]], object] | None = None,
) -> Response:
    user = await signed_in_owner(request)
    if isinstance(user, Response):
        return user
    form = await check_csrf(request)
    if form_check is not None:
        form_check(form)
    mid = meeting_id(request)
    if mid is None:
        return not_found(request)
    p = deps_of(request).app.pipeline
    meeting = await run_in_threadpool(owner.meeting_for_owner, p, user.id, mid)
    if meeting is None:
        return not_found(request)
    result = await run_in_threadpool(act, p, user.id, meeting.id)
    return await _result(request, user, meeting.id, result)


async def approve(request: Request) -> Response:
    return await _on_meeting(request, lambda p, u, m: owner.approve(p, u, m, actor=ACTOR))


async def decline(request: Request) -> Response:
    return await _on_meeting(request, lambda p, u, m: owner.decline(p, u, m, actor=ACTOR))


async def cancel(request: Request) -> Response:
    return await _on_meeting(request, lambda p, u, m: owner.cancel(p, u, m, actor=ACTOR))


async def alternative(request: Request) -> Response:
    chosen: list[int] = []

    def read(form: dict[str, Any]) -> None:
        chosen.append(_small_int(form, "index", range(10)))

    def act(p: Pipeline, u: int, m: int) -> ActionResult:
        found = owner.meeting_for_owner(p, u, m)  # the owner's own (checked just before)
        if found is not None and found.state is MeetingState.PROPOSED and chosen[0] >= len(
            found.alternatives
        ):
            _no_such_alternative(chosen[0], len(found.alternatives))
        return owner.choose_alternative(p, u, m, chosen[0], actor=ACTOR)

    return await _on_meeting(request, act, read)


def _no_such_alternative(index: int, count: int) -> None:
    """A 400 naming the alternatives this proposal has (an index past them is bad input)."""
    if count == 0:
        raise bad_input("This proposal has no other times to choose from.")
    choices = ", ".join(str(i) for i in range(count))
    raise bad_input(f"'index' must be one of {choices}, got {str(index)!r}.")


async def snooze(request: Request) -> Response:
    user = await signed_in_owner(request)
    if isinstance(user, Response):
        return user
    form = await check_csrf(request)
    email = _field(form, "email", MAX_EMAIL).lower()
    if "@" not in email:
        raise bad_input(f"'email' must be an e-mail address, got {email!r}.")
    weeks = _small_int(form, "weeks", SNOOZE_WEEKS)
    p = deps_of(request).app.pipeline
    result = await run_in_threadpool(lambda: owner.snooze(p, user.id, email, weeks, actor=ACTOR))
    return await _result(request, user, None, result)


def _pause_day(form: dict[str, Any], today: date) -> date:
    raw = _field(form, "until", 10)
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        raise bad_input(f"'Pause until' must be a date like 2026-12-24, got {raw!r}.") from None
    if len(raw) != 10 or day < today or day > today + timedelta(days=MAX_PAUSE_DAYS):
        raise bad_input(
            f"'Pause until' must be a day from today ({today.isoformat()}) to at most "
            f"{MAX_PAUSE_DAYS} days ahead, given as YYYY-MM-DD; got {raw!r}."
        )
    return day


async def pause(request: Request) -> Response:
    user = await signed_in_owner(request)
    if isinstance(user, Response):
        return user
    form = await check_csrf(request)
    deps = deps_of(request)
    p = deps.app.pipeline
    view = await run_in_threadpool(owner.owner_view, p, user.id)
    if view is None:
        return not_found(request)
    until = _pause_day(form, deps.app.clock.now().astimezone(ZoneInfo(view.zone)).date())
    also = form.get("cancel_booked") in ("1", "on", "true", "yes")
    result = await run_in_threadpool(
        lambda: owner.pause(p, user.id, until, cancel_booked=also, actor=ACTOR)
    )
    return await _result(request, user, None, result)


async def resume(request: Request) -> Response:
    user = await signed_in_owner(request)
    if isinstance(user, Response):
        return user
    await check_csrf(request)
    p = deps_of(request).app.pipeline
    result = await run_in_threadpool(lambda: owner.resume(p, user.id, actor=ACTOR))
    return await _result(request, user, None, result)


# --- the digest's one-click links ------------------------------------------------------------


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _what(meeting: Meeting, name: str, headline: str, attendees: tuple[Any, ...]) -> str:
    """The meeting in a question: "the coffee with Sam Lee", "the lunch design-data-lunch with
    Maria Garcia, Jon Berg and Chloe Martin", "the introduction (Maria Garcia introduces you to
    Nina Park) with Maria Garcia and Nina Park"."""
    if not meeting.is_group:
        return f"the {meeting.kind} with {name}"
    people = _and([a.name for a in attendees] or list(meeting.attendees) or [name])
    if meeting.group_name == INTRODUCTION:
        about = headline.partition(": ")[2] or "an introduction"
        return f"the introduction ({about}) with {people}"
    return f"the {meeting.kind} {meeting.group_name} with {people}"


def _link_target(request: Request, claim: Any) -> tuple[User, Meeting, str, str] | None:
    """The owner, meeting, what the meeting is (:func:`_what`) and owner's zone a link's claim
    points at."""
    app = deps_of(request).app
    if claim.action not in LINK_ACTIONS or not isinstance(claim.meeting_id, int):
        return None
    user = app.store.get_user_by_email(claim.email)
    if user is None:
        return None
    meeting = owner.meeting_for_owner(app.pipeline, user.id, claim.meeting_id)
    if meeting is None:
        return None
    view = owner.owner_view(app.pipeline, user.id)
    zone = view.zone if view is not None else "UTC"
    shown: list[ProposalView | UpcomingView] = [
        *(view.proposals if view else ()),
        *(view.upcoming if view else ()),
    ]
    row = next((v for v in shown if v.meeting.id == meeting.id), None)
    if row is None:
        return user, meeting, _what(meeting, meeting.stakeholder_email, "", ()), zone
    return user, meeting, _what(meeting, row.stakeholder_name, row.headline, row.attendees), zone


def _token(value: object) -> str | None:
    return value if isinstance(value, str) and 0 < len(value) <= MAX_TOKEN else None


async def action_page(request: Request) -> Response:
    deps = deps_of(request)
    token = _token(request.query_params.get("token"))
    claim = await run_in_threadpool(deps.links.peek, token, "action") if token else None
    target = await run_in_threadpool(_link_target, request, claim) if claim else None
    if token is None or claim is None or target is None:
        return gone(request)
    _, meeting, what, zone = target
    verb = LINK_ACTIONS[claim.action].verb
    question = f"{verb} {what} on {when_label(meeting.start, zone)}?"
    return render(request, "action.html", {"question": question, "verb": verb, "token": token})


async def action_post(request: Request) -> Response:
    deps = deps_of(request)
    form = await check_csrf(request)
    token = _token(form.get("token"))
    if token is None:
        return gone(request)
    claim = await run_in_threadpool(deps.links.redeem, token, "action")
    target = await run_in_threadpool(_link_target, request, claim) if claim else None
    if claim is None or target is None:
        return gone(request)
    user, meeting, _, _ = target
    act = LINK_ACTIONS[claim.action].act
    result = await run_in_threadpool(act, deps.app.pipeline, user.id, meeting.id, LINK_ACTOR)
    log.info("web: user %s, meeting %s by an action link: %s", user.id, meeting.id,
             result.outcome.value)  # fmt: skip
    # The link does its one action and nothing more: no session (a forwarded digest must not
    # be a week-long password). The page it links to asks to sign in.
    if result.outcome == Outcome.NOT_FOUND:
        return not_found(request)
    status = 200 if result.outcome == Outcome.DONE else 409
    title = "Done" if status == 200 else "Not done"
    return render(request, "action_done.html", {"message": result.message, "title": title}, status)


def routes() -> list[BaseRoute]:
    return [
        Route("/proposals/{id}/approve", approve, methods=["POST"]),
        Route("/proposals/{id}/decline", decline, methods=["POST"]),
        Route("/proposals/{id}/alternative", alternative, methods=["POST"]),
        Route("/meetings/{id}/cancel", cancel, methods=["POST"]),
        Route("/stakeholders/snooze", snooze, methods=["POST"]),
        Route("/pause", pause, methods=["POST"]),
        Route("/resume", resume, methods=["POST"]),
        Route("/action", action_page, methods=["GET"]),
        Route("/action", action_post, methods=["POST"]),
    ]
