"""Retention: what the bot keeps, and for how long (run nightly by `run`, or `doctoctoc purge`).

- raw network payloads (`posts.raw`) older than `retention.raw_payloads` are dropped (the
  normalized post stays);
- finished deliveries (sent, failed, dropped) older than `retention.delivery_log` are
  deleted (pending and sending ones never are: the exactly-once outbox needs them);
- a post deleted at its source keeps no content: text, photos, raw payload and the cues
  quoted from it are erased (not only hidden).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bot.core.config import LoadedConfig
from bot.storage import retention as store
from bot.storage.db import Database


@dataclass
class PurgeResult:
    raw_payloads: int = 0
    deliveries: int = 0
    deleted_posts: int = 0

    def line(self) -> str:
        return (
            f"purged: {self.raw_payloads} raw payloads, {self.deliveries} delivery log rows, "
            f"{self.deleted_posts} deleted posts' content"
        )


def purge(db: Database, loaded: LoadedConfig, now: datetime) -> PurgeResult:
    cfg = loaded.config.retention
    result = PurgeResult()
    with db.session() as session:
        result.raw_payloads = store.drop_raw_payloads(session, now - cfg.raw_payloads)
        result.deliveries = store.delete_finished_deliveries(session, now - cfg.delivery_log)
        result.deleted_posts = store.erase_deleted_posts(session)
    return result
