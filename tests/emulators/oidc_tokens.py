"""Signed OpenID Connect id_tokens for the emulators' sign-in flows (RS256, JWKS, test hooks).

Both emulators keep one :class:`IdTokenSigner`. Tests choose who signs in and can spoil the
next id_token (:meth:`IdTokenSigner.spoil_next`): ``"signature"`` (a byte of the signature
flipped), ``"expired"`` (``exp`` an hour ago), ``"audience"`` (another client's ``aud``, with
``azp`` still naming ours: authlib alone would let that through), ``"nonce"`` (a different
nonce), ``"issuer"`` (another issuer), ``"unknown_key"`` (signed by a key not in the JWKS).
"""

from __future__ import annotations

import base64
import hashlib
import threading
import time
from collections import deque
from typing import Any, Literal

from joserfc import jwt
from joserfc.jwk import RSAKey

__all__ = ["IdTokenSigner", "Spoil", "pkce_ok"]

Spoil = Literal["signature", "expired", "audience", "nonce", "issuer", "unknown_key"]


def pkce_ok(verifier: str, challenge: str) -> bool:
    """Whether ``verifier`` is the S256 PKCE verifier of ``challenge``."""
    digest = hashlib.sha256(verifier.encode()).digest()
    return bool(challenge) and base64.urlsafe_b64encode(digest).rstrip(b"=").decode() == challenge


class IdTokenSigner:
    """An RS256 key (made on first use), its JWKS, and the spoil queue."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: RSAKey | None = None
        self._spoils: deque[Spoil] = deque()
        #: Claims of every id_token issued (after spoiling), for assertions.
        self.issued: list[dict[str, Any]] = []

    def _signing_key(self) -> RSAKey:
        with self._lock:
            if self._key is None:
                self._key = RSAKey.generate_key(2048, parameters={"kid": "emulator-1"})
            return self._key

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self._signing_key().as_dict(private=False, use="sig", alg="RS256")]}

    def spoil_next(self, kind: Spoil) -> None:
        with self._lock:
            self._spoils.append(kind)

    def sign(self, claims: dict[str, Any]) -> str:
        """An id_token for ``claims`` (iat/exp added), spoiled when a spoil is queued."""
        now = int(time.time())
        body = {"iat": now, "exp": now + 3600, **claims}
        with self._lock:
            spoil = self._spoils.popleft() if self._spoils else None
        key = self._signing_key()
        if spoil == "expired":
            body.update(iat=now - 7200, exp=now - 3600)
        elif spoil == "audience":
            body.update(aud="someone-elses-client", azp=claims.get("aud"))
        elif spoil == "nonce":
            body["nonce"] = "not-the-nonce-you-sent"
        elif spoil == "issuer":
            body["iss"] = "https://issuer.invalid"
        elif spoil == "unknown_key":
            key = RSAKey.generate_key(2048, parameters={"kid": "emulator-1"})
        with self._lock:
            self.issued.append(dict(body))
        token = jwt.encode({"alg": "RS256", "kid": "emulator-1", "typ": "JWT"}, body, key)
        if spoil == "signature":
            head, payload, signature = token.split(".")
            raw = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
            raw[len(raw) // 2] ^= 0x01
            token = ".".join([head, payload, base64.urlsafe_b64encode(raw).rstrip(b"=").decode()])
        return token
