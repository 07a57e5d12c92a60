"""Outbox channel: writes each digest as the e-mail it would be, one private .eml file per
message in the outbox folder (written under a temporary name, then renamed). The demo default."""

from __future__ import annotations

import os
import re
from pathlib import Path

from bot.core.config_models import OutboxConfig, SubscriberConfig
from digests.channels.base import Channel, SendResult
from digests.email_message import email_bytes
from digests.render import Digest


class OutboxChannel(Channel):
    name = "outbox"
    max_length = None
    sends_email = True

    def __init__(
        self, config: OutboxConfig, *, base_dir: Path | None = None, sender: str | None = None
    ):
        path = Path(config.dir)
        self.dir = path if path.is_absolute() or base_dir is None else base_dir / path
        self.sender = sender or "DocTocToc bot <bot@doctoctoc-bot.local>"

    def send(self, digest: Digest, subscriber: SubscriberConfig) -> SendResult:
        to = subscriber.email or f"{re.sub(r'[^a-z0-9.-]+', '-', subscriber.key)}@outbox.invalid"
        try:
            data = email_bytes(digest, sender=self.sender, to=to)
            name = f"{digest.generated_at:%Y%m%dT%H%M%S}-{digest.kind}-{_safe(digest.subscriber_id)}-{_safe(digest.message_key)[-12:]}.eml"
            target = self.dir / name
            try:
                _write_atomic(target, data)
            except FileNotFoundError:  # no folder yet (or removed): made, then written
                # Private: digests name patients' situations and carry signed links.
                self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
                _write_atomic(target, data)
        except (OSError, ValueError) as exc:
            return SendResult.failure(f"cannot write to outbox {self.dir}: {exc}")
        return SendResult.success(str(target))


def _write_atomic(target: Path, data: bytes) -> None:
    """Write a 0600 file under a temporary name, then rename it: a crash or a full disk
    never leaves half a digest, nor a stray temporary file."""
    tmp = target.with_suffix(".tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text)[:60]
