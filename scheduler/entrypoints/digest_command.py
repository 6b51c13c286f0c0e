"""``goodwill digest [--user EMAIL]``: send the owners' digest e-mail now; and the wiring of the
owners' e-mails (digest, notices) that the tick and this command share.

Exit codes: 0 every digest was sent; 1 a send failed (the rest were still sent); 2 an unknown
user, or e-mail is not configured (``GOODWILL_SMTP__SENDER``, ``GOODWILL_SECRET_KEY``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, TextIO

from scheduler.app.digest import Mailer, OwnerMailer, send_digest_now
from scheduler.app.pipeline import policy_for
from scheduler.core.errors import ConfigurationError
from scheduler.settings import Settings

if TYPE_CHECKING:
    from scheduler.entrypoints.bootstrap import App

__all__ = ["owner_mailer", "run_digest"]

log = logging.getLogger("goodwill.digest")

_NOT_CONFIGURED = (
    "the owners' e-mails need GOODWILL_SMTP__SENDER (their From address) and "
    "GOODWILL_SECRET_KEY (it signs the links in them); set both (see docs/operations.md)"
)


def owner_mailer(
    settings: Settings, app: App, *, mailer: Mailer | None = None
) -> OwnerMailer | None:
    """The digest's ports for this process: signed links, SMTP and the From address.

    None when ``GOODWILL_SMTP__SENDER`` or ``GOODWILL_SECRET_KEY`` is unset (no owner e-mails).
    ``mailer`` replaces the SMTP adapter (tests).
    """
    sender = settings.smtp.sender
    if not sender or settings.secret_key is None:
        log.info("owner e-mails are off: %s", _NOT_CONFIGURED)
        return None
    from scheduler.entrypoints.web.signin_links import LinkTokens

    links = LinkTokens(
        settings.secret_key.get_secret_value(),
        settings.web.effective_base_url,
        app.store,
        app.clock,
    )
    if mailer is None:
        from connectors.smtp_mail import SmtpMailer

        mailer = SmtpMailer(settings.smtp)
    return OwnerMailer(links=links, mailer=mailer, sender=sender)


def run_digest(
    app: App, email: str | None, out: TextIO, err: TextIO, *, mailer: Mailer | None = None
) -> int:
    """Send a digest now to ``email``'s owner, or to every owner whose policy has a digest.

    One line per mail on ``out``; failures on ``err``. The schedule is left as it is.
    """
    post = owner_mailer(app.settings, app, mailer=mailer)
    if post is None:
        raise ConfigurationError(f"goodwill digest: {_NOT_CONFIGURED}")
    if email is not None:
        user = app.store.get_user_by_email(email)
        if user is None:
            print(
                f"goodwill: no user {email}: only owners whose policy file the tick has "
                "registered get a digest (check the address, or run goodwill serve --once)",
                file=err,
            )
            return 2
        users = [user]
    else:
        users = []
        for user in app.store.all_users():
            policy = policy_for(app.pipeline, user) if user.policy_missing_since is None else None
            if policy is not None and policy.notify.digest is not None:
                users.append(user)
        if not users:
            print("no owner has notify.digest in their policy: nothing sent", file=out)
    failed = False
    for user in users:
        sent = send_digest_now(app.pipeline, post, user)
        if sent is None:
            print(f"goodwill: {user.email}: the policy file does not load; no digest", file=err)
            failed = True
        elif sent.ok:
            print(f"digest sent to {user.email}: {sent.subject}", file=out)
        else:
            print(f"goodwill: the digest to {user.email} failed: {sent.error}", file=err)
            failed = True
    return 1 if failed else 0
