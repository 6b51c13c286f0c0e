"""OpenID Connect sign-in with Google and Microsoft (authorization code + PKCE S256 + nonce).

authlib's Starlette client does discovery (``server_metadata_url``), keeps state, nonce and the
PKCE verifier in the session, exchanges the code and checks the id_token's signature against
the provider's JWKS. On top of that, the claims options here require ``iss`` (the discovery
document's issuer; for Microsoft's multi-tenant documents, ``{tenantid}`` is the token's
``tid``), ``aud`` = our client id (authlib alone lets a token for another audience through when
it names us in ``azp``), ``exp``, ``iat`` and ``nonce``.
"""

from __future__ import annotations

import logging
import ssl
import warnings
from dataclasses import dataclass
from typing import Any

import httpx
from authlib.deprecate import AuthlibDeprecationWarning

# authlib's Starlette client imports its httpx client, which warns at import that "the httpx
# module is deprecated" (in favour of httpx2, which goodwill does not use): printed at every
# start of the page, with nothing for an operator to do. Only that one warning is silenced.
warnings.filterwarnings(
    "ignore", message=r"The httpx module is deprecated", category=AuthlibDeprecationWarning
)

from authlib.common.errors import AuthlibBaseError  # noqa: E402  (after the filter above)
from authlib.integrations.starlette_client import OAuth  # noqa: E402
from joserfc.errors import JoseError  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import Response  # noqa: E402

from scheduler.core.errors import SchedulerError  # noqa: E402
from scheduler.settings import Settings  # noqa: E402

__all__ = ["OidcClients", "OidcIdentity", "OidcRefused"]

log = logging.getLogger(__name__)

PROVIDERS = ("google", "microsoft")
NAMES = {"google": "Google", "microsoft": "Microsoft"}
_SCOPE = "openid email profile"


@dataclass(frozen=True)
class OidcIdentity:
    """Who the provider says signed in (the address in lower case)."""

    provider: str
    email: str


class OidcRefused(SchedulerError):
    """The provider's answer did not prove who signed in (the message is safe to show)."""


def _is_verified(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


class OidcClients:
    """The configured sign-in providers: one authlib client each, by provider name."""

    def __init__(self, settings: Settings) -> None:
        self._oauth = OAuth()
        self._issuers: dict[str, str] = {}
        self._client_ids: dict[str, str] = {}
        google, microsoft = settings.google, settings.microsoft
        if google.client_id and google.client_secret is not None:
            self._register(
                "google", google.client_id, google.client_secret.get_secret_value(),
                google.discovery_url, {"timeout": google.timeout_s},
            )  # fmt: skip
        if microsoft.client_id and microsoft.client_secret is not None:
            url = (
                f"{microsoft.authority_host.rstrip('/')}/{microsoft.tenant}"
                "/v2.0/.well-known/openid-configuration"
            )
            extra: dict[str, Any] = {"timeout": microsoft.timeout_s}
            if microsoft.ca_bundle is not None:
                extra["verify"] = ssl.create_default_context(cafile=str(microsoft.ca_bundle))
            self._register(
                "microsoft", microsoft.client_id, microsoft.client_secret.get_secret_value(),
                url, extra,
            )  # fmt: skip

    def _register(
        self, name: str, client_id: str, secret: str, discovery: str, extra: dict[str, Any]
    ) -> None:
        self._oauth.register(
            name=name,
            client_id=client_id,
            client_secret=secret,
            server_metadata_url=discovery,
            client_kwargs={
                "scope": _SCOPE,
                "code_challenge_method": "S256",
                "token_endpoint_auth_method": "client_secret_post",
                "trust_env": False,
                **extra,
            },
        )
        self._client_ids[name] = client_id

    @property
    def enabled(self) -> list[str]:
        """The providers with a client id and secret configured, in display order."""
        return [p for p in PROVIDERS if p in self._client_ids]

    def _client(self, provider: str) -> Any:
        if provider not in self._client_ids:
            raise OidcRefused(f"Sign-in with {NAMES.get(provider, provider)} is not set up.")
        return self._oauth.create_client(provider)

    async def redirect(self, request: Request, provider: str, redirect_uri: str) -> Response:
        """The redirect to the provider's consent page (state, nonce, PKCE kept in the session)."""
        client = self._client(provider)
        try:
            response: Response = await client.authorize_redirect(request, redirect_uri)
        except (httpx.HTTPError, AuthlibBaseError, ValueError, KeyError) as exc:
            log.warning("oidc discovery failed", extra={"provider": provider,
                                                        "error": type(exc).__name__})  # fmt: skip
            raise OidcRefused(
                f"{NAMES[provider]} could not be reached; try again in a minute, or use an "
                "e-mailed sign-in link."
            ) from exc
        return response

    async def identify(self, request: Request, provider: str) -> OidcIdentity:
        """Finish the sign-in at the callback: who signed in, or :class:`OidcRefused`."""
        client = self._client(provider)
        name = NAMES[provider]
        try:
            metadata = await client.load_server_metadata()
            options = self._claims_options(provider, str(metadata.get("issuer") or ""))
            token = await client.authorize_access_token(request, claims_options=options)
        except (httpx.HTTPError, AuthlibBaseError, JoseError, ValueError, KeyError) as exc:
            log.warning("oidc sign-in refused", extra={"provider": provider,
                                                       "error": type(exc).__name__})  # fmt: skip
            raise OidcRefused(
                f"Sign-in with {name} did not complete: its answer could not be verified, or "
                "the sign-in took too long. Start again from the sign-in page."
            ) from exc
        claims = token.get("userinfo") if isinstance(token, dict) else None
        if not claims:
            raise OidcRefused(f"{name} did not send a signed identity (id_token); start again.")
        return OidcIdentity(provider, self._email(provider, claims))

    def _claims_options(self, provider: str, issuer: str) -> dict[str, Any]:
        if not issuer:
            raise ValueError("the discovery document names no issuer")
        iss: dict[str, Any] = {"essential": True}
        if provider == "microsoft" and "{tenantid}" in issuer:
            # Multi-tenant ("organizations"/"common") documents template the tenant.
            def same_issuer(claims: Any, value: Any) -> bool:
                return bool(value == issuer.replace("{tenantid}", str(claims.get("tid"))))

            iss["validate"] = same_issuer
        else:
            iss["value"] = issuer
        return {
            "iss": iss,
            "aud": {"essential": True, "value": self._client_ids[provider]},
            "exp": {"essential": True},
            "iat": {"essential": True},
            "nonce": {"essential": True},
        }

    @staticmethod
    def _email(provider: str, claims: Any) -> str:
        name = NAMES[provider]
        if provider == "google":
            email = claims.get("email")
            if not isinstance(email, str) or not _is_verified(claims.get("email_verified")):
                raise OidcRefused(
                    f"{name} did not confirm that this account's e-mail address is verified; "
                    "sign in with your work account, or use an e-mailed sign-in link."
                )
        else:
            # The UPN: on a domain the tenant has verified (``email`` may be unverified).
            email = claims.get("preferred_username") or claims.get("email")
            if not isinstance(email, str) or "@" not in email:
                raise OidcRefused(f"{name} did not say which e-mail address signed in.")
        return email.strip().lower()
