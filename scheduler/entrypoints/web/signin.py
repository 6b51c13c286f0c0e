"""Sign-in to the owner's page: e-mailed links and Google / Microsoft (OpenID Connect).

Routes (:func:`signin_routes`): ``GET /signin`` (the page), ``POST /signin/email`` (send a link),
``GET /signin/link`` (confirm; a GET never uses a link), ``POST /signin/link`` (use it once and
sign in), ``GET /signin/{google,microsoft}`` and ``…/callback`` (OpenID Connect), ``POST
/signout``. Only the address of a user with a policy file signs in. Every POST is CSRF-checked.

Re-exports :class:`LinkTokens`/:class:`LinkClaim` (``signin_links``) and :class:`OidcClients`
(``signin_oidc``), so callers import them from here.
"""

from __future__ import annotations

import logging
import re
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlencode

from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from scheduler.core.errors import ConfigurationError
from scheduler.entrypoints.web.deps import WebDeps, deps_of
from scheduler.entrypoints.web.session import check_csrf, current_email, sign_in, sign_out
from scheduler.entrypoints.web.signin_links import LinkClaim, LinkProblem, LinkTokens, local_path
from scheduler.entrypoints.web.signin_oidc import NAMES, PROVIDERS, OidcClients, OidcRefused

__all__ = ["LinkClaim", "LinkTokens", "OidcClients", "link_mail", "signin_routes"]

log = logging.getLogger(__name__)

#: The longest e-mail address the form accepts (RFC 5321's path limit).
MAX_EMAIL = 254
#: A sign-in form body larger than this many bytes is refused before it is parsed.
MAX_FORM_BYTES = 8192
_NEXT_KEY = "signin_next"


def signin_routes() -> list[BaseRoute]:
    """The sign-in routes, for the web app to mount (they need ``session_middleware``)."""
    return [
        Route("/signin", signin_page, methods=["GET"]),
        Route("/signin/email", email_link, methods=["POST"]),
        Route("/signin/link", link_page, methods=["GET"]),
        Route("/signin/link", link_redeem, methods=["POST"]),
        Route("/signout", signout, methods=["POST"]),
        Route("/signin/{provider}", provider_start, methods=["GET"]),
        Route("/signin/{provider}/callback", provider_callback, methods=["GET"]),
    ]


# -- pages ------------------------------------------------------------------------------------


def _render(request: Request, name: str, status: int = 200, **context: Any) -> Response:
    deps = deps_of(request)
    values = {"request": request, "signed_in": current_email(request), "flash": None, **context}
    response: Response = deps.templates.TemplateResponse(request, name, values, status_code=status)
    return response


def _problem(request: Request, status: int, title: str, message: str, **extra: Any) -> Response:
    return _render(request, "signin_problem.html", status, title=title, message=message, **extra)


_LINK_PROBLEMS: dict[LinkProblem, tuple[int, str, str]] = {
    "invalid": (400, "This sign-in link does not work",
                "The link is incomplete or was not made by this goodwill (or goodwill's secret "
                "key changed since). Ask for a new one below."),
    "expired": (410, "This sign-in link has expired",
                "Sign-in links work for a short time only. Ask for a new one below."),
    "used": (410, "This sign-in link was used already",
             "Each sign-in link works once. If it was not you who used it, tell your goodwill "
             "administrator. Ask for a new one below."),
}  # fmt: skip


def _link_problem(request: Request, problem: LinkProblem | None) -> Response:
    status, title, message = _LINK_PROBLEMS[problem or "invalid"]
    return _problem(request, status, title, message)


async def signin_page(request: Request) -> Response:
    deps = deps_of(request)
    providers = deps.oidc.enabled if deps.oidc is not None else []
    next_path = local_path(request.query_params.get("next", "/"))
    query = "" if next_path == "/" else "?" + urlencode({"next": next_path})
    return _render(
        request,
        "signin.html",
        providers=[(p, NAMES[p], f"/signin/{p}{query}") for p in providers],
        email_enabled=_email_enabled(deps),
        next_path=next_path,
        max_email=MAX_EMAIL,
    )


async def _small_form(request: Request) -> dict[str, Any]:
    """The CSRF-checked form, refused (413) when its body is larger than MAX_FORM_BYTES."""
    length = request.headers.get("content-length")
    if length is None or not length.isdigit() or int(length) > MAX_FORM_BYTES:
        raise HTTPException(413, "This form is too large.")
    return await check_csrf(request)


def _address(value: Any) -> str | None:
    """A plausible e-mail address from the form (lower case), or None."""
    if not isinstance(value, str):
        return None
    text = value.strip().lower()
    if not 3 <= len(text) <= MAX_EMAIL or text.count("@") != 1 or any(c.isspace() for c in text):
        return None
    local, domain = text.split("@")
    return text if local and domain else None


async def email_link(request: Request) -> Response:
    """Send a sign-in link when the address has a policy; the same answer either way (the mail
    goes out after the response, so neither the page nor its timing tells who has a policy)."""
    form = await _small_form(request)
    deps = deps_of(request)
    if not _email_enabled(deps):
        raise HTTPException(404, "E-mailed sign-in links are not set up here.")
    email = _address(form.get("email"))
    if email is None:
        return _problem(request, 400, "That is not an e-mail address",
                        "Enter the e-mail address your goodwill policy names.")  # fmt: skip
    next_path = local_path(form.get("next", "/"))
    response = _render(request, "signin_sent.html", email=email,
                       minutes=_minutes(deps))  # fmt: skip
    response.background = BackgroundTask(_send_link, deps, email, next_path)
    return response


def _email_enabled(deps: WebDeps) -> bool:
    """A link can be e-mailed: a mailer exists and ``GOODWILL_SMTP__SENDER`` is set."""
    return deps.mailer is not None and bool(deps.app.settings.smtp.sender)


def _minutes(deps: WebDeps) -> int:
    return max(1, deps.app.settings.web.link_ttl_s // 60)


def _send_link(deps: WebDeps, email: str, next_path: str) -> None:
    user = deps.app.store.get_user_by_email(email)
    if user is None or user.policy_missing_since is not None or not _email_enabled(deps):
        return
    link = deps.links.sign_in(user.email, next_path)
    try:
        deps.mailer.send(link_mail(deps, user.email, link))
    except Exception as exc:  # a mail server problem must not reach the visitor
        reason = _scrubbed(str(exc), user.email, link)
        log.warning(
            "a sign-in link mail failed: %s: %s", type(exc).__name__, reason,
            extra={"error": type(exc).__name__},
        )  # fmt: skip


_ADDRESS = re.compile(r"[^\s<>\"'@]+@[^\s<>\"']+")


def _scrubbed(reason: str, email: str, link: str) -> str:
    """``reason`` without the address, the link or its token (and any other address)."""
    token = link.partition("token=")[2]
    for secret in (link, token, email):
        if secret:
            reason = reason.replace(secret, "…")
    return _ADDRESS.sub("…", reason)[:300] or "no reason given"


def link_mail(deps: WebDeps, email: str, link: str) -> EmailMessage:
    """The plain-text e-mail that carries a sign-in link (From ``GOODWILL_SMTP__SENDER``)."""
    settings = deps.app.settings
    if not settings.smtp.sender:
        raise ConfigurationError("e-mailed sign-in links need GOODWILL_SMTP__SENDER")
    message = EmailMessage()
    message["From"] = settings.smtp.sender
    message["To"] = email
    message["Subject"] = "Your goodwill sign-in link"
    message.set_content(
        "Someone (hopefully you) asked to sign in to goodwill with this address.\n\n"
        f"Open this link to sign in:\n{link}\n\n"
        f"It works once, within {_minutes(deps)} minutes. If you did not ask for it, ignore "
        "this e-mail: nobody can sign in without the link.\n"
    )
    return message


async def link_page(request: Request) -> Response:
    """The confirmation page of an e-mailed link: a GET never uses the link (mail scanners and
    link previews open links), the "Sign in" button POSTs."""
    deps = deps_of(request)
    token = request.query_params.get("token", "")
    claim, problem = await run_in_threadpool(deps.links.inspect, token, "signin")
    if claim is None:
        return _link_problem(request, problem)
    return _render(request, "signin_link.html", token=token, email=claim.email)


async def link_redeem(request: Request) -> Response:
    form = await _small_form(request)
    deps = deps_of(request)
    token = form.get("token")
    if not isinstance(token, str):
        return _link_problem(request, "invalid")
    claim, problem = await run_in_threadpool(deps.links.inspect, token, "signin", use=True)
    if claim is None:
        return _link_problem(request, problem)
    refused = await _refuse_without_policy(request, claim.email)
    if refused is not None:
        return refused
    sign_in(request, claim.email)
    return RedirectResponse(claim.next_path, status_code=303)


async def _refuse_without_policy(request: Request, email: str) -> Response | None:
    """A 403 page unless ``email`` belongs to a user whose policy file is in place."""
    store = deps_of(request).app.store
    user = await run_in_threadpool(store.get_user_by_email, email)
    if user is not None and user.policy_missing_since is None:
        return None
    return _problem(
        request, 403, "No goodwill policy for this address",
        f"{email} has no goodwill policy, so it cannot sign in here. Sign in with the address "
        "your policy file names, or ask your goodwill administrator to add a policy for "
        f"{email}.", address=email,
    )  # fmt: skip


async def signout(request: Request) -> Response:
    await _small_form(request)
    sign_out(request)
    return RedirectResponse("/signin", status_code=303)


# -- OpenID Connect -----------------------------------------------------------------------------


def _oidc(request: Request) -> tuple[OidcClients, str]:
    provider = str(request.path_params["provider"])
    oidc = deps_of(request).oidc
    if provider not in PROVIDERS or oidc is None or provider not in oidc.enabled:
        raise HTTPException(404, "This sign-in provider is not set up.")
    return oidc, provider


async def provider_start(request: Request) -> Response:
    oidc, provider = _oidc(request)
    next_path = local_path(request.query_params.get("next", "/"))
    # One sign-in in flight per browser: authlib keeps each start's state (about 1 kB) in the
    # cookie for an hour, and a few abandoned starts would outgrow the browser's 4 kB limit.
    for key in [k for k in request.session if k.startswith("_state_")]:
        del request.session[key]
    request.session[_NEXT_KEY] = next_path
    redirect_uri = f"{deps_of(request).base_url}/signin/{provider}/callback"
    try:
        return await oidc.redirect(request, provider, redirect_uri)
    except OidcRefused as exc:
        return _problem(request, 502, f"Sign-in with {NAMES[provider]} is unavailable", str(exc))


async def provider_callback(request: Request) -> Response:
    oidc, provider = _oidc(request)
    try:
        identity = await oidc.identify(request, provider)
    except OidcRefused as exc:
        return _problem(request, 400, f"Sign-in with {NAMES[provider]} failed", str(exc))
    refused = await _refuse_without_policy(request, identity.email)
    if refused is not None:
        return refused
    next_path = local_path(request.session.get(_NEXT_KEY, "/"))
    sign_in(request, identity.email)
    return RedirectResponse(next_path, status_code=303)
