"""messages: one row per message for the send status, deliveries hang from it

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-08 10:00:00

Claiming and settling a digest updated each of its items (a row per post and subscriber,
143,000 at national scale, twice); they now update the message (15,000). Existing rows are
carried over: deliveries claimed together (one message key) become one message with their
status; never-claimed ones one message per (subscriber, channel, kind, status, due time).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# The send status moves from each delivery to its message.
MOVED = ["status", "attempts", "due_at", "message_key", "last_error", "updated_at", "sent_at"]
GROUP = "subscriber_id, channel, kind, status"
CARRY = (
    "INSERT INTO messages (subscriber_id, channel, kind, status, attempts, due_at, "
    "message_key, last_error, created_at, updated_at, sent_at) "
    "SELECT subscriber_id, channel, kind, status, max(attempts), min(due_at), {key}, "
    "max(last_error), min(created_at), max(updated_at), max(sent_at) FROM deliveries "
    "WHERE message_key IS {null} GROUP BY " + GROUP + ", {by}"
)
LINK = (
    "UPDATE deliveries SET message_id = (SELECT min(m.id) FROM messages m "
    "WHERE m.subscriber_id = deliveries.subscriber_id AND m.channel = deliveries.channel "
    "AND m.kind = deliveries.kind AND m.status = deliveries.status AND {match}) "
    "WHERE message_key IS {null}"
)


def upgrade() -> None:
    op.create_table(
        "messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subscriber_id", sa.String(length=255), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("message_key", sa.String(length=255), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["subscriber_id"], ["subscribers.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_messages_status_due", "messages", ["status", "due_at"])
    op.create_index("ix_messages_message_key", "messages", ["message_key"])
    op.create_index("ix_messages_subscriber_id", "messages", ["subscriber_id"])
    op.add_column("deliveries", sa.Column("message_id", sa.Integer(), nullable=True))
    # claimed together: one message per key (and status: a dropped item leaves its message)
    op.execute(CARRY.format(key="message_key", null="NOT NULL", by="message_key"))
    op.execute(LINK.format(match="m.message_key = deliveries.message_key", null="NOT NULL"))
    # never claimed: one message per due time
    op.execute(CARRY.format(key="NULL", null="NULL", by="due_at"))
    match = "m.message_key IS NULL AND m.due_at = deliveries.due_at"
    op.execute(LINK.format(match=match, null="NULL"))
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_index("ix_deliveries_status_due")
        batch.drop_index("ix_deliveries_message_key")
        for name in MOVED:
            batch.drop_column(name)
        batch.alter_column("message_id", existing_type=sa.Integer(), nullable=False)
        batch.create_foreign_key("fk_deliveries_message_id", "messages", ["message_id"], ["id"])
        batch.create_index("ix_deliveries_message_id", ["message_id"])


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("status", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("attempts", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("due_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("message_key", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("last_error", sa.Text(), nullable=True))
        batch.add_column(sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True))
    for name in MOVED:
        op.execute(
            f"UPDATE deliveries SET {name} = "
            f"(SELECT m.{name} FROM messages m WHERE m.id = deliveries.message_id)"
        )
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_index("ix_deliveries_message_id")
        batch.drop_constraint("fk_deliveries_message_id", type_="foreignkey")
        batch.drop_column("message_id")
        for name in ("status", "attempts", "due_at", "updated_at"):
            batch.alter_column(name, existing_type=None, nullable=False)
        batch.create_index("ix_deliveries_status_due", ["status", "due_at"])
        batch.create_index("ix_deliveries_message_key", ["message_key"])
    op.drop_table("messages")
