"""One module per delivery channel; `build_channels` makes the enabled ones from config."""

from __future__ import annotations

import logging
from importlib import import_module
from pathlib import Path

from bot.core.config import LoadedConfig
from bot.core.errors import SourceDisabled
from digests.channels.base import Channel, SendResult

__all__ = ["Channel", "SendResult", "build_channels"]
log = logging.getLogger(__name__)

_CLASSES = {
    "outbox": "digests.channels.outbox:OutboxChannel",
    "smtp": "digests.channels.smtp:SmtpChannel",
    "mastodon": "digests.channels.mastodon:MastodonChannel",
    "bluesky": "digests.channels.bluesky:BlueskyChannel",
    "x": "digests.channels.x:XChannel",
}


def build_channels(loaded: LoadedConfig, *, base_dir: Path | None = None) -> dict[str, Channel]:
    """Channels that are configured and not disabled (a missing secret disables one)."""
    channels: dict[str, Channel] = {}
    for name, target in _CLASSES.items():
        if not loaded.channel_enabled(name):
            continue
        module, _, cls_name = target.partition(":")
        cls = getattr(import_module(module), cls_name)
        cfg = getattr(loaded.config.channels, name)
        try:
            if name == "outbox":
                sender = loaded.config.channels.smtp.sender if loaded.config.channels.smtp else None
                channels[name] = cls(cfg, base_dir=base_dir, sender=sender)
            else:
                channels[name] = cls(cfg)
        except SourceDisabled as exc:
            loaded.disabled[f"channels.{name}"] = str(exc)
            log.warning("disabled: channels.%s: %s", name, exc)
    return channels
