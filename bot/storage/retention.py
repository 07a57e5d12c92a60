"""The retention rules' deletions (bot/retention.py decides when and how far back)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Text, cast, delete, null, select, update
from sqlalchemy.orm import Session

from bot.storage.models import ClassificationRow, DeliveryRow, MessageRow, PostRow


def drop_raw_payloads(session: Session, collected_before: datetime) -> int:
    """Drop the network payloads of posts collected before then (the post stays); how many."""
    return session.execute(
        update(PostRow)
        .where(_has_raw(), PostRow.collected_at < collected_before)
        .values(raw=null())
        .execution_options(synchronize_session=False)
    ).rowcount


def delete_finished_deliveries(session: Session, updated_before: datetime) -> int:
    """Delete sent, failed and dropped messages last changed before then, with their
    deliveries (never pending or sending ones: the exactly-once outbox needs them); how many
    deliveries."""
    finished = select(MessageRow.id).where(
        MessageRow.status.in_(["sent", "failed", "dropped"]),
        MessageRow.updated_at < updated_before,
    )
    ids = list(session.scalars(finished))
    deleted = 0
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        deleted += session.execute(
            delete(DeliveryRow)
            .where(DeliveryRow.message_id.in_(chunk))
            .execution_options(synchronize_session=False)
        ).rowcount
        session.execute(
            delete(MessageRow)
            .where(MessageRow.id.in_(chunk))
            .execution_options(synchronize_session=False)
        )
    return deleted


def erase_deleted_posts(session: Session) -> int:
    """Erase what posts deleted at their source still hold (text, photos, raw payload, quoted
    cues); how many posts had content left."""
    gone = select(PostRow.id).where(PostRow.deleted.is_(True))
    erased = session.execute(
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
    return erased


def _has_raw():
    """A payload is stored: neither SQL NULL nor the JSON `null` an ORM None writes."""
    return PostRow.raw.is_not(None) & (cast(PostRow.raw, Text) != "null")
