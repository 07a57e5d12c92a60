"""Retention rules: what the bot keeps and for how long (`run` nightly, `doctoctoc purge`).

Raw payloads and finished deliveries expire; pending deliveries never do; a post deleted at
its source keeps no content. The queries are in bot/storage/retention.py.
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
