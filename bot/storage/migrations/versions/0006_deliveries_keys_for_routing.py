"""deliveries: keys for routing at scale (one foreign key to the message, post-first unique)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 20:00:00

Routing writes a row per (subscriber, request, channel) into every index and foreign key
check of deliveries: 143,592 rows for 200 requests to 10,000 subscribers.

- A delivery referenced its subscriber and its message separately: two foreign key checks
  per row (PostgreSQL runs a query per row and key, ~0.7 s each here). The message already
  references the subscriber: one composite key to the message (its id and its subscriber)
  checks both, and also that an item belongs to a message of its own subscriber, which the
  two keys did not.
- uq_delivery_once was (subscriber, post, channel): routing goes post by post, so each row
  landed anywhere in it. As (post, subscriber, channel) rows arrive in its order, and it
  answers the lookups by post (what a post already has), so ix_deliveries_post_id goes.
  Nothing looks deliveries up by subscriber (a subscriber's queue is its messages).
"""

from __future__ import annotations

from alembic import op


revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# SQLite keeps 0001's foreign keys unnamed: batch mode names them by this convention.
NAMING = {"fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s"}


def _subscriber_fk() -> str:
    if op.get_bind().dialect.name == "postgresql":
        return "deliveries_subscriber_id_fkey"  # PostgreSQL's own name (0001 gave none)
    return "fk_deliveries_subscriber_id_subscribers"


def upgrade() -> None:
    # A unique index (not a constraint): SQLite would rebuild messages for a constraint,
    # which deliveries reference.
    op.create_index("uq_messages_id_subscriber", "messages", ["id", "subscriber_id"], unique=True)
    subscriber_fk = _subscriber_fk()
    with op.batch_alter_table("deliveries", naming_convention=NAMING) as batch:
        batch.drop_constraint(subscriber_fk, type_="foreignkey")
        batch.drop_constraint("fk_deliveries_message_id", type_="foreignkey")
        batch.create_foreign_key(
            "fk_deliveries_message",
            "messages",
            ["message_id", "subscriber_id"],
            ["id", "subscriber_id"],
        )
        batch.drop_constraint("uq_delivery_once", type_="unique")
        batch.create_unique_constraint("uq_delivery_once", ["post_id", "subscriber_id", "channel"])
        batch.drop_index("ix_deliveries_post_id")


def downgrade() -> None:
    subscriber_fk = _subscriber_fk()
    with op.batch_alter_table("deliveries", naming_convention=NAMING) as batch:
        batch.create_index("ix_deliveries_post_id", ["post_id"])
        batch.drop_constraint("uq_delivery_once", type_="unique")
        batch.create_unique_constraint("uq_delivery_once", ["subscriber_id", "post_id", "channel"])
        batch.drop_constraint("fk_deliveries_message", type_="foreignkey")
        batch.create_foreign_key("fk_deliveries_message_id", "messages", ["message_id"], ["id"])
        batch.create_foreign_key(subscriber_fk, "subscribers", ["subscriber_id"], ["id"])
    op.drop_index("uq_messages_id_subscriber", table_name="messages")
