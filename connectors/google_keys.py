"""The Google service-account key, read and parsed once per process; one delegation per owner.

With domain-wide delegation every owner is served by the same key file: reading it and parsing
its RSA key for each owner cost almost half of a planning round. :class:`ServiceAccountKey`
reads and parses the file once per process (again only when the file's path, size or
modification time changes: a rotated key is picked up) and derives each owner's delegated
credentials from the parsed key with ``with_subject``, which shares the signer. The delegated
credentials are kept per owner (least recently used out, ``GOODWILL_LIMITS__CLIENT_CACHE_SIZE``),
so an owner's access token is fetched once and used by every worker thread until it expires;
google-auth refreshes it then.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.auth.credentials import Credentials
from google.oauth2 import service_account

from connectors.lru import Lru
from scheduler.core.errors import ConfigurationError

__all__ = ["ServiceAccountKey"]


@dataclass(frozen=True, slots=True)
class _Stamp:
    """What identifies one version of the key file without reading it."""

    path: str
    size: int
    mtime_ns: int
    inode: int


class ServiceAccountKey:
    """Delegated credentials for any owner from one service-account key file.

    Args:
        path: the key file (``GOODWILL_GOOGLE__SERVICE_ACCOUNT_FILE``).
        token_uri: the token endpoint (``GoogleSettings.token_uri``); overrides the file's.
        scopes: the OAuth scopes asked for.
        cache_size: owners whose delegated credentials (and tokens) are kept.

    ``reads`` counts the times the file was read and parsed, for tests and benchmarks.
    """

    def __init__(
        self, path: Path, token_uri: str, scopes: tuple[str, ...], *, cache_size: int = 256
    ) -> None:
        self.path = Path(path)
        self.token_uri = token_uri
        self.scopes = scopes
        self.reads = 0
        self._lock = threading.Lock()
        self._stamp: _Stamp | None = None
        self._base: Any = None
        self._owners: Lru[tuple[_Stamp, str], Credentials] = Lru(cache_size)

    def __call__(self, owner: str) -> Credentials:
        """Credentials acting as ``owner``; the same object for the same owner and key file.

        Raises:
            ConfigurationError: the key file cannot be read or is not a service-account key.
        """
        stamp, base = self._parsed()
        key = (stamp, owner.lower())
        return self._owners.get_or_make(key, lambda: base.with_subject(owner))

    def _parsed(self) -> tuple[_Stamp, Any]:
        stamp = self._stat()
        with self._lock:
            if stamp != self._stamp:
                self._base = self._load()
                self._stamp = stamp
                self._owners.clear()  # a new key: credentials of the old one are dropped
            return stamp, self._base

    def _stat(self) -> _Stamp:
        try:
            st = os.stat(self.path)
        except OSError as exc:
            raise self._problem(exc.strerror or str(exc)) from exc
        return _Stamp(str(self.path), st.st_size, st.st_mtime_ns, st.st_ino)

    def _load(self) -> Any:
        try:
            info = json.loads(self.path.read_bytes())
        except OSError as exc:
            raise self._problem(exc.strerror or str(exc)) from exc
        except ValueError as exc:
            raise self._problem("not JSON") from exc
        if not isinstance(info, dict):
            raise self._problem("not a JSON object")
        self.reads += 1
        try:
            return service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
                {**info, "token_uri": self.token_uri}, scopes=list(self.scopes)
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise self._problem("not a service-account key (client_email, private_key)") from exc

    def _problem(self, reason: str) -> ConfigurationError:
        return ConfigurationError(
            f"the Google service-account key {self.path} cannot be used ({reason}); download "
            "the JSON key again and point GOODWILL_GOOGLE__SERVICE_ACCOUNT_FILE at it"
        )
