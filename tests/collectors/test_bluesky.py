"""Bluesky search backfill, threads, deletions and error handling, with the real atproto
`Client` against a local fake XRPC server (tests/fakes/bluesky_server.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.collect import run_source
from bot.collectors import build_collector
from bot.collectors.bluesky import BlueskyCollector, BlueskyCursor
from bot.core.config_models import SourceConfig
from bot.storage import cursors
from bot.storage.models import PostRow
from tests.fakes.bluesky_data import BASE_TIME, post_record, post_view, tid
from tests.fakes.bluesky_server import FakeBluesky

TAGS = ["DocTocToc"]
SEARCH = "app.bsky.feed.searchPosts"
ALICE = "did:plc:aliceaaaaaaaaaaaaaaaaaaa"
NOW = BASE_TIME + timedelta(hours=1)


@pytest.fixture
def api() -> Iterator[FakeBluesky]:
    server = FakeBluesky()
    yield server
    server.close()


def collector(api: FakeBluesky, clock, **overrides) -> BlueskyCollector:
    settings = {
        "network": "bluesky",
        "name": "bsky",
        "url": api.url,
        "handle": api.handle,
        "app_password": api.password,
        "retries": 2,
        "timeout": timedelta(seconds=2),
    }
    settings.update(overrides)
    built = build_collector(SourceConfig(**settings), TAGS, sleep=clock.sleep, clock=clock)
    assert isinstance(built, BlueskyCollector)
    return built


def add(
    api: FakeBluesky, n: int, text: str = "Question #DocTocToc n°{n}", *, when=None, **kw
) -> str:
    """Post n, created and indexed at `when`, by default BASE_TIME - n minutes (larger n = older)."""
    when = when or BASE_TIME - timedelta(minutes=n)
    tags = ["DocTocToc"] if "#DocTocToc" in text and "#DocTocTocs" not in text else None
    record = post_record(text.format(n=n), created_at=when, facet_tags=tags, json_form=True, **kw)
    return api.add(post_view(ALICE, tid(n), record, handle="alice.bsky.social", name="Dr Alice"))


def rows(db) -> dict[str, PostRow]:
    with db.session() as session:
        return {row.native_id: row for row in session.scalars(select(PostRow))}


def saved(db) -> BlueskyCursor:
    with db.session() as session:
        return BlueskyCursor.decode(cursors.get_cursor(session, "bsky"))


def test_search_backfill_pages_newest_first_then_stops_at_the_last_run(db, api, clock):
    uris = [add(api, n) for n in range(1, 251)]
    add(api, 300, "Plural #DocTocTocs is another tag")
    add(api, 301, "No tag at all")
    first = run_source(db, collector(api, clock), now=NOW, follow=False)
    assert first.error is None and len(first.new) == 250 and set(rows(db)) == set(uris)
    assert api.requests[SEARCH] == 3  # 100 + 100 + 51 (the junk "#DocTocTocs" post too)
    queries = [q for nsid, q in api.log if nsid == SEARCH]
    assert all(q["q"] == ["#DocTocToc"] and q["sort"] == ["latest"] for q in queries)
    assert [q.get("cursor") for q in queries] == [None, ["100"], ["200"]]
    assert saved(db).since == "2026-11-27T07:59:00Z"  # newest indexedAt seen
    assert api.requests["com.atproto.server.createSession"] == 1

    newer = [add(api, 1000 + k, when=BASE_TIME + timedelta(minutes=k)) for k in (1, 2, 3)]
    api.requests.clear()
    second = run_source(db, collector(api, clock), now=NOW, follow=False)
    assert len(second.new) == 3 and set(newer) <= set(rows(db))
    assert api.requests[SEARCH] == 1
    third = run_source(db, collector(api, clock), now=NOW, follow=False)
    assert third.new == [] and api.requests[SEARCH] == 2


def test_cursor_only_moves_once_the_whole_backfill_is_stored(db, api, clock):
    for n in range(1, 151):
        add(api, n)
    api.fail(SEARCH, 500, times=1)  # page 1 answers after one retry
    api.requests.clear()
    bsky = collector(api, clock)
    pages = bsky.pages(None)
    page = next(pages)
    assert len(page.posts) == 100 and page.cursor is None
    api.fail(SEARCH, 500, times=3)  # page 2 fails for good
    with pytest.raises(Exception, match="failed after 3 attempts"):
        list(pages)
    assert len(clock.slept) == 3
    run = run_source(db, collector(api, clock), now=NOW, follow=False)
    assert run.error is None and len(run.new) == 150 and saved(db).since


def test_post_fields_images_with_alt_text_and_handle_url(db, api, clock):
    uri = add(
        api,
        1,
        "Lésion cutanée ? #DocTocToc",
        images=[("a", "photo de la lésion"), ("b", "")],
        langs=["fr"],
    )
    run_source(db, collector(api, clock), now=NOW, follow=False)
    row = rows(db)[uri]
    assert row.url == f"https://bsky.app/profile/alice.bsky.social/post/{tid(1)}"
    assert (row.author_id, row.author_handle, row.author_name) == (
        ALICE,
        "alice.bsky.social",
        "Dr Alice",
    )
    assert (row.lang, row.hashtags, row.key) == ("fr", ["DocTocToc"], uri)
    assert [m["alt"] for m in row.media] == ["photo de la lésion", ""]
    assert row.media[0]["url"].startswith(f"https://cdn.bsky.app/img/feed_fullsize/plain/{ALICE}/")
    assert row.raw["uri"] == uri and row.raw["embed"]["$type"] == "app.bsky.embed.images#view"


def test_malformed_items_are_skipped(db, api, clock):
    good = add(api, 1)
    api.junk_items = [
        "garbage",
        {"uri": "at://x"},
        {**api.views[good], "record": {"$type": "app.bsky.feed.like"}},
        {**api.views[good], "uri": 5},
    ]
    run = run_source(db, collector(api, clock), now=NOW, follow=False)
    assert run.error is None and run.skipped == 4 and set(rows(db)) == {good}


def test_replies_are_collected_and_linked_to_their_case(db, api, clock):
    case = add(api, 1)
    reply = api.add(
        post_view(
            "did:plc:bob",
            tid(2),
            post_record(
                "Plutôt une péricardite", created_at=BASE_TIME, reply=(case, case), json_form=True
            ),
        ),
        reply_to=case,
    )
    nested = api.add(
        post_view(
            "did:plc:carol",
            tid(3),
            post_record("D'accord", created_at=BASE_TIME, reply=(case, reply), json_form=True),
        ),
        reply_to=reply,
    )
    run = run_source(db, collector(api, clock), now=NOW)
    assert run.error is None
    stored = rows(db)
    assert stored[reply].answer_to_id == stored[case].id and stored[reply].reply_to == case
    assert stored[nested].answer_to_id == stored[case].id and stored[nested].thread_root == case
    assert stored[case].answer_count == 2
    assert api.requests["app.bsky.feed.getPostThread"] == 1


def test_recheck_marks_deleted_posts_in_batches_of_25(db, api, clock):
    uris = [add(api, n) for n in range(1, 31)]
    run_source(db, collector(api, clock), now=NOW, follow=False)
    api.delete(uris[3])
    api.delete(uris[28])
    bsky = collector(api, clock)
    bsky.max_thread_calls = 0
    run = run_source(db, bsky, now=NOW)
    assert run.error is None and run.deleted == 2
    assert {u for u, r in rows(db).items() if r.deleted} == {uris[3], uris[28]}
    assert api.requests["app.bsky.feed.getPosts"] == 2


@pytest.mark.parametrize(
    ("headers", "low", "high"),
    [
        ({"ratelimit-reset": "now+30", "ratelimit-remaining": "0"}, 28.0, 31.0),  # epoch seconds
        ({"Retry-After": "7"}, 7.0, 7.0),
        ({}, 2.0, 2.5),  # no header: the shared exponential backoff
    ],
    ids=["ratelimit-reset", "retry-after", "no-header"],
)
def test_429_honours_reset_headers(db, api, clock, headers, low, high):
    uri = add(api, 1)
    if headers.get("ratelimit-reset") == "now+30":
        headers = {**headers, "ratelimit-reset": str(int(time.time()) + 30)}
    api.fail(
        SEARCH,
        429,
        headers=headers,
        body={"error": "RateLimitExceeded", "message": "Rate Limit Exceeded"},
    )
    run = run_source(db, collector(api, clock), now=NOW, follow=False)
    assert run.error is None and set(rows(db)) == {uri}
    [waited] = clock.slept
    assert low <= waited <= high


def test_rate_limit_reset_too_far_ends_the_cycle(db, api, clock):
    add(api, 1)
    api.fail(SEARCH, 429, headers={"ratelimit-reset": str(int(time.time()) + 3600)})
    run = run_source(db, collector(api, clock), now=NOW, follow=False)
    assert run.error and "giving up for this cycle" in run.error and saved(db).since is None


def test_server_errors_are_retried_then_reported(db, api, clock):
    uri = add(api, 1)
    api.fail(SEARCH, 503, times=2)
    assert run_source(db, collector(api, clock), now=NOW, follow=False).error is None
    assert set(rows(db)) == {uri} and len(clock.slept) == 2
    api.fail(SEARCH, 500, times=3)
    run = run_source(db, collector(api, clock), now=NOW, follow=False)
    assert run.error and "failed after 3 attempts" in run.error and "500" in run.error


def test_timeouts_are_retried(db, api, clock):
    uri = add(api, 1)
    api.fail(SEARCH, 200, delay=0.6)
    run = run_source(
        db, collector(api, clock, timeout=timedelta(seconds=0.2)), now=NOW, follow=False
    )
    assert run.error is None and set(rows(db)) == {uri}
    assert len(clock.slept) == 1 and api.requests[SEARCH] == 2


def test_wrong_app_password_is_reported_clearly(db, api, clock):
    run = run_source(db, collector(api, clock, app_password="wrong"), now=NOW, follow=False)
    assert run.error and "not authorized" in run.error and "app_password" in run.error
    assert clock.slept == []  # not retried


def test_thread_of_a_deleted_case_is_skipped(db, api, clock):
    case = add(api, 1)
    run_source(db, collector(api, clock), now=NOW, follow=False)
    api.delete(case)
    run = run_source(db, collector(api, clock), now=NOW)
    assert run.error is None and rows(db)[case].deleted


def test_backfill_stops_the_first_search_at_its_age(db, api, clock):
    recent = [add(api, n) for n in range(1, 31)]  # 1 to 30 minutes before BASE_TIME
    old = [add(api, n) for n in range(200, 230)]  # over 3 hours before
    clock.now = NOW
    first = run_source(db, collector(api, clock, backfill="2h"), now=NOW, follow=False)
    assert first.error is None and set(rows(db)) == set(recent)
    assert not set(old) & set(rows(db))


# Collector and DM channel read statuses alike (bot/networks/bluesky.py), whatever exception
# class atproto picks: 408, 429 and 5xx are retried; any other 4xx fails at once.
@pytest.mark.parametrize(
    ("status", "retried"),
    [(408, True), (429, True), (500, True), (502, True), (503, True),
     (400, False), (404, False), (409, False), (413, False), (425, False)],
)  # fmt: skip
def test_which_statuses_are_retried(db, api, clock, status, retried):
    uri = add(api, 1)
    api.fail(SEARCH, status, body={"error": "SomeError", "message": f"status {status}"})
    run = run_source(db, collector(api, clock), now=NOW, follow=False)
    if retried:
        assert run.error is None and set(rows(db)) == {uri}
        assert len(clock.slept) == 1 and api.requests[SEARCH] == 2
    else:
        assert run.error and str(status) in run.error and "attempts" not in run.error
        assert clock.slept == [] and api.requests[SEARCH] == 1 and rows(db) == {}
