"""Connector registry: provider slug -> the connector objects serving one user.

Each provider's SDK is imported lazily, so an install without the ``google`` extra still runs
the ICS and CalDAV paths; a missing SDK names the extra to install.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from connectors.lru import Lru
from connectors.tokens import TokenStore
from scheduler.core.errors import AuthorizationRevoked, ConfigurationError
from scheduler.core.policy import Policy
from scheduler.core.ports import CalendarBackend
from scheduler.settings import Settings

__all__ = ["BackendRegistry", "StoreTokenStore"]


class StoreTokenStore:
    """A :class:`TokenStore` over the database's encrypted ``credentials`` table.

    Keys look like ``<provider>:…:<email>``: the provider is the first part, the e-mail (or app
    id) the last, so revocations land on the same row the report and ``/readyz`` read.
    """

    def __init__(self, store: Any, clock: Callable[[], datetime]) -> None:
        self._store = store
        self._now = clock

    @staticmethod
    def _split(key: str) -> tuple[str, str]:
        parts = key.split(":")
        return parts[-1], parts[0]

    def load(self, key: str) -> bytes | None:
        email, provider = self._split(key)
        blob: bytes | None = self._store.load_credential(email, provider)
        return blob or None

    def save(self, key: str, blob: bytes) -> None:
        email, provider = self._split(key)
        self._store.save_credential(email, provider, blob, now=self._now())


#: Owners' delegated Google credentials kept per backend kept (see ``_service_account``).
_CREDENTIALS_PER_BACKEND = 16


def _missing(extra: str, exc: ImportError) -> ConfigurationError:
    return ConfigurationError(f"{exc.name} is not installed: pip install 'goodwill[{extra}]'")


class BackendRegistry:
    """Builds (and caches) one :class:`CalendarBackend` per (provider, owner).

    The cache is bounded: at most ``GOODWILL_LIMITS__CLIENT_CACHE_SIZE`` backends are kept,
    least recently used out, so a worker that plans many owners keeps the memory of the last
    few hundred (each backend holds its API clients, HTTP connections and token caches).
    Whatever serves every owner alike is built once and shared: the Google connector (its
    per-owner API clients in an LRU of the same size; the service-account key parsed once, one
    delegation per owner: :class:`~connectors.google_keys.ServiceAccountKey`) and, with an
    app-only secret, the Microsoft client and its token.
    """

    def __init__(self, settings: Settings, *, token_store: TokenStore | None = None) -> None:
        self.settings = settings
        self.token_store = token_store
        self._cache: Lru[tuple[str, str], CalendarBackend] = Lru(settings.limits.client_cache_size)
        self._lock = threading.Lock()
        self._shared: dict[str, Any] = {}

    @property
    def cache(self) -> Lru[tuple[str, str], CalendarBackend]:
        """The per-owner backends kept (for tests and benchmarks)."""
        return self._cache

    def __call__(self, policy: Policy) -> CalendarBackend:
        provider = "ics" if self.settings.calendars_dir is not None else policy.calendar.provider
        owner = "" if self._owner_agnostic(provider) else policy.owner.email.lower()
        key = (provider, owner)
        found = self._cache.get(key)
        if found is not None:
            return found
        with self._lock:  # one build per owner at a time: building may do I/O
            found = self._cache.get(key)
            if found is None:
                found = self._cache.put(key, self._build(provider, policy))
            return found

    def _owner_agnostic(self, provider: str) -> bool:
        """Whether one backend serves every owner: Google (its clients are per owner inside,
        bounded by the same setting, over one connection per thread), and Microsoft with an
        app-only secret (one token for the tenant)."""
        if provider == "google":
            return True
        return provider == "microsoft" and self.settings.microsoft.client_secret is not None

    def _shared_once(self, name: str, make: Callable[[], Any]) -> Any:
        """One object per registry (called under ``self._lock``)."""
        if name not in self._shared:
            self._shared[name] = make()
        return self._shared[name]

    def _tokens(self, provider: str, owner: str) -> TokenStore:
        if self.token_store is None:
            app_wide = {
                "google": "a service account (GOODWILL_GOOGLE__SERVICE_ACCOUNT_FILE)",
                "microsoft": "an app-only secret (GOODWILL_MICROSOFT__CLIENT_SECRET)",
            }[provider]
            raise ConfigurationError(
                f"no {provider} grant for {owner}: configure {app_wide}, or set "
                f"GOODWILL_SECRET_KEY and run: goodwill connect {provider} --user {owner}"
            )
        return self.token_store

    def _service_account(self, path: Path, token_uri: str) -> Any:
        """The process's :class:`~connectors.google_keys.ServiceAccountKey` (under the lock)."""
        from connectors.google import SCOPES
        from connectors.google_keys import ServiceAccountKey

        # A delegated credential (with its token) is ~2 KB against ~0.6 MiB for a backend:
        # more are kept, so a backend evicted and built again reuses the owner's token.
        size = _CREDENTIALS_PER_BACKEND * self.settings.limits.client_cache_size
        return self._shared_once(
            f"google-sa:{path}:{token_uri}",
            lambda: ServiceAccountKey(path, token_uri, SCOPES, cache_size=size),
        )

    def _build(self, provider: str, policy: Policy) -> CalendarBackend:
        s = self.settings
        if provider == "ics":
            if s.calendars_dir is not None:
                from connectors.ics import IcsDirectory

                d = IcsDirectory(s.calendars_dir, limits=s.limits)
                return CalendarBackend("ics", d, d, d, d)
            if policy.calendar.url:
                from connectors.ics import IcsFeed

                # Read-only: the owner's published feed. Stakeholders without a readable
                # calendar are skipped as unavailable; nothing can be booked from a feed.
                feed = IcsFeed({policy.owner.email: policy.calendar.url}, limits=s.limits)
                return CalendarBackend("ics", feed)
            raise ConfigurationError(
                "provider 'ics' reads a directory of <email>.ics files (GOODWILL_CALENDARS_DIR) "
                "or the owner's feed (calendar.url in the policy)"
            )
        if provider == "google":
            try:
                from connectors.google import GoogleCalendar, user_credentials
            except ImportError as exc:
                raise _missing("google", exc) from exc
            g = s.google
            if g.service_account_file is None:
                self._tokens("google", policy.owner.email)  # fail now, with the fix, not mid-call
            key_file = g.service_account_file
            delegated = None if key_file is None else self._service_account(key_file, g.token_uri)

            def credentials_for(owner: str) -> Any:
                if delegated is not None:
                    return delegated(owner)
                blob = self._tokens("google", owner).load(f"google:user:{owner}")
                if not blob or g.client_id is None or g.client_secret is None:
                    raise AuthorizationRevoked(
                        "no Google grant for this user: run goodwill connect google --user EMAIL",
                        provider="google",
                    )
                grant = json.loads(blob)
                return user_credentials(
                    grant["refresh_token"],
                    g.client_id,
                    g.client_secret.get_secret_value(),
                    g.token_uri,
                )

            gc = GoogleCalendar(g, credentials_for, max_clients=s.limits.client_cache_size)
            return CalendarBackend("google", gc, gc, gc, gc)
        if provider == "microsoft":
            try:
                from connectors.microsoft import build_graph_calendar
            except ImportError as exc:
                raise _missing("microsoft", exc) from exc
            tokens = (
                self.token_store
                if s.microsoft.client_secret is not None and self.token_store is not None
                else None
            )
            if s.microsoft.client_secret is not None and tokens is None:
                from connectors.tokens import MemoryTokenStore

                tokens = MemoryTokenStore()  # app-only: msal's cache lives for this process
            mc = build_graph_calendar(
                s.microsoft,
                tokens or self._tokens("microsoft", policy.owner.email),
                user_email=policy.owner.email,
            )
            return CalendarBackend("microsoft", mc, mc, mc, mc)
        if provider == "caldav":
            try:
                from connectors.caldav import CalDAVCalendar
                from connectors.imip import ImipSender
            except ImportError as exc:
                raise _missing("caldav", exc) from exc
            c = s.caldav
            url = policy.calendar.url or c.url
            if url is None:
                raise ConfigurationError("CalDAV needs a server URL: set GOODWILL_CALDAV__URL")
            sender = ImipSender(s.smtp) if s.smtp.sender else None
            cd = CalDAVCalendar(
                url,
                c.username,
                c.password.get_secret_value() if c.password else None,
                server=c.server,
                calendar_path=c.calendar_path,
                timeout_s=c.timeout_s,
                imip_sender=sender,
                limits=s.limits,
            )
            return CalendarBackend("caldav", cd, cd, cd, cd)
        raise ConfigurationError(f"unknown calendar provider {provider!r}")
