"""The session cookie, the signed-in owner and CSRF tokens, in one place.

The session is Starlette's ``SessionMiddleware``: a cookie signed (itsdangerous) with a key
derived from ``GOODWILL_SECRET_KEY``, HttpOnly, SameSite=Lax, Secure when the page is served
over https. Changing the secret key therefore ends every session. The cookie holds the owner's
e-mail address and a CSRF token, nothing else.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any

from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request

__all__ = [
    "COOKIE_NAME",
    "CSRF_FIELD",
    "check_csrf",
    "csrf_token",
    "current_email",
    "derive_key",
    "session_middleware",
    "sign_in",
    "sign_out",
]

COOKIE_NAME = "goodwill_session"
#: The hidden form field every POST carries.
CSRF_FIELD = "csrf_token"
#: A session lasts at most this long (seconds) before the owner signs in again.
SESSION_MAX_AGE_S = 12 * 3600

_USER = "user"
_CSRF = "csrf"


def derive_key(secret_key: str, purpose: str) -> str:
    """A key for one purpose (``"session"``, ``"link"`` …) derived from ``GOODWILL_SECRET_KEY``,
    so that no two uses share a key and the root key itself never signs anything."""
    label = f"goodwill web {purpose} v1".encode()
    return hmac.new(secret_key.encode(), label, hashlib.sha256).hexdigest()


def session_middleware(secret_key: str, base_url: str) -> Middleware:
    return Middleware(
        SessionMiddleware,
        secret_key=derive_key(secret_key, "session"),
        session_cookie=COOKIE_NAME,
        max_age=SESSION_MAX_AGE_S,
        same_site="lax",
        https_only=base_url.startswith("https://"),
    )


def current_email(request: Request) -> str | None:
    """The signed-in owner's e-mail address (lower case), or None."""
    email = request.session.get(_USER)
    return email if isinstance(email, str) and email else None


def sign_in(request: Request, email: str) -> None:
    """Start a fresh session for ``email`` (a new CSRF token; nothing of an earlier one kept)."""
    request.session.clear()
    request.session[_USER] = email.strip().lower()
    request.session[_CSRF] = secrets.token_urlsafe(32)


def sign_out(request: Request) -> None:
    request.session.clear()


def csrf_token(request: Request) -> str:
    """The session's CSRF token (made on first use, also for a visitor not signed in yet)."""
    token = request.session.get(_CSRF)
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        request.session[_CSRF] = token
    return token


async def check_csrf(request: Request) -> dict[str, Any]:
    """Read a POSTed form and check its CSRF field against the session: 403 when it is missing
    or wrong. Returns the form's fields (first value of each)."""
    form = await request.form()
    sent = form.get(CSRF_FIELD)
    expected = request.session.get(_CSRF)
    if (
        not isinstance(sent, str)
        or not isinstance(expected, str)
        or not hmac.compare_digest(sent.encode(), expected.encode())
    ):
        raise HTTPException(403, "This form has expired or did not come from goodwill's page: "
                            "go back, reload the page and try again.")  # fmt: skip
    return {k: v for k, v in form.items()}
