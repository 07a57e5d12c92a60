"""One module per network; `build_collector` picks the class for a configured source."""

from __future__ import annotations

from importlib import import_module
from typing import Any

from bot.collectors.base import Collector
from bot.core.config_models import SourceConfig

_CLASSES = {
    "replay": "bot.collectors.replay:ReplayCollector",
    "mastodon": "bot.collectors.mastodon:MastodonCollector",
    "bluesky": "bot.collectors.bluesky:BlueskyCollector",
    "x": "bot.collectors.x:XCollector",
}


def collector_class(network: str) -> type[Collector]:
    module, _, name = _CLASSES[network].partition(":")
    return getattr(import_module(module), name)


def build_collector(source: SourceConfig, hashtags: list[str], **kwargs: Any) -> Collector:
    """Instantiate the collector of a source (imports the network's client lazily)."""
    return collector_class(source.network)(source, hashtags, **kwargs)
