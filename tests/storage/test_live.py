"""One definition of a live case: the web library, routing, classification and reply-following
agree on which stored posts count (a deleted post, a reply, a duplicate are not cases)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from bot.core.post import Author
from bot.storage.cases import cases_by_ids
from bot.storage.classifications import add_classification, unclassified_posts
from bot.storage.live import is_live_case
from bot.storage.models import PostRow
from bot.storage.posts import mark_deleted, recent_top_level, store_posts
from classifiers.types import Classification

from .test_storage import T0, make_post

CASE_TEXT = "Enfant 4 ans, éruption vésiculeuse fébrile depuis hier, varicelle ? #DocTocToc"


def _store_mixed(db) -> dict[str, int]:
    """A case, its reply, a reply whose parent was never collected, its copy on another
    network, and a post deleted at its source."""
    posts = [
        make_post("1", text=CASE_TEXT),
        make_post("2", text="Varicelle probable", reply_to="1", thread_root="1"),
        make_post("3", text="Et une otite ?", reply_to="999", thread_root="999"),
        make_post(
            "at://did:plc:a/app.bsky.feed.post/3k",
            network="bluesky",
            text="Enfant 4 ans, eruption vesiculeuse febrile depuis hier, varicelle ?? #doctoctoc",
            author=Author(id="did:plc:a", handle="dra.bsky.social", name="Dr A"),
            created_at=T0 + timedelta(minutes=40),
        ),
        make_post("4", text="Douleur thoracique depuis 1 h, ECG ? #DocTocToc"),
    ]
    with db.session() as s:
        store_posts(s, posts, source="m")
    with db.session() as s:
        mark_deleted(s, "mastodon", "4")
    with db.session() as s:
        rows = s.scalars(select(PostRow)).all()
        return {r.native_id.split("/")[-1]: r.id for r in rows}


def _classify_all_as_requests(db) -> None:
    with db.session() as s:
        for row in s.scalars(select(PostRow)):
            labels = Classification(True, "pediatrics", [], "routine", 0.1)
            add_classification(s, row, labels, model_version="v", now=T0)


def test_only_the_first_copy_of_a_live_top_level_post_is_a_case(any_db):
    ids = _store_mixed(any_db)
    with any_db.session() as s:
        to_classify = [r.id for r in unclassified_posts(s, 100)]
        since = T0 - timedelta(days=1)
        followed = {p.id for p in recent_top_level(s, "m", since)}
    # classification and reply-following take the duplicate too (its labels are exported)
    assert to_classify == sorted([ids["1"], ids["3k"]])
    assert followed == {"1", "at://did:plc:a/app.bsky.feed.post/3k"}
    _classify_all_as_requests(any_db)
    with any_db.session() as s:
        cases = cases_by_ids(s, ids.values())
        live = {r.id for r in s.scalars(select(PostRow)) if is_live_case(r)}
        assert unclassified_posts(s, 100) == []
    assert set(cases) == live == {ids["1"]}
