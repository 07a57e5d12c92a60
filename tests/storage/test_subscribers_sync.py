"""The subscribers table mirrors the configured subscribers (PostgreSQL inserts the new ones
through COPY and a temporary table): the same rows on both databases."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from bot.core.config_models import SubscriberConfig
from bot.storage import subscribers
from bot.storage.models import SubscriberRow

NOW = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)


def test_new_subscribers_are_stored_with_their_settings(any_db):
    configured = [
        SubscriberConfig(name="Dr Ève « O'Neil »", specialties=["cardiology"], triage=True),
        SubscriberConfig(name="b", id="b\\t\n", language=["en"], max_items=3),
        SubscriberConfig(name="c"),
    ]
    with any_db.session() as session:  # "c" is stored already, under another name
        session.add(SubscriberRow(id="c", name="theirs", settings={}, updated_at=NOW))
    with any_db.session() as session:
        assert subscribers.sync(session, configured, NOW)
    with any_db.session() as session:
        rows = {r.id: r for r in session.scalars(select(SubscriberRow))}
    assert set(rows) == {s.key for s in configured}
    for sub in configured[:2]:
        row = rows[sub.key]
        assert row.name == sub.name and row.in_config and row.unsubscribed_at is None
        assert row.settings == sub.model_dump(mode="json")
        assert row.updated_at == NOW
    # there already: updated to the configuration, not inserted twice
    assert (rows["c"].name, rows["c"].settings) == ("c", configured[2].model_dump(mode="json"))
    with any_db.session() as session:  # nothing changed: nothing written
        assert not subscribers.sync(session, configured, NOW)
