"""Where refresh tokens and other provider grants are kept between runs.

Connectors never touch our database: the composition root loads a grant blob through a
:class:`TokenStore`, builds credentials from it, and saves a new blob when the provider rotates it.
Blobs are opaque bytes (JSON, an msal cache, ...); the store only keeps them safe.

:class:`EncryptedFileTokenStore` encrypts each blob with Fernet (AES-128-CBC + HMAC-SHA256) under a
key derived from ``GOODWILL_SECRET_KEY`` with HKDF-SHA256. File names are the SHA-256 of the store
key, so a directory listing never reveals whose tokens are there.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import threading
from base64 import urlsafe_b64encode
from pathlib import Path
from typing import Protocol, runtime_checkable

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from connectors.files import atomic_write
from scheduler.core.errors import AuthorizationRevoked, ConfigurationError

__all__ = ["EncryptedFileTokenStore", "MemoryTokenStore", "TokenStore"]

#: HKDF ``info``: binds derived keys to this purpose, so the same secret used elsewhere differs.
_HKDF_INFO = b"goodwill-token-store"
#: Name of the per-store salt file (random, created once, not secret).
_SALT_FILE = "salt"
_SALT_BYTES = 16


@runtime_checkable
class TokenStore(Protocol):
    """Keeps one opaque grant blob per key (usually ``provider:email``)."""

    def load(self, key: str) -> bytes | None:
        """Return the blob saved under ``key``, or None when there is none."""
        ...

    def save(self, key: str, blob: bytes) -> None:
        """Store ``blob`` under ``key``, replacing any previous blob."""
        ...


class MemoryTokenStore:
    """A token store in a dict: for tests and the demo. Nothing survives the process."""

    def __init__(self) -> None:
        self._blobs: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def load(self, key: str) -> bytes | None:
        with self._lock:
            return self._blobs.get(key)

    def save(self, key: str, blob: bytes) -> None:
        with self._lock:
            self._blobs[key] = bytes(blob)


class EncryptedFileTokenStore:
    """One encrypted file per key in ``directory``, readable only by the service user.

    Args:
        directory: where the files live; created with mode 0700 if missing.
        secret_key: the service secret (``GOODWILL_SECRET_KEY``); the Fernet key is derived from
            it with HKDF-SHA256 and a random salt kept in ``directory/salt``.

    Raises:
        ConfigurationError: when ``secret_key`` is empty.
    """

    def __init__(self, directory: Path, secret_key: str) -> None:
        if not secret_key:
            raise ConfigurationError("GOODWILL_SECRET_KEY must be set to store provider tokens")
        self._dir = Path(directory)
        self._dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._fernet = Fernet(_derive_key(secret_key, self._salt()))

    def load(self, key: str) -> bytes | None:
        path = self._path(key)
        try:
            token = path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            return self._fernet.decrypt(token)
        except InvalidToken as exc:
            # Either the secret changed or the file was tampered with: the grant is unusable
            # either way, and the fix is the same - reconnect the account.
            raise AuthorizationRevoked(
                "a stored token cannot be decrypted: GOODWILL_SECRET_KEY changed or the file is "
                "corrupt; run `goodwill connect` for this account again",
                provider="token-store",
            ) from exc

    def save(self, key: str, blob: bytes) -> None:
        # Mode 0600 always, even over a file someone loosened: only the service user reads it.
        atomic_write(self._path(key), self._fernet.encrypt(bytes(blob)), mode=0o600)

    def _path(self, key: str) -> Path:
        # Hash the key so file names never carry an e-mail address.
        return self._dir / hashlib.sha256(key.encode("utf-8")).hexdigest()

    def _salt(self) -> bytes:
        path = self._dir / _SALT_FILE
        try:
            salt = path.read_bytes()
        except FileNotFoundError:
            salt = b""
        if len(salt) != _SALT_BYTES:
            candidate = secrets.token_bytes(_SALT_BYTES)
            try:
                # O_EXCL: when two processes start at once, exactly one salt wins.
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                return path.read_bytes()
            with os.fdopen(fd, "wb") as handle:
                handle.write(candidate)
                handle.flush()
                os.fsync(handle.fileno())
            salt = candidate
        return salt


def _derive_key(secret_key: str, salt: bytes) -> bytes:
    """Fernet key (urlsafe base64 of 32 bytes) from the service secret."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=_HKDF_INFO)
    return urlsafe_b64encode(hkdf.derive(secret_key.encode("utf-8")))
