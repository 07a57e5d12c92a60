"""The deliveries table at national scale (issue 14): the indexes its queries need and no
duplicate one (every routed item is written into each index), and planner statistics that
follow a large routing on PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import IntegrityError

from bot.core.config_models import SubscriberConfig
from bot.storage import subscribers

from ..digests.helpers import add_request


def _unique_columns(db) -> list[list[str]]:
    return [uq["column_names"] for uq in inspect(db.engine).get_unique_constraints("deliveries")]


def test_what_a_post_already_has_is_read_from_the_unique_index_alone(any_db):
    """uq_delivery_once is (post, subscriber, channel): routing writes post by post in its
    order, and the lookup by post needs no index of its own (migration 0006)."""
    assert _unique_columns(any_db) == [["post_id", "subscriber_id", "channel"]]
    names = {ix["name"] for ix in inspect(any_db.engine).get_indexes("deliveries")}
    # (PostgreSQL also lists the unique constraint's own index, uq_delivery_once.)
    assert names - {"uq_delivery_once"} == {"ix_deliveries_message_id"}
    if any_db.engine.dialect.name == "sqlite":
        with any_db.engine.connect() as conn:
            plan = " ".join(
                str(row[-1])
                for row in conn.execute(
                    text(
                        "EXPLAIN QUERY PLAN SELECT subscriber_id, post_id, channel "
                        "FROM deliveries WHERE post_id IN (1, 2)"
                    )
                )
            )
        # SQLite names the unique constraint's index sqlite_autoindex_deliveries_N.
        assert plan.startswith("SEARCH") and "COVERING INDEX" in plan, plan
        assert "(post_id=?)" in plan, plan


def test_the_index_comes_back_on_downgrade(db):
    from alembic import command

    from bot.storage.db import alembic_config

    command.downgrade(alembic_config(db.engine), "0004")
    names = {ix["name"] for ix in inspect(db.engine).get_indexes("deliveries")}
    assert "ix_deliveries_subscriber_id" in names
    command.upgrade(alembic_config(db.engine), "head")
    names = {ix["name"] for ix in inspect(db.engine).get_indexes("deliveries")}
    assert "ix_deliveries_subscriber_id" not in names


def test_a_large_routing_on_postgresql_leaves_fresh_planner_statistics(any_db, monkeypatch):
    """Claims right after a national-scale routing look rows up by id; with statistics from
    before the insert PostgreSQL scanned whole tables (100,000 subscribers: 81 s of claims)."""
    if any_db.engine.dialect.name != "postgresql":
        pytest.skip("planner statistics are refreshed on PostgreSQL only")
    from bot.storage import delivery_inserts

    now = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
    with any_db.session() as session:
        subscribers.sync(session, [SubscriberConfig(name="a")], now)
    posts = [add_request(any_db, str(n), f"case {n}", "dermatology", "soon") for n in range(30)]
    rows = [("a", post, "smtp", "digest", "specialty", now) for post in posts]
    monkeypatch.setattr(delivery_inserts, "ANALYZE_AFTER", 50)
    with any_db.session() as session:  # below the threshold: statistics untouched
        delivery_inserts.insert_many(session, rows[:10], now)
    assert _estimated_rows(any_db, "deliveries") <= 0
    monkeypatch.setattr(delivery_inserts, "ANALYZE_AFTER", 20)
    with any_db.session() as session:
        delivery_inserts.insert_many(session, rows[10:], now)
    assert _estimated_rows(any_db, "deliveries") == 30
    assert _estimated_rows(any_db, "messages") == 2


def _estimated_rows(db, table: str) -> float:
    with db.engine.connect() as conn:
        return conn.execute(
            text(
                "SELECT reltuples FROM pg_class WHERE relname = :t "
                "AND relnamespace = current_schema()::regnamespace"
            ),
            {"t": table},
        ).scalar_one()


def _foreign_keys(db) -> list[tuple[list[str], str, list[str]]]:
    return sorted(
        (fk["constrained_columns"], fk["referred_table"], fk["referred_columns"])
        for fk in inspect(db.engine).get_foreign_keys("deliveries")
    )


# The keys of a delivery: SQLite's foreign keys; on PostgreSQL, triggers that check a whole
# statement at once (migration 0007). The same rules on both, tested below.
_HEAD_KEYS = {
    "sqlite": [
        (["message_id", "subscriber_id"], "messages", ["id", "subscriber_id"]),
        (["post_id"], "posts", ["id"]),
    ],
    "postgresql": [],
}


def _one_routed_item(db):
    """Subscribers a and b, a post, and a's delivery of it by smtp; the post id."""
    from bot.storage import delivery_inserts

    now = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
    with db.session() as session:
        subscribers.sync(session, [SubscriberConfig(name="a"), SubscriberConfig(name="b")], now)
    post = add_request(db, "1", "case", "dermatology", "soon")
    with db.session() as session:
        delivery_inserts.insert_many(
            session, [("a", post, "smtp", "digest", "specialty", now)], now
        )
    return post


def test_an_item_must_belong_to_a_message_of_its_own_subscriber(any_db):
    """One key (message, subscriber) checks both per routed item (migration 0006): the
    subscriber must exist and the message must be that subscriber's."""
    assert _foreign_keys(any_db) == _HEAD_KEYS[any_db.engine.dialect.name]
    _one_routed_item(any_db)
    copy = (
        "INSERT INTO deliveries (subscriber_id, post_id, channel, kind, reason, message_id, "
        "created_at) SELECT :sub, post_id, :channel, kind, reason, message_id, created_at "
        "FROM deliveries WHERE channel = 'smtp'"
    )
    with any_db.session() as session:  # a's message, a's item on another channel: fine
        session.execute(text(copy), {"sub": "a", "channel": "outbox"})
    for stranger in ("b", "nobody"):  # b's item in a's message; an unknown subscriber
        with pytest.raises(IntegrityError), any_db.session() as session:
            session.execute(text(copy), {"sub": stranger, "channel": "x"})


def test_an_item_needs_its_post_and_its_post_and_message_keep_their_items(any_db):
    post = _one_routed_item(any_db)
    insert = text(
        "INSERT INTO deliveries (subscriber_id, post_id, channel, kind, reason, message_id, "
        "created_at) SELECT subscriber_id, :post, 'outbox', kind, reason, message_id, "
        "created_at FROM deliveries"
    )
    with pytest.raises(IntegrityError), any_db.session() as session:
        session.execute(insert, {"post": post + 1000})  # no such post
    with any_db.session() as session:  # the post's other rows go: only its item holds it
        session.execute(text("DELETE FROM classifications WHERE post_id = :p"), {"p": post})
    for statement in (
        "DELETE FROM posts WHERE id = :p",
        "UPDATE posts SET id = id + 1000 WHERE id = :p",
        "DELETE FROM messages",
        "UPDATE messages SET subscriber_id = 'b'",
        "UPDATE deliveries SET post_id = post_id + 1000",
    ):
        with pytest.raises(IntegrityError), any_db.session() as session:
            session.execute(text(statement), {"p": post})
    with any_db.session() as session:  # without its item, the post may go
        session.execute(text("DELETE FROM deliveries"))
        session.execute(text("DELETE FROM messages"))
        session.execute(text("DELETE FROM posts WHERE id = :p"), {"p": post})


def test_postgresql_checks_the_keys_once_per_statement(any_db):
    """Migration 0007: PostgreSQL's per-row foreign keys of deliveries became statement
    triggers; downgrading brings the foreign keys back."""
    if any_db.engine.dialect.name != "postgresql":
        pytest.skip("statement triggers replace foreign keys on PostgreSQL only")
    from alembic import command

    from bot.storage.db import alembic_config

    def triggers() -> set[str]:
        with any_db.engine.connect() as conn:
            return set(
                conn.scalars(
                    text(
                        "SELECT tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                        "WHERE NOT t.tgisinternal AND c.relnamespace = current_schema()::regnamespace"
                    )
                )
            )

    assert triggers() == {
        "deliveries_references_insert",
        "deliveries_references_update",
        "posts_keep_delivered",
        "messages_keep_items",
    }
    command.downgrade(alembic_config(any_db.engine), "0006")
    assert triggers() == set()
    assert _foreign_keys(any_db) == _HEAD_KEYS["sqlite"]
    command.upgrade(alembic_config(any_db.engine), "head")
    assert _foreign_keys(any_db) == [] and len(triggers()) == 4


def test_0005_keys_come_back_on_downgrade(any_db):
    from alembic import command

    from bot.storage.db import alembic_config

    command.downgrade(alembic_config(any_db.engine), "0005")
    assert _unique_columns(any_db) == [["subscriber_id", "post_id", "channel"]]
    names = {ix["name"] for ix in inspect(any_db.engine).get_indexes("deliveries")}
    assert "ix_deliveries_post_id" in names
    assert _foreign_keys(any_db) == [
        (["message_id"], "messages", ["id"]),
        (["post_id"], "posts", ["id"]),
        (["subscriber_id"], "subscribers", ["id"]),
    ]
    command.upgrade(alembic_config(any_db.engine), "head")
    assert _foreign_keys(any_db) == _HEAD_KEYS[any_db.engine.dialect.name]
    assert _unique_columns(any_db) == [["post_id", "subscriber_id", "channel"]]


def test_bulk_rows_keep_every_character_of_their_values(any_db):
    """Bulk inserts (PostgreSQL: COPY, whose text format escapes backslash, tab, CR and
    LF) keep values whole: a subscriber key with all of them, and a due time with an offset,
    come back as they were."""
    from datetime import timedelta, timezone

    from bot.storage import delivery_inserts
    from bot.storage.models import DeliveryRow, MessageRow

    odd = "Dr\ttab\\back\nline\rret\\N é"
    now = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
    due = datetime(2026, 12, 7, 19, 30, tzinfo=timezone(timedelta(hours=1)))
    with any_db.session() as session:
        subscribers.sync(session, [SubscriberConfig(name="x", id=odd)], now)
    post = add_request(any_db, "1", "case", "dermatology", "soon")
    with any_db.session() as session:
        delivery_inserts.insert_many(
            session, [(odd, post, "smtp", "digest", "specialty", due)], now
        )
    with any_db.session() as session:
        [(sub, channel, kind, reason, created)] = session.execute(
            select(
                DeliveryRow.subscriber_id, DeliveryRow.channel, DeliveryRow.kind,
                DeliveryRow.reason, DeliveryRow.created_at,
            )
        ).all()  # fmt: skip
        [(message_sub, due_at, status)] = session.execute(
            select(MessageRow.subscriber_id, MessageRow.due_at, MessageRow.status)
        ).all()
    assert (sub, channel, kind, reason) == (odd, "smtp", "digest", "specialty")
    assert (message_sub, status) == (odd, "pending")
    assert due_at == due and created == now
