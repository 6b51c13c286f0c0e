"""Signed, expiring, single-use links: e-mailed sign-in links and a digest's action links.

A link carries an itsdangerous ``URLSafeTimedSerializer`` token signed with a key derived from
``GOODWILL_SECRET_KEY`` (purpose ``"link"``; a salt per link purpose), so changing the secret key
voids every link. The token holds the address, the purpose, a random nonce and its own expiry,
which is checked against the injected clock (the serializer's own timestamp is not used). A
signature alone cannot be single-use: :meth:`LinkTokens.redeem` inserts the nonce into
``used_links`` and only the first insert wins.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol
from urllib.parse import quote

from itsdangerous import BadData, URLSafeTimedSerializer

from scheduler.core.clock import Clock
from scheduler.entrypoints.web.session import derive_key

__all__ = ["LinkClaim", "LinkProblem", "LinkStore", "LinkTokens", "local_path"]

PURPOSES = ("signin", "action")
#: Why a token is refused (``None`` when it is fine).
LinkProblem = Literal["invalid", "expired", "used"]
#: The longest ``next`` path kept in a link; a longer one becomes "/".
_MAX_NEXT = 512


class LinkStore(Protocol):
    """What links need from the store (``scheduler.store.repository.Store`` has it)."""

    def use_link(self, nonce: str, email: str, expires_at: datetime, *, now: datetime) -> bool: ...

    def link_used(self, nonce: str) -> bool: ...


@dataclass(frozen=True)
class LinkClaim:
    """What a valid link says."""

    email: str
    purpose: str  # "signin" | "action"
    nonce: str
    expires_at: datetime
    next_path: str = "/"
    meeting_id: int | None = None
    action: str | None = None


def local_path(path: object) -> str:
    """``path`` when it is a path on this site (starts with one "/", no scheme, host or control
    characters, not too long), else "/": a link or a sign-in can never redirect off-site."""
    if not isinstance(path, str) or not path.startswith("/") or len(path) > _MAX_NEXT:
        return "/"
    if path.startswith(("//", "/\\")) or "\\" in path:
        return "/"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in path):
        return "/"
    return path


class LinkTokens:
    """Makes and checks signed links (see the module docstring).

    Args:
        secret_key: ``GOODWILL_SECRET_KEY``.
        base_url: the page's public URL (``GOODWILL_WEB__BASE_URL``), without a trailing "/".
        store: where used nonces are recorded (:class:`LinkStore`).
        clock: the injected clock; link expiry is measured on it.
    """

    def __init__(
        self,
        secret_key: str,
        base_url: str,
        store: LinkStore,
        clock: Clock,
        *,
        sign_in_ttl: timedelta = timedelta(minutes=15),
        action_ttl: timedelta = timedelta(days=7),
    ) -> None:
        if sign_in_ttl <= timedelta(0) or action_ttl <= timedelta(0):
            raise ValueError("link lifetimes must be positive")
        key = derive_key(secret_key, "link")
        self._serializers = {
            purpose: URLSafeTimedSerializer(key, salt=f"goodwill link {purpose}")
            for purpose in PURPOSES
        }
        self._base_url = base_url.rstrip("/")
        self._store = store
        self._clock = clock
        self._ttl = {"signin": sign_in_ttl, "action": action_ttl}

    # -- making links ------------------------------------------------------------------------

    def page(self) -> str:
        """A plain link to the page (no token): it never expires and asks to sign in."""
        return f"{self._base_url}/"

    def sign_in(self, email: str, next_path: str = "/") -> str:
        """A sign-in link for ``email`` that lands on ``next_path`` (a local path, else "/")."""
        token = self._dump("signin", email, {"next": local_path(next_path)})
        return f"{self._base_url}/signin/link?token={quote(token)}"

    def action(self, email: str, meeting_id: int, action: str) -> str:
        """A link that does ``action`` on ``meeting_id`` for ``email``, after a confirmation."""
        token = self._dump("action", email, {"m": int(meeting_id), "a": str(action)})
        return f"{self._base_url}/action?token={quote(token)}"

    def _dump(self, purpose: str, email: str, extra: dict[str, Any]) -> str:
        expires = self._clock.now() + self._ttl[purpose]
        payload = {
            "e": email.strip().lower(),
            "p": purpose,
            "n": secrets.token_urlsafe(24),
            "x": int(expires.timestamp()),
            **extra,
        }
        return str(self._serializers[purpose].dumps(payload))

    # -- checking links ----------------------------------------------------------------------

    def peek(self, token: str, purpose: str) -> LinkClaim | None:
        """The link's claim when it is valid, unexpired and unused; else None. Uses nothing."""
        claim, _problem = self.inspect(token, purpose)
        return claim

    def redeem(self, token: str, purpose: str) -> LinkClaim | None:
        """Like :meth:`peek`, and marks the link used: of two racing redeems one gets the claim."""
        claim, _problem = self.inspect(token, purpose, use=True)
        return claim

    def inspect(
        self, token: str, purpose: str, *, use: bool = False
    ) -> tuple[LinkClaim | None, LinkProblem | None]:
        """The claim, or None and why (``invalid``, ``expired`` or ``used``); ``use=True`` marks
        a valid link used (then a loser of a race gets ``used``)."""
        claim = self._load(token, purpose)
        if claim is None:
            return None, "invalid"
        now = self._clock.now()
        if now >= claim.expires_at:
            return None, "expired"
        if use:
            won = self._store.use_link(claim.nonce, claim.email, claim.expires_at, now=now)
        else:
            won = not self._store.link_used(claim.nonce)
        return (claim, None) if won else (None, "used")

    def _load(self, token: str, purpose: str) -> LinkClaim | None:
        serializer = self._serializers.get(purpose)
        if serializer is None or not isinstance(token, str) or not 0 < len(token) <= 2048:
            return None
        try:
            data = serializer.loads(token)
        except BadData:
            return None
        try:
            return _claim(data, purpose)
        except (KeyError, TypeError, ValueError, OverflowError):
            return None


def _claim(data: Any, purpose: str) -> LinkClaim | None:
    if not isinstance(data, dict) or data.get("p") != purpose:
        return None
    email, nonce, expiry = data["e"], data["n"], data["x"]
    if not isinstance(email, str) or not isinstance(nonce, str) or not isinstance(expiry, int):
        return None
    if not email or not nonce or len(nonce) > 64:
        return None
    expires_at = datetime.fromtimestamp(expiry, UTC)
    if purpose == "signin":
        return LinkClaim(email, purpose, nonce, expires_at, next_path=local_path(data.get("next")))
    meeting_id, action = data["m"], data["a"]
    if not isinstance(meeting_id, int) or not isinstance(action, str):
        return None
    return LinkClaim(email, purpose, nonce, expires_at, meeting_id=meeting_id, action=action)
