"""drop ix_deliveries_subscriber_id: the unique (subscriber_id, post_id, channel) serves it

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 19:00:00

Every routed item is written into each index of deliveries; this one repeated the leading
column of uq_delivery_once, which answers the same lookups (leftmost prefix, SQLite and
PostgreSQL). Dropping it makes the 143,592-row insert of the national-scale benchmark cheaper.
"""

from __future__ import annotations

from alembic import op


revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_deliveries_subscriber_id", table_name="deliveries")


def downgrade() -> None:
    op.create_index("ix_deliveries_subscriber_id", "deliveries", ["subscriber_id"])
