"""The owner's e-mails (digest, notices) over SMTP: the app's ``Mailer`` port.

The connection code is :func:`connectors.imip.send_smtp`, shared with the iMIP invites, over the
same ``GOODWILL_SMTP__*`` settings.
"""

from __future__ import annotations

from email.message import EmailMessage

from connectors.imip import send_smtp
from scheduler.settings import SmtpSettings

__all__ = ["SmtpMailer"]


class SmtpMailer:
    """Sends one e-mail per connection (digests are few).

    Args:
        smtp: server, port, STARTTLS and login (``GOODWILL_SMTP__*``).
        timeout_s: socket timeout for connect and each SMTP command.
    """

    def __init__(self, smtp: SmtpSettings, *, timeout_s: float = 30.0) -> None:
        self._smtp = smtp
        self._timeout_s = timeout_s

    def send(self, message: EmailMessage) -> None:
        """Send ``message`` to its To/Cc addresses.

        Raises:
            ProviderUnavailable: connection problems or a 4xx answer (retry later).
            AuthorizationRevoked: the SMTP login was refused.
            InvalidRequest: a 5xx answer.
        """
        send_smtp(self._smtp, message, timeout_s=self._timeout_s)
