"""What `status`, the admin page and `/metrics` read about the bot's work: stored posts,
deliveries by status, the pending queue per channel, failed and retrying deliveries."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from bot.storage.models import DeliveryRow, PostRow


def count_posts(session: Session) -> int:
    return session.scalar(select(func.count(PostRow.id))) or 0


def delivery_counts(session: Session) -> dict[str, int]:
    """{status: deliveries}."""
    rows = session.execute(select(DeliveryRow.status, func.count()).group_by(DeliveryRow.status))
    return {status: count for status, count in rows}


def pending_by_channel(session: Session) -> dict[str, int]:
    """{channel: pending deliveries}."""
    rows = session.execute(
        select(DeliveryRow.channel, func.count())
        .where(DeliveryRow.status == "pending")
        .group_by(DeliveryRow.channel)
    )
    return {channel: count for channel, count in rows}


def oldest_due_by_channel(session: Session, now: datetime) -> dict[str, datetime]:
    """{channel: due time of its oldest pending delivery due by `now`}."""
    rows = session.execute(
        select(DeliveryRow.channel, func.min(DeliveryRow.due_at))
        .where(DeliveryRow.status == "pending", DeliveryRow.due_at <= now)
        .group_by(DeliveryRow.channel)
    )
    return {channel: due for channel, due in rows}


def failed_deliveries(session: Session, limit: int = 10) -> list[DeliveryRow]:
    """The deliveries that failed for good, newest first."""
    return list(
        session.scalars(
            select(DeliveryRow)
            .where(DeliveryRow.status == "failed")
            .order_by(DeliveryRow.id.desc())
            .limit(limit)
        )
    )


def retrying_deliveries(session: Session, limit: int = 10) -> list[DeliveryRow]:
    """Pending deliveries that already failed once, next try first."""
    return list(
        session.scalars(
            select(DeliveryRow)
            .where(DeliveryRow.status == "pending", DeliveryRow.attempts > 0)
            .order_by(DeliveryRow.due_at)
            .limit(limit)
        )
    )


def deliveries_needing_attention(session: Session, limit: int = 50) -> list[DeliveryRow]:
    """Failed deliveries and pending ones that already failed once (retrying), newest first."""
    return list(
        session.scalars(
            select(DeliveryRow)
            .where(
                or_(
                    DeliveryRow.status == "failed",
                    (DeliveryRow.status == "pending") & (DeliveryRow.attempts > 0),
                )
            )
            .order_by(DeliveryRow.updated_at.desc(), DeliveryRow.id.desc())
            .limit(limit)
        )
    )
