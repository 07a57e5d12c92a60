"""SQLAlchemy 2.0 typed models. Changes need an Alembic migration (bot/migrations)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    event,
    select,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, column_property, mapped_column, relationship
from sqlalchemy.types import TypeDecorator


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UtcDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class PostRow(Base):
    __tablename__ = "posts"
    __table_args__ = (
        UniqueConstraint("network", "key", name="uq_posts_network_key"),
        Index("ix_posts_network_native", "network", "native_id"),
        Index("ix_posts_reply_to", "network", "reply_to"),
        Index("ix_posts_thread_root", "network", "thread_root"),
        Index("ix_posts_created_at", "created_at"),
        Index("ix_posts_author_name", "author_name"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    network: Mapped[str] = mapped_column(String(16))
    key: Mapped[str] = mapped_column(String(512))
    native_id: Mapped[str] = mapped_column(String(512))
    url: Mapped[str] = mapped_column(Text, default="")
    source: Mapped[str | None] = mapped_column(String(255))
    author_id: Mapped[str] = mapped_column(String(255), default="")
    author_handle: Mapped[str] = mapped_column(String(255), default="", index=True)
    author_name: Mapped[str] = mapped_column(String(255), default="")
    author_key: Mapped[str] = mapped_column(String(255), default="", index=True)
    text: Mapped[str] = mapped_column(Text, default="")
    lang: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime]
    edited_at: Mapped[datetime | None]
    collected_at: Mapped[datetime]
    hashtags: Mapped[list[Any]] = mapped_column(default=list)
    media: Mapped[list[Any]] = mapped_column(default=list)
    reply_to: Mapped[str | None] = mapped_column(String(512))
    thread_root: Mapped[str | None] = mapped_column(String(512))
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    deleted_at: Mapped[datetime | None]
    raw: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Thread bookkeeping: a reply points at the case it answers.
    answer_to_id: Mapped[int | None] = mapped_column(ForeignKey("posts.id"), index=True)
    answer_count: Mapped[int] = mapped_column(Integer, default=0)
    first_answer_at: Mapped[datetime | None]
    # The same case posted by the same author on another network points at the first copy.
    duplicate_of_id: Mapped[int | None] = mapped_column(ForeignKey("posts.id"), index=True)
    # Set once the routing stage has handled the post's classification.
    routed_at: Mapped[datetime | None]

    classifications: Mapped[list[ClassificationRow]] = relationship(
        back_populates="post", order_by="ClassificationRow.id", cascade="all, delete-orphan"
    )


class ClassificationRow(Base):
    __tablename__ = "classifications"
    # a post's latest classification: one index lookup (the web case list, migration 0003)
    __table_args__ = (Index("ix_classifications_post_latest", "post_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    post_id: Mapped[int] = mapped_column(ForeignKey("posts.id"), index=True)
    model_version: Mapped[str] = mapped_column(String(64))
    is_request: Mapped[bool] = mapped_column(Boolean)
    specialty: Mapped[str | None] = mapped_column(String(64))
    specialty_scores: Mapped[list[Any]] = mapped_column(default=list)
    urgency: Mapped[str | None] = mapped_column(String(16))
    urgency_score: Mapped[float] = mapped_column(Float, default=0.0)
    cues: Mapped[list[Any]] = mapped_column(default=list)
    uncertain: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]

    post: Mapped[PostRow] = relationship(back_populates="classifications")


class CorrectionRow(Base):
    __tablename__ = "corrections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    post_id: Mapped[int] = mapped_column(ForeignKey("posts.id"), index=True)
    is_request: Mapped[bool | None] = mapped_column(Boolean)
    specialty: Mapped[str | None] = mapped_column(String(64))
    urgency: Mapped[str | None] = mapped_column(String(16))
    corrected_by: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime]


class SubscriberRow(Base):
    __tablename__ = "subscribers"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    in_config: Mapped[bool] = mapped_column(Boolean, default=True)
    unsubscribed_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]


class MessageRow(Base):
    """One message to send (a digest, an alert, a direct message): the unit the queue claims
    and settles, so that sending touches one row per message rather than one per item.

    status: pending -> sending -> sent, or back to pending (retry) and finally failed;
    dropped (its items' posts deleted, its subscriber gone). Routing creates a message per
    (subscriber, channel, kind, due time) and cycle; the delivery loop merges those due
    together into one when it claims them. `message_key` is set at the first claim and kept
    (the e-mail's Message-ID is derived from it: a resend after a crash reuses it).
    """

    __tablename__ = "messages"
    __table_args__ = (
        Index("ix_messages_status_due", "status", "due_at"),
        # What a delivery's foreign key refers to: its message, of its subscriber.
        Index("uq_messages_id_subscriber", "id", "subscriber_id", unique=True),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subscriber_id: Mapped[str] = mapped_column(ForeignKey("subscribers.id"), index=True)
    channel: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(16), default="digest")  # alert | digest | student
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    due_at: Mapped[datetime]
    message_key: Mapped[str | None] = mapped_column(String(255), index=True)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]


def _of_message(column: Any) -> Any:
    """A message's column read through a delivery (read only: the message row holds it)."""
    return column_property(
        select(column)
        .where(MessageRow.id == DeliveryRow.message_id)
        .correlate_except(MessageRow)
        .scalar_subquery()
    )


class DeliveryRow(Base):
    """One request for one subscriber on one channel, an item of one message (`message_id`).

    Its keys (post; message and subscriber) are foreign keys on SQLite; on PostgreSQL,
    triggers check them once per statement (migration 0007: a row-by-row check cost a
    query per routed item), with the same rules and error.

    The unique constraint makes routing idempotent; the message row carries the send status
    (`status`, `attempts`, `message_key`, ... below are read from it)."""

    __tablename__ = "deliveries"
    __table_args__ = (
        # Post first: routing writes post by post (rows arrive in its order), and it answers
        # the lookups by post; nothing looks deliveries up by subscriber (migration 0006).
        UniqueConstraint("post_id", "subscriber_id", "channel", name="uq_delivery_once"),
        # One key checks both the message and the subscriber (the message's): one check
        # per routed item instead of two (migration 0006).
        ForeignKeyConstraint(
            ["message_id", "subscriber_id"],
            ["messages.id", "messages.subscriber_id"],
            name="fk_deliveries_message",
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subscriber_id: Mapped[str] = mapped_column(String(255))
    post_id: Mapped[int] = mapped_column(ForeignKey("posts.id"))
    channel: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(16), default="digest")  # alert | digest | student
    reason: Mapped[str] = mapped_column(String(32), default="specialty")
    message_id: Mapped[int] = mapped_column(Integer, index=True)
    created_at: Mapped[datetime]

    message: Mapped[MessageRow] = relationship()


def _read_only(target: Any, value: Any, _old: Any, initiator: Any) -> None:
    raise AttributeError(f"a delivery's {initiator.key} is its message's: set it there")


for _name in ("status", "attempts", "due_at", "message_key", "last_error", "updated_at", "sent_at"):
    setattr(DeliveryRow, _name, _of_message(getattr(MessageRow, _name)))
    event.listen(getattr(DeliveryRow, _name), "set", _read_only)


class CursorRow(Base):
    """Where a source resumes, and its health (for the gap detector)."""

    __tablename__ = "cursors"

    source: Mapped[str] = mapped_column(String(255), primary_key=True)
    value: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime | None]
    last_success_at: Mapped[datetime | None]
    failing_since: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    reads_month: Mapped[str | None] = mapped_column(String(7))
    reads_count: Mapped[int] = mapped_column(Integer, default=0)


class BlockedAuthorRow(Base):
    __tablename__ = "blocked_authors"

    handle: Mapped[str] = mapped_column(String(255), primary_key=True)
    created_at: Mapped[datetime]


class SettingRow(Base):
    __tablename__ = "settings"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class UsedTokenRow(Base):
    """A single-use web link already used (the SHA-256 of its token): a correction link saves once."""

    __tablename__ = "used_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    purpose: Mapped[str] = mapped_column(String(32))
    used_at: Mapped[datetime]
