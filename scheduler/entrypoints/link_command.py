"""``goodwill link --user EMAIL``: print a sign-in link for the owner's page (one line).

For an administrator to hand a sign-in link to an owner when e-mail is not set up, or to sign
in themselves on a fresh install. Exit 2 for an unknown user (or one whose policy file is gone)
and without ``GOODWILL_SECRET_KEY`` (links are signed with it).
"""

from __future__ import annotations

import argparse
from datetime import timedelta
from typing import Any, TextIO

from scheduler.core.errors import ConfigurationError

__all__ = ["add_parser", "run_link"]


def add_parser(sub: argparse._SubParsersAction[Any]) -> None:
    lk = sub.add_parser("link", help="print a sign-in link to the owner's web page for a user")
    lk.add_argument("--user", required=True, metavar="EMAIL")


def run_link(args: argparse.Namespace, out: TextIO) -> int:
    """Print the link; raises ConfigurationError (exit 2) with one clear line otherwise."""
    from scheduler.settings import Settings  # not at import: `goodwill --help` builds our parser

    settings = Settings()
    if settings.secret_key is None:
        raise ConfigurationError(
            "goodwill link needs GOODWILL_SECRET_KEY (sign-in links are signed with it): set it "
            "to the same key the web page uses (make one with `goodwill secret`)"
        )
    from scheduler.entrypoints.bootstrap import bootstrap
    from scheduler.entrypoints.web.signin_links import LinkTokens
    from scheduler.store.engine import sqlite_file

    path = sqlite_file(settings.effective_database_url)
    if path is not None and not path.exists():
        raise ConfigurationError(
            f"no database yet at {path}: run goodwill serve or goodwill migrate first (or set "
            "GOODWILL_DATA_DIR / GOODWILL_DATABASE_URL to the one you use)"
        )
    app = bootstrap(settings)
    email = str(args.user).strip().lower()
    user = app.store.get_user_by_email(email)
    if user is None or user.policy_missing_since is not None:
        what = "no user" if user is None else "a user whose policy file is gone"
        raise ConfigurationError(
            f"--user {email}: {what}; only an owner with a policy file can sign in (check the "
            "address, or add their policy file to GOODWILL_POLICY_DIR and let goodwill serve "
            "pick it up)"
        )
    links = LinkTokens(
        settings.secret_key.get_secret_value(),
        settings.web.effective_base_url,
        app.store,
        app.clock,
        sign_in_ttl=timedelta(seconds=settings.web.link_ttl_s),
        action_ttl=timedelta(seconds=settings.web.action_link_ttl_s),
    )
    print(links.sign_in(user.email), file=out)
    return 0
