"""What `status`, the admin page and `/metrics` read about the bot's work: stored posts,
deliveries by status (their message's), the pending queue per channel, failed and retrying deliveries."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from bot.storage.models import DeliveryRow, MessageRow, PostRow


def count_posts(session: Session) -> int:
    return session.scalar(select(func.count(PostRow.id))) or 0


def delivery_counts(session: Session) -> dict[str, int]:
    """{status: deliveries} (the status of the message each belongs to)."""
    rows = session.execute(
        select(MessageRow.status, func.count(DeliveryRow.id))
        .join(DeliveryRow, DeliveryRow.message_id == MessageRow.id)
        .group_by(MessageRow.status)
    )
    return {status: count for status, count in rows}


def pending_by_channel(session: Session) -> dict[str, int]:
    """{channel: pending deliveries}."""
    rows = session.execute(
        select(MessageRow.channel, func.count(DeliveryRow.id))
        .join(DeliveryRow, DeliveryRow.message_id == MessageRow.id)
        .where(MessageRow.status == "pending")
        .group_by(MessageRow.channel)
    )
    return {channel: count for channel, count in rows}


def oldest_due_by_channel(session: Session, now: datetime) -> dict[str, datetime]:
    """{channel: due time of its oldest pending message due by `now`}."""
    rows = session.execute(
        select(MessageRow.channel, func.min(MessageRow.due_at))
        .where(MessageRow.status == "pending", MessageRow.due_at <= now)
        .group_by(MessageRow.channel)
    )
    return {channel: due for channel, due in rows}


def _deliveries(*conditions: Any) -> Any:
    """Deliveries (each reads its send status from its message) whose message matches."""
    return (
        select(DeliveryRow)
        .join(MessageRow, MessageRow.id == DeliveryRow.message_id)
        .where(*conditions)
    )


def failed_deliveries(session: Session, limit: int = 10) -> list[DeliveryRow]:
    """The deliveries that failed for good, newest first."""
    query = _deliveries(MessageRow.status == "failed").order_by(DeliveryRow.id.desc())
    return list(session.scalars(query.limit(limit)))


def retrying_deliveries(session: Session, limit: int = 10) -> list[DeliveryRow]:
    """Pending deliveries that already failed once, next try first."""
    query = _deliveries(MessageRow.status == "pending", MessageRow.attempts > 0)
    return list(session.scalars(query.order_by(MessageRow.due_at).limit(limit)))


def deliveries_needing_attention(session: Session, limit: int = 50) -> list[DeliveryRow]:
    """Failed deliveries and pending ones that already failed once (retrying), newest first."""
    retrying = (MessageRow.status == "pending") & (MessageRow.attempts > 0)
    query = _deliveries(or_(MessageRow.status == "failed", retrying))
    order = (MessageRow.updated_at.desc(), DeliveryRow.id.desc())
    return list(session.scalars(query.order_by(*order).limit(limit)))
