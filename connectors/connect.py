"""Interactive sign-in for per-user grants: ``goodwill connect google|microsoft --user EMAIL``.

The grant is stored through a :class:`~connectors.tokens.TokenStore` (the database's encrypted
credentials table in a deployment), never in a plain file and never printed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from connectors.tokens import TokenStore
from scheduler.core.errors import AuthorizationRevoked, ConfigurationError
from scheduler.settings import GoogleSettings, MicrosoftSettings

__all__ = ["connect_google", "connect_microsoft", "google_key"]


def google_key(email: str) -> str:
    return f"google:user:{email.lower()}"


def connect_google(
    settings: GoogleSettings,
    store: TokenStore,
    email: str,
    *,
    say: Callable[[str], None],
    browser: str | None = None,
    open_browser: bool = True,
    timeout_s: int = 300,
) -> None:
    """Run Google's installed-app flow (loopback redirect, PKCE) and store the refresh token.

    Args:
        browser: a :mod:`webbrowser` name (None: the system default).

    Raises:
        ConfigurationError: no OAuth client configured.
        AuthorizationRevoked: the user refused, or Google returned no refresh token.
    """
    try:
        from google_auth_oauthlib.flow import InstalledAppFlow
    except ImportError as exc:
        raise ConfigurationError("pip install 'goodwill[google]' to connect Google") from exc
    from connectors.google import SCOPES

    if settings.client_id is None or settings.client_secret is None:
        raise ConfigurationError(
            "set GOODWILL_GOOGLE__CLIENT_ID and GOODWILL_GOOGLE__CLIENT_SECRET (an OAuth client of "
            "type 'Desktop app') before connecting a user"
        )
    client = {
        "installed": {
            "client_id": settings.client_id,
            "client_secret": settings.client_secret.get_secret_value(),
            "auth_uri": settings.auth_uri,
            "token_uri": settings.token_uri,
            "redirect_uris": ["http://127.0.0.1"],
        }
    }
    flow = InstalledAppFlow.from_client_config(client, scopes=list(SCOPES))
    extra: dict[str, Any] = {"access_type": "offline", "prompt": "consent", "login_hint": email}
    say(f"Sign in to Google as {email} and allow goodwill to manage invites and read free/busy.")
    try:
        creds = flow.run_local_server(
            host="127.0.0.1",
            port=0,
            open_browser=open_browser,
            browser=browser,
            timeout_seconds=timeout_s,
            authorization_prompt_message="If no browser opened, visit: {url}",
            success_message="goodwill is connected. You can close this window.",
            **extra,
        )
    except Exception as exc:  # oauthlib raises a zoo of errors; none is worth a traceback here
        raise AuthorizationRevoked(
            f"Google sign-in failed: {type(exc).__name__}", provider="google"
        ) from exc
    if not getattr(creds, "refresh_token", None):
        raise AuthorizationRevoked(
            "Google returned no refresh token: remove goodwill's access at "
            "myaccount.google.com/permissions and connect again",
            provider="google",
        )
    store.save(google_key(email), json.dumps({"refresh_token": creds.refresh_token}).encode())


def connect_microsoft(
    settings: MicrosoftSettings, store: TokenStore, email: str, *, say: Callable[[str], None]
) -> str:
    """Run the device-code flow; msal's token cache is stored encrypted. Returns the username."""
    from connectors.microsoft_auth import DelegatedTokens

    if settings.client_id is None:
        raise ConfigurationError("set GOODWILL_MICROSOFT__CLIENT_ID (the app registration's id)")
    return DelegatedTokens(settings, store, email).device_flow_login(say)
