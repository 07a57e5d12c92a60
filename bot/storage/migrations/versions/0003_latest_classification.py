"""index classifications(post_id, id): a post's latest classification in one lookup

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07 14:10:00

The web case list reads each case's latest classification; on PostgreSQL without this index
max(id) per post walked the primary key (minutes at 100,000 cases).
"""

from __future__ import annotations

from alembic import op


revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_classifications_post_latest", "classifications", ["post_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_classifications_post_latest", table_name="classifications")
