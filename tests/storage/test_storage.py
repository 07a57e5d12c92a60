"""Storage round trips on SQLite and PostgreSQL (skipped with a reason when not configured)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from bot.core.post import Author, Media, Post
from bot.storage import cursors
from bot.storage.db import current_tables
from bot.storage.models import ClassificationRow, DeliveryRow, MessageRow, PostRow, SubscriberRow
from bot.storage.posts import mark_deleted, row_to_post, store_posts

T0 = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)


def make_post(i: str, text: str = "Éruption chez un enfant ? photo 📷 #DocTocToc", **kw) -> Post:
    defaults = dict(
        network="mastodon",
        id=i,
        url=f"https://medecins.example/@a/{i}",
        author=Author(id="7", handle="@drA@medecins.example", name="Dr A"),
        text=text,
        created_at=T0,
        lang="fr",
        hashtags=["DocTocToc"],
        media=[Media(url="https://medecins.example/m/1.jpg", alt="plaques érythémateuses")],
    )
    defaults.update(kw)
    return Post(**defaults)


def test_schema_has_every_table(any_db):
    assert {
        "posts",
        "classifications",
        "subscribers",
        "deliveries",
        "messages",
        "cursors",
        "corrections",
        "alembic_version",
    } <= set(current_tables(any_db.engine))


def test_post_round_trip_keeps_every_field(any_db):
    post = make_post("101", edited_at=T0 + timedelta(minutes=5), reply_to=None, raw={"id": "101"})
    with any_db.session() as s:
        assert len(store_posts(s, [post]).new) == 1
    with any_db.session() as s:
        row = s.scalar(select(PostRow))
        back = row_to_post(row)
    assert back.text == post.text
    assert back.created_at == T0 and back.created_at.tzinfo is not None
    assert back.edited_at == T0 + timedelta(minutes=5)
    assert back.media == post.media and back.hashtags == ["DocTocToc"]
    assert back.author == post.author


def test_same_post_twice_is_stored_once_and_edits_update(any_db):
    with any_db.session() as s:
        store_posts(s, [make_post("1")])
    edited = make_post(
        "1", text="Éruption chez un enfant de 3 ans ? #DocTocToc", edited_at=T0 + timedelta(hours=1)
    )
    with any_db.session() as s:
        again = store_posts(s, [make_post("1")])
        changed = store_posts(s, [edited])
    assert again.new == [] and again.unchanged == 1
    assert len(changed.updated) == 1
    with any_db.session() as s:
        rows = s.scalars(select(PostRow)).all()
        assert len(rows) == 1 and "3 ans" in rows[0].text


def test_replies_are_linked_and_counted_even_when_they_arrive_first(any_db):
    reply = make_post(
        "2",
        text="Je pense à un érythème migrant",
        reply_to="1",
        thread_root="1",
        created_at=T0 + timedelta(minutes=9),
    )
    with any_db.session() as s:
        store_posts(s, [reply])
        store_posts(s, [make_post("1")])
    with any_db.session() as s:
        case = s.scalar(select(PostRow).where(PostRow.native_id == "1"))
        assert case.answer_count == 1
        assert case.first_answer_at == T0 + timedelta(minutes=9)


def test_cross_network_duplicate_is_linked(any_db):
    masto = make_post(
        "1", text="Enfant 4 ans, éruption vésiculeuse fébrile depuis hier, varicelle ? #DocTocToc"
    )
    bsky = make_post(
        "at://did:plc:a/app.bsky.feed.post/3k",
        network="bluesky",
        text="Enfant 4 ans, eruption vesiculeuse febrile depuis hier, varicelle ?? #doctoctoc",
        author=Author(id="did:plc:a", handle="dra.bsky.social", name="Dr A"),
        created_at=T0 + timedelta(minutes=40),
    )
    with any_db.session() as s:
        store_posts(s, [masto, bsky])
    with any_db.session() as s:
        first, second = s.scalars(select(PostRow).order_by(PostRow.id)).all()
        assert second.duplicate_of_id == first.id


def test_duplicate_collected_out_of_order_points_at_the_earlier_copy(any_db):
    text = "Femme 70 ans, FA rapide sous bisoprolol, je majore ou j'ajoute digoxine ? #DocTocToc"
    later = make_post(
        "at://did:plc:a/app.bsky.feed.post/3k",
        network="bluesky",
        text=text,
        author=Author(id="did:plc:a", handle="dra.bsky.social", name="Dr A"),
        created_at=T0 + timedelta(hours=3),
    )
    other_case = make_post(
        "at://did:plc:a/app.bsky.feed.post/3m",
        network="bluesky",
        text="Tout autre question: vaccin zona chez un patient sous méthotrexate ? #DocTocToc",
        author=Author(id="did:plc:a", handle="dra.bsky.social", name="Dr A"),
        created_at=T0 + timedelta(hours=3),
    )
    same_network = make_post("2", text=text, created_at=T0 + timedelta(minutes=5))
    with any_db.session() as s:  # the Bluesky copies are collected first
        store_posts(s, [later, other_case])
    with any_db.session() as s:  # then the earlier Mastodon copy, and its repost there
        store_posts(s, [make_post("1", text=text), same_network])
    with any_db.session() as s:
        rows = {r.native_id: r for r in s.scalars(select(PostRow))}
        first = rows["1"]
        assert first.duplicate_of_id is None
        assert rows[later.id].duplicate_of_id == first.id
        assert rows[other_case.id].duplicate_of_id is None
        assert rows["2"].duplicate_of_id is None  # the same network is never a duplicate


def test_deletion_erases_content(any_db):
    with any_db.session() as s:
        store_posts(s, [make_post("1")])
        assert mark_deleted(s, "mastodon", "1")
    with any_db.session() as s:
        row = s.scalar(select(PostRow))
        assert row.deleted and row.text == "" and row.media == []


def test_classification_subscriber_delivery_and_cursor(any_db):
    with any_db.session() as s:
        [pid] = store_posts(s, [make_post("1")]).new
        s.add(
            ClassificationRow(
                post_id=pid,
                model_version="v1",
                is_request=True,
                specialty="dermatology",
                specialty_scores=[{"id": "dermatology", "score": 0.9}],
                urgency="soon",
                urgency_score=0.6,
                cues=["photo"],
                uncertain=False,
                created_at=T0,
            )
        )
        s.add(
            SubscriberRow(id="dr-a", name="Dr A", settings={"x": 1}, in_config=True, updated_at=T0)
        )
        s.flush()
        s.add(
            DeliveryRow(
                subscriber_id="dr-a",
                post_id=pid,
                channel="smtp",
                kind="digest",
                message=MessageRow(
                    subscriber_id="dr-a",
                    channel="smtp",
                    kind="digest",
                    status="pending",
                    attempts=0,
                    due_at=T0,
                    created_at=T0,
                    updated_at=T0,
                ),
                created_at=T0,
            )
        )
        cursors.set_cursor(s, "mastodon:x", "12345")
        cursors.record_failure(s, "mastodon:x", "HTTP 500", T0)
    with any_db.session() as s:
        c = s.scalar(select(ClassificationRow))
        assert c.specialty_scores[0]["id"] == "dermatology" and c.cues == ["photo"]
        assert s.scalar(select(DeliveryRow)).status == "pending"
        assert cursors.get_cursor(s, "mastodon:x") == "12345"
        [h] = cursors.health(s, {"mastodon:x": timedelta(minutes=30)}, T0 + timedelta(hours=1))
        assert not h.healthy and h.last_error == "HTTP 500"


def test_a_database_other_than_sqlite_or_postgresql_is_refused_with_a_clear_error():
    import pytest

    from bot.core.errors import StorageError
    from bot.storage.db import Database

    with pytest.raises(StorageError) as err:
        Database("mysql://bot:secret@db.example.org/doctoctoc")
    message = str(err.value)
    assert "mysql is not supported: use SQLite or PostgreSQL" in message
    assert "secret" not in message  # the password is masked in the error
