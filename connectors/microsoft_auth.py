"""Access tokens for Microsoft Graph through msal, with the token cache encrypted at rest.

Two providers implement :class:`TokenProvider`:

* :class:`AppOnlyTokens` — client credentials (``ConfidentialClientApplication``); reads every
  mailbox the tenant admin scoped the app to.
* :class:`DelegatedTokens` — one signed-in user (``PublicClientApplication``), connected once with
  the device-code flow (:meth:`DelegatedTokens.device_flow_login`, behind
  ``goodwill connect microsoft --user EMAIL``) and refreshed silently afterwards.

msal's ``SerializableTokenCache`` is plain JSON (refresh tokens included), so it is persisted only
through a :class:`~connectors.tokens.TokenStore` (which encrypts it) and only when msal says it
changed (``has_state_changed``), so a cache hit costs no write.

msal reports token-endpoint errors as dicts, raises ``MsalServiceError`` for 5xx and lets
``requests`` exceptions through; :func:`_msal_errors` and :func:`_check_result` translate all
of them into :mod:`scheduler.core.errors` classes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Protocol
from urllib.parse import urlsplit

import msal
import requests

from connectors.tokens import TokenStore
from scheduler.core.errors import (
    AuthorizationRevoked,
    ConfigurationError,
    InvalidRequest,
    ProviderUnavailable,
)
from scheduler.settings import MicrosoftSettings

__all__ = [
    "AppOnlyTokens",
    "DelegatedTokens",
    "TokenProvider",
    "graph_resource",
    "pinned_session",
]

_PROVIDER = "microsoft"

#: msal error codes meaning the stored grant (or the app's secret) no longer works.
_REVOKED_ERRORS = frozenset(
    {
        "invalid_grant",
        "interaction_required",
        "consent_required",
        "login_required",
        "invalid_client",
        "unauthorized_client",
    }
)
_TRANSIENT_ERRORS = frozenset({"temporarily_unavailable", "server_error"})


class TokenProvider(Protocol):
    """Hands out a bearer token for Graph.

    ``force_refresh=True`` is used once after Graph answered 401: the cached access token is
    dropped and a new one is obtained from the token endpoint.
    """

    def access_token(self, *, force_refresh: bool = False) -> str: ...


class _PinnedSession(requests.Session):
    """A ``requests.Session`` whose ``verify``/timeout apply even when the env sets a CA bundle.

    requests lets ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` override ``Session.verify`` (see
    ``Session.merge_environment_settings``), and msal passes no ``verify=`` per call, so a
    configured ``ca_bundle`` would be silently ignored. Setting ``verify`` per request wins over the
    environment, while proxies from the environment keep working (``trust_env`` stays on).
    """

    def __init__(self, verify: bool | str, timeout_s: float) -> None:
        super().__init__()
        self.verify = verify
        self._timeout_s = timeout_s

    def request(
        self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any
    ) -> requests.Response:
        kwargs.setdefault("verify", self.verify)
        kwargs.setdefault("timeout", self._timeout_s)
        return super().request(method, url, *args, **kwargs)


def pinned_session(settings: MicrosoftSettings) -> requests.Session:
    """A session trusting ``settings.ca_bundle`` (when set), with ``settings.timeout_s``."""
    verify: bool | str = str(settings.ca_bundle) if settings.ca_bundle else True
    return _PinnedSession(verify, settings.timeout_s)


def graph_resource(settings: MicrosoftSettings) -> str:
    """The token audience for the configured Graph endpoint (``https://graph.microsoft.com``).

    Derived from ``graph_base_url`` so national clouds (graph.microsoft.us, …) get the right scope.
    """
    parts = urlsplit(settings.graph_base_url)
    return f"{parts.scheme}://{parts.netloc}"


def _authority(settings: MicrosoftSettings) -> str:
    return f"{settings.authority_host.rstrip('/')}/{settings.tenant}"


def _instance_discovery(settings: MicrosoftSettings) -> bool:
    # Instance discovery asks login.microsoftonline.com to vouch for the authority host. For the
    # public and sovereign clouds msal knows the host already; for any other host (a test
    # authority, an on-prem ADFS-like proxy) the call would leave the network boundary and fail,
    # so it is switched off there.
    host = urlsplit(settings.authority_host).hostname or ""
    return host in msal.authority.WELL_KNOWN_AUTHORITY_HOSTS


@contextmanager
def _msal_errors() -> Iterator[None]:
    """Translate what msal lets escape (network errors, 5xx) into scheduler errors."""
    try:
        yield
    except requests.RequestException as exc:
        raise ProviderUnavailable(f"token endpoint unreachable: {exc}", provider=_PROVIDER) from exc
    except msal.exceptions.MsalServiceError as exc:
        raise ProviderUnavailable(f"token endpoint failed: {exc}", provider=_PROVIDER) from exc
    except ValueError as exc:  # OIDC discovery 4xx: the tenant or authority is wrong
        raise ConfigurationError(f"Microsoft authority rejected: {exc}") from exc


def _check_result(result: Mapping[str, Any] | None, *, what: str) -> str:
    """The access token from an msal result dict, or the matching scheduler error."""
    if result is None:
        raise AuthorizationRevoked(
            f"{what}: no usable token in the cache; reconnect with goodwill connect microsoft",
            provider=_PROVIDER,
        )
    token = result.get("access_token")
    if isinstance(token, str) and token:
        return token
    error = str(result.get("error", "unknown_error"))
    description = str(result.get("error_description", "")).splitlines()[0:1]
    message = f"{what}: {error} {' '.join(description)}".strip()
    if error in _REVOKED_ERRORS:
        raise AuthorizationRevoked(message, provider=_PROVIDER)
    if error in _TRANSIENT_ERRORS:
        raise ProviderUnavailable(message, provider=_PROVIDER)
    raise InvalidRequest(message, provider=_PROVIDER)


class _CacheBinding:
    """An msal cache bound to one store key: loaded once, saved only when it changed."""

    def __init__(self, store: TokenStore, key: str) -> None:
        self.store = store
        self.key = key
        self.cache = msal.SerializableTokenCache()
        blob = store.load(key)
        if blob:
            self.cache.deserialize(blob.decode("utf-8"))

    def persist(self) -> None:
        if self.cache.has_state_changed:
            self.store.save(self.key, self.cache.serialize().encode("utf-8"))


class AppOnlyTokens:
    """Client-credentials tokens for one tenant (Graph application permissions).

    Args:
        settings: ``client_id``, ``client_secret``, ``tenant`` (a real tenant id or domain:
            ``organizations``/``common`` do not work for app-only), ``authority_host``,
            ``ca_bundle`` and ``timeout_s``.
        token_store: where the encrypted msal cache lives (key ``microsoft:app:<tenant>:<client>``).
        session: the HTTP session msal uses; default :func:`pinned_session`.
    """

    def __init__(
        self,
        settings: MicrosoftSettings,
        token_store: TokenStore,
        *,
        session: requests.Session | None = None,
    ) -> None:
        if not settings.client_id or settings.client_secret is None:
            raise ConfigurationError(
                "app-only Microsoft access needs GOODWILL_MICROSOFT__CLIENT_ID and __CLIENT_SECRET"
            )
        if settings.tenant.lower() in {"common", "organizations", "consumers"}:
            raise ConfigurationError(
                "app-only Microsoft access needs a tenant id or domain in"
                f" GOODWILL_MICROSOFT__TENANT, not {settings.tenant!r}"
            )
        self._scopes = [f"{graph_resource(settings)}/.default"]
        self._lock = threading.Lock()
        self._binding = _CacheBinding(
            token_store, f"microsoft:app:{settings.tenant}:{settings.client_id}"
        )
        self._app = msal.ConfidentialClientApplication(
            settings.client_id,
            client_credential=settings.client_secret.get_secret_value(),
            authority=_authority(settings),
            instance_discovery=_instance_discovery(settings),
            http_client=session or pinned_session(settings),
            token_cache=self._binding.cache,
        )

    def access_token(self, *, force_refresh: bool = False) -> str:
        """A bearer token for Graph; from the cache unless it expires or ``force_refresh``."""
        with self._lock:
            if force_refresh:
                # acquire_token_for_client refuses force_refresh, so drop the cached access
                # tokens instead; the next call goes to the token endpoint.
                cache = self._binding.cache
                for item in list(cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN)):
                    cache.remove_at(item)
            with _msal_errors():
                result = self._app.acquire_token_for_client(scopes=self._scopes)
            token = _check_result(result, what="app-only token")
            self._binding.persist()
            return token


class DelegatedTokens:
    """Tokens for one signed-in user, from a cache filled by :meth:`device_flow_login`.

    Args:
        settings: ``client_id`` of a public client app registration, ``tenant``,
            ``authority_host``, ``ca_bundle``, ``timeout_s``.
        token_store: the encrypted msal cache (key ``microsoft:user:<email>``).
        user_email: the mailbox this provider speaks for.
        session: the HTTP session msal uses; default :func:`pinned_session`.
    """

    def __init__(
        self,
        settings: MicrosoftSettings,
        token_store: TokenStore,
        user_email: str,
        *,
        session: requests.Session | None = None,
    ) -> None:
        if not settings.client_id:
            raise ConfigurationError(
                "delegated Microsoft access needs GOODWILL_MICROSOFT__CLIENT_ID"
            )
        self.user_email = user_email
        resource = graph_resource(settings)
        # Calendars.ReadWrite covers create/cancel and reading the user's own events;
        # getSchedule of colleagues works with it too (Calendars.Read is the minimum).
        self._scopes = [f"{resource}/Calendars.ReadWrite"]
        self._lock = threading.Lock()
        self._binding = _CacheBinding(token_store, f"microsoft:user:{user_email.lower()}")
        self._app = msal.PublicClientApplication(
            settings.client_id,
            authority=_authority(settings),
            instance_discovery=_instance_discovery(settings),
            http_client=session or pinned_session(settings),
            token_cache=self._binding.cache,
        )

    def _account(self) -> dict[str, Any] | None:
        accounts: list[dict[str, Any]] = self._app.get_accounts(username=self.user_email)
        return accounts[0] if accounts else None

    def access_token(self, *, force_refresh: bool = False) -> str:
        """A bearer token for the user; refreshes silently with the cached refresh token.

        Raises:
            AuthorizationRevoked: never connected, or the refresh token was revoked/expired.
        """
        with self._lock:
            account = self._account()
            if account is None:
                raise AuthorizationRevoked(
                    f"no Microsoft sign-in stored for this user; run goodwill connect microsoft"
                    f" --user {self.user_email}",
                    provider=_PROVIDER,
                )
            with _msal_errors():
                result = self._app.acquire_token_silent_with_error(
                    self._scopes, account=account, force_refresh=force_refresh
                )
            try:
                return _check_result(result, what="delegated token")
            finally:
                # A refresh rotates the refresh token; persist it even if the result is an error
                # (msal may have removed a dead refresh token).
                self._binding.persist()

    def device_flow_login(self, prompt: Callable[[str], None]) -> str:
        """Connect the user with the device-code flow and store the tokens.

        Args:
            prompt: shows msal's instruction ("To sign in, use a web browser to open … and enter
                the code …") to the person at the terminal.

        Returns:
            The signed-in account's username.

        Raises:
            AuthorizationRevoked: the user declined, the code expired, or a different account
                signed in than ``user_email``.
        """
        with self._lock:
            with _msal_errors():
                flow: dict[str, Any] = self._app.initiate_device_flow(scopes=self._scopes)
            if "user_code" not in flow:
                raise InvalidRequest(
                    f"device flow could not start: {flow.get('error')}"
                    f" {flow.get('error_description', '')}".strip(),
                    provider=_PROVIDER,
                )
            prompt(str(flow["message"]))
            with _msal_errors():
                result = self._app.acquire_token_by_device_flow(flow)
            _check_result(result, what="device sign-in")
            username = str((result.get("id_token_claims") or {}).get("preferred_username", ""))
            if username.lower() != self.user_email.lower():
                raise AuthorizationRevoked(
                    f"signed in as {username or 'an unknown account'}, expected {self.user_email};"
                    " sign in with the right account",
                    provider=_PROVIDER,
                )
            self._binding.persist()
            return username
