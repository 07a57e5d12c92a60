"""The deliveries table keeps the indexes its queries need and no duplicate one: every routed
item is written into each index, so a redundant index costs at national scale (issue 14)."""

from __future__ import annotations

from sqlalchemy import inspect, text


def test_a_subscribers_deliveries_are_found_through_the_unique_index_alone(any_db):
    indexes = inspect(any_db.engine).get_indexes("deliveries")
    names = {ix["name"] for ix in indexes}
    assert "ix_deliveries_subscriber_id" not in names
    assert {"ix_deliveries_post_id", "ix_deliveries_message_id"} <= names
    if any_db.engine.dialect.name == "sqlite":
        with any_db.engine.connect() as conn:
            plan = " ".join(
                str(row[-1])
                for row in conn.execute(
                    text("EXPLAIN QUERY PLAN SELECT id FROM deliveries WHERE subscriber_id = 'a'")
                )
            )
        # SQLite names the unique constraint's index sqlite_autoindex_deliveries_N.
        assert plan.startswith("SEARCH") and "(subscriber_id=?)" in plan, plan


def test_the_index_comes_back_on_downgrade(db):
    from alembic import command

    from bot.storage.db import alembic_config

    command.downgrade(alembic_config(db.engine), "0004")
    names = {ix["name"] for ix in inspect(db.engine).get_indexes("deliveries")}
    assert "ix_deliveries_subscriber_id" in names
    command.upgrade(alembic_config(db.engine), "head")
    names = {ix["name"] for ix in inspect(db.engine).get_indexes("deliveries")}
    assert "ix_deliveries_subscriber_id" not in names
