"""Encryption at rest for provider grants (the ``credentials`` table).

The Fernet key (AES-128-CBC + HMAC-SHA256, https://github.com/fernet/spec) is derived with HKDF
(RFC 5869, SHA-256) from the operator's ``GOODWILL_SECRET_KEY``, so the secret can be any
passphrase and the key is never stored. Each token is bound to its row: the plaintext carries the
row's context (``user e-mail + provider``), and :meth:`SecretBox.decrypt` refuses a token that
was copied onto another row. Old secrets can be kept for rotation: tokens are read with any of
them and written with the first.

``cryptography`` is imported when a box is first built, not with the module: a store opened
without ``GOODWILL_SECRET_KEY`` (and every command that imports ``scheduler.store``) does not
pay for it.
"""

from __future__ import annotations

import base64
import hashlib
from typing import TYPE_CHECKING

from scheduler.core.errors import ConfigurationError, CredentialDecryptError

if TYPE_CHECKING:  # imported where used: building a box is what needs cryptography
    from cryptography.fernet import Fernet, MultiFernet

    from scheduler.settings import Settings

__all__ = ["CredentialDecryptError", "SecretBox"]

# Fixed salt and info: the derived key must be the same in every process and across restarts.
# HKDF needs no secret salt (RFC 5869 §3.1); "info" separates this key from any other use.
_SALT = b"goodwill/credentials"
_INFO = b"goodwill credentials fernet key v1"
_SEP = b"\x00"


def _fernet(secret: str | bytes) -> Fernet:
    from cryptography.fernet import Fernet
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    raw = secret.encode() if isinstance(secret, str) else secret
    if not raw:
        raise ConfigurationError("the secret key is empty: set GOODWILL_SECRET_KEY")
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=_SALT, info=_INFO).derive(raw)
    return Fernet(base64.urlsafe_b64encode(key))


class SecretBox:
    """Encrypts and decrypts credential blobs with a key derived from the secret key.

    Args:
        secret: the current secret key (any length; a long random string is best).
        old_secrets: previous keys still accepted for reading during a rotation.
    """

    def __init__(self, secret: str | bytes, *, old_secrets: tuple[str | bytes, ...] = ()) -> None:
        from cryptography.fernet import MultiFernet

        self._fernet: MultiFernet = MultiFernet(
            [_fernet(secret), *(_fernet(s) for s in old_secrets)]
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> SecretBox:
        """Build the box from ``settings.secret_key``.

        Raises:
            ConfigurationError: no secret key is configured.
        """
        if settings.secret_key is None:
            raise ConfigurationError(
                "GOODWILL_SECRET_KEY is not set: it encrypts stored calendar grants. "
                "Generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
        return cls(settings.secret_key.get_secret_value())

    def encrypt(self, plaintext: bytes, *, context: str) -> bytes:
        """Encrypt ``plaintext`` for the row named by ``context`` (returns a Fernet token)."""
        return self._fernet.encrypt(_digest(context) + _SEP + plaintext)

    def decrypt(self, token: bytes, *, context: str) -> bytes:
        """Decrypt a token made by :meth:`encrypt` with the same ``context``.

        Raises:
            CredentialDecryptError: wrong key, tampered token, or a token from another row.
        """
        from cryptography.fernet import InvalidToken

        try:
            payload = self._fernet.decrypt(token)
        except InvalidToken as exc:
            raise CredentialDecryptError(
                f"stored credential for {context} cannot be decrypted: GOODWILL_SECRET_KEY "
                "changed or the row was altered; reconnect the account"
            ) from exc
        bound, sep, plaintext = payload.partition(_SEP)
        if not sep or bound != _digest(context):
            raise CredentialDecryptError(f"stored credential is not the one for {context}")
        return plaintext

    def rotate(self, token: bytes) -> bytes:
        """Re-encrypt ``token`` under the current secret (after adding a new key)."""
        from cryptography.fernet import InvalidToken

        try:
            return self._fernet.rotate(token)
        except InvalidToken as exc:
            raise CredentialDecryptError("credential cannot be decrypted for rotation") from exc


def _digest(context: str) -> bytes:
    # A fixed-length hex digest: it never contains the separator and does not reveal the e-mail.
    return hashlib.sha256(context.encode()).hexdigest().encode()
