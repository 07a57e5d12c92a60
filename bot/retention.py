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

from sqlalchemy import Text, cast, delete, null, select, update

from bot.core.config import LoadedConfig
from bot.storage.db import Database
from bot.storage.models import ClassificationRow, DeliveryRow, PostRow


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
        result.raw_payloads = session.execute(
            update(PostRow)
            .where(_has_raw(), PostRow.collected_at < now - cfg.raw_payloads)
            .values(raw=null())
            .execution_options(synchronize_session=False)
        ).rowcount
        result.deliveries = session.execute(
            delete(DeliveryRow)
            .where(
                DeliveryRow.status.in_(["sent", "failed", "dropped"]),
                DeliveryRow.updated_at < now - cfg.delivery_log,
            )
            .execution_options(synchronize_session=False)
        ).rowcount
        gone = select(PostRow.id).where(PostRow.deleted.is_(True))
        result.deleted_posts = session.execute(
            update(PostRow)
            .where(
                PostRow.deleted.is_(True),
                (PostRow.text != "") | _has_raw(),
            )
            .values(text="", media=[], raw=null())
            .execution_options(synchronize_session=False)
        ).rowcount
        session.execute(
            update(ClassificationRow)
            .where(ClassificationRow.post_id.in_(gone))
            .values(cues=[])
            .execution_options(synchronize_session=False)
        )
    return result


def _has_raw():
    """A payload is stored: neither SQL NULL nor the JSON `null` an ORM None writes."""
    return PostRow.raw.is_not(None) & (cast(PostRow.raw, Text) != "null")
