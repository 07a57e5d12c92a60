"""Migration 0004 carries the deliveries of an older database over to messages: each
claimed message (one key) becomes one message row with its status, never-claimed items one
per due time; the send status read through a delivery stays what it was."""

from __future__ import annotations

from datetime import timedelta

import pytest
from alembic import command
from sqlalchemy import select, text

from bot.storage.db import Database, alembic_config
from bot.storage.models import DeliveryRow, MessageRow
from tests.conftest import POSTGRES_URL
from tests.pg import scratch_schema

from ..digests.helpers import T0

LATER = T0 + timedelta(hours=8)
# (subscriber, post, channel, kind, status, attempts, due, key, error, sent)
OLD_ROWS = [
    ("a", 1, "smtp", "digest", "sent", 0, T0, "k-sent", None, T0),
    ("a", 2, "smtp", "digest", "sent", 0, T0, "k-sent", None, T0),
    ("a", 3, "smtp", "digest", "sending", 0, T0, "k-crash", None, None),
    ("a", 4, "smtp", "digest", "sending", 0, LATER, "k-crash", None, None),
    ("b", 1, "x", "alert", "pending", 2, LATER, "k-retry", "429", None),
    ("b", 2, "x", "alert", "failed", 5, T0, "k-failed", "403", None),
    ("b", 3, "x", "alert", "dropped", 0, T0, None, "post deleted at its source", None),
    ("a", 5, "smtp", "digest", "pending", 0, LATER, None, None, None),
    ("a", 6, "smtp", "digest", "pending", 0, LATER, None, None, None),
    ("a", 7, "smtp", "digest", "pending", 0, T0, None, None, None),
    ("b", 4, "smtp", "digest", "pending", 0, LATER, None, None, None),
]
COLUMNS = (
    "subscriber_id, post_id, channel, kind, status, attempts, due_at, message_key, "
    "last_error, sent_at"
)


def _database(request, tmp_path):
    if request.param == "sqlite":
        return Database(f"sqlite:///{tmp_path / 'old.db'}"), None
    if not POSTGRES_URL:
        pytest.skip("PostgreSQL not configured: set DOCTOCTOC_TEST_POSTGRES_URL (.ci/run does)")
    schema = scratch_schema(POSTGRES_URL)
    return Database(schema.__enter__()), schema


@pytest.fixture(params=["sqlite", "postgresql"])
def old_db(request, tmp_path):
    """A database at revision 0003 (deliveries carry their own status), with rows."""
    db, schema = _database(request, tmp_path)
    command.upgrade(alembic_config(db.engine), "0003")
    with db.engine.begin() as conn:
        for sub in ("a", "b"):
            conn.execute(
                text(
                    "INSERT INTO subscribers (id, name, settings, in_config, updated_at) "
                    "VALUES (:id, :id, '{}', true, :t)"
                ),
                {"id": sub, "t": T0},
            )
        for post in range(1, 8):
            conn.execute(
                text(
                    "INSERT INTO posts (id, network, key, native_id, url, author_id, "
                    "author_handle, author_name, author_key, text, created_at, collected_at, "
                    "hashtags, media, deleted, answer_count) VALUES (:id, 'mastodon', :k, :k, "
                    "'', '', '', '', '', '', :t, :t, '[]', '[]', false, 0)"
                ),
                {"id": post, "k": str(post), "t": T0},
            )
        for row in OLD_ROWS:
            names = COLUMNS.split(", ")
            conn.execute(
                text(
                    f"INSERT INTO deliveries ({COLUMNS}, reason, created_at, updated_at) "
                    f"VALUES ({', '.join(':' + n for n in names)}, 'specialty', :t, :t)"
                ),
                dict(zip(names, row, strict=True), t=T0),
            )
    yield db
    db.dispose()
    if schema is not None:
        schema.__exit__(None, None, None)


def test_upgrade_makes_one_message_per_key_or_due_time_and_keeps_every_status(old_db):
    old_db.upgrade()
    with old_db.session() as s:
        messages = s.scalars(select(MessageRow).order_by(MessageRow.id)).all()
        items = s.execute(
            select(
                DeliveryRow.subscriber_id,
                DeliveryRow.post_id,
                DeliveryRow.channel,
                DeliveryRow.kind,
                DeliveryRow.status,
                DeliveryRow.attempts,
                DeliveryRow.due_at,
                DeliveryRow.message_key,
                DeliveryRow.last_error,
                DeliveryRow.sent_at,
            )  # fmt: skip
        ).all()
        members = {
            m.id: sorted(s.scalars(select(DeliveryRow.post_id).where(DeliveryRow.message_id == m.id)))
            for m in messages
        }  # fmt: skip
    carried = {
        (sub, post, ch, kind, status, tries, due if status == "pending" else None, key, err, sent)
        for sub, post, ch, kind, status, tries, due, key, err, sent in items
    }
    expected = {
        (sub, post, ch, kind, status, tries, due if status == "pending" else None, key, err, sent)
        for sub, post, ch, kind, status, tries, due, key, err, sent in OLD_ROWS
    }
    assert carried == expected
    by_key = {(m.subscriber_id, m.message_key, m.due_at): m for m in messages}
    assert len(messages) == 8
    assert members[by_key[("a", "k-sent", T0)].id] == [1, 2]
    crashed = by_key[("a", "k-crash", T0)]  # the earliest due time of its items
    assert members[crashed.id] == [3, 4] and crashed.status == "sending"
    assert members[by_key[("a", None, LATER)].id] == [5, 6]  # one message per due time
    assert members[by_key[("a", None, T0)].id] == [7]
    retry = by_key[("b", "k-retry", LATER)]
    assert (retry.status, retry.attempts, retry.last_error) == ("pending", 2, "429")


def test_downgrade_gives_each_delivery_its_status_back(old_db):
    old_db.upgrade()
    command.downgrade(alembic_config(old_db.engine), "0003")
    with old_db.engine.connect() as conn:
        rows = conn.execute(
            text(f"SELECT {COLUMNS} FROM deliveries ORDER BY subscriber_id, post_id, channel")
        ).all()
    assert len(rows) == len(OLD_ROWS)
    assert {(r[0], r[1], r[4], r[7]) for r in rows} == {(r[0], r[1], r[4], r[7]) for r in OLD_ROWS}
