"""SMTP channel: smtplib with STARTTLS or SSL, auth from env, optional DKIM signing."""

from __future__ import annotations

import smtplib
import ssl
from pathlib import Path

from bot.core.config_models import SmtpConfig, SubscriberConfig
from digests.channels.base import Channel, SendResult
from digests.email_message import domain_of, email_bytes, message_id, sender_address
from digests.render import Digest

DKIM_HEADERS = [
    b"from",
    b"to",
    b"subject",
    b"date",
    b"message-id",
    b"list-id",
    b"list-unsubscribe",
    b"list-unsubscribe-post",
]


class SmtpChannel(Channel):
    name = "smtp"
    max_length = None
    resend_after_crash = True  # same Message-ID: a resend is recognisable
    fork_safe = True  # a connection per send
    sends_email = True

    def __init__(self, config: SmtpConfig, *, ssl_context: ssl.SSLContext | None = None):
        self.config = config
        self.ssl_context = ssl_context or ssl.create_default_context()

    def send(self, digest: Digest, subscriber: SubscriberConfig) -> SendResult:
        if not subscriber.email:
            return SendResult.failure("subscriber has no email address", retryable=False)
        cfg = self.config
        try:
            data = email_bytes(digest, sender=cfg.sender, to=subscriber.email)
            envelope_from = sender_address(cfg.sender)
        except (ValueError, TypeError) as exc:
            return SendResult.failure(f"cannot build the message: {exc}", retryable=False)
        if cfg.dkim_private_key and cfg.dkim_selector and cfg.dkim_domain:
            data = self._dkim(data) + data
        timeout = cfg.timeout.total_seconds()
        try:
            if cfg.security == "ssl":
                client: smtplib.SMTP = smtplib.SMTP_SSL(
                    cfg.host, cfg.effective_port, timeout=timeout, context=self.ssl_context
                )
            else:
                client = smtplib.SMTP(cfg.host, cfg.effective_port, timeout=timeout)
            with client:
                if cfg.security == "starttls":
                    client.starttls(context=self.ssl_context)
                if cfg.username and cfg.password:
                    client.login(cfg.username, cfg.password)
                refused = client.sendmail(envelope_from, [subscriber.email], data)
        except smtplib.SMTPRecipientsRefused as exc:
            return _refused(exc.recipients)
        except smtplib.SMTPAuthenticationError as exc:
            return SendResult.failure(f"SMTP authentication failed: {exc.smtp_code}")
        except smtplib.SMTPResponseException as exc:
            permanent = 500 <= exc.smtp_code < 600
            return SendResult.failure(
                f"SMTP error {exc.smtp_code}: {exc.smtp_error!r}", retryable=not permanent
            )
        except (TimeoutError, smtplib.SMTPException, OSError) as exc:
            return SendResult.failure(
                f"SMTP server {cfg.host}:{cfg.effective_port} unreachable: {exc}"
            )
        if refused:
            return _refused(refused)
        return SendResult.success(message_id(digest, domain_of(cfg.sender)))

    def _dkim(self, data: bytes) -> bytes:
        import dkim

        key_ref = self.config.dkim_private_key or ""
        key = Path(key_ref).read_bytes() if Path(key_ref).is_file() else key_ref.encode()
        return dkim.sign(
            data,
            self.config.dkim_selector.encode(),
            self.config.dkim_domain.encode(),
            key,
            include_headers=DKIM_HEADERS,
        )


def _refused(recipients: dict[str, tuple[int, bytes]]) -> SendResult:
    """A refusal at RCPT TO: 4xx (greylisting, mailbox busy) is retried, 5xx is final."""
    permanent = any(not 400 <= code < 500 for code, _ in recipients.values())
    detail = ", ".join(
        f"{rcpt}: {code} {msg.decode('utf-8', 'replace') if isinstance(msg, bytes) else msg}"
        for rcpt, (code, msg) in recipients.items()
    )
    word = "recipient refused" if permanent else "recipient deferred"
    return SendResult.failure(f"{word}: {detail}", retryable=not permanent)
