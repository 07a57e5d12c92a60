"""The X collector: the real tweepy Client against a fake X API v2 server on a local socket."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from bot.collect import SourceRun, run_source
from bot.collectors.base import Page
from bot.collectors.x import XCollector
from bot.core.config_models import SourceConfig
from bot.core.errors import SourceDisabled
from bot.storage import cursors
from bot.storage.db import Database
from bot.storage.models import PostRow
from tests.conftest import FakeClock
from tests.fakes.x_server import FakeXServer, snowflake

SEARCH = "/2/tweets/search/recent"
LOOKUP = "/2/tweets"


@pytest.fixture
def server(clock: FakeClock) -> Iterator[FakeXServer]:
    fake = FakeXServer(clock=clock).start()
    yield fake
    fake.stop()


def stored_reads(db: Database, source: str) -> Callable[[], int]:
    """The wiring the pipeline needs: reads used this month, as stored by the collect stage."""

    def used() -> int:
        with db.session() as session:
            return cursors.reads_this_month(session, source)

    return used


def make(
    server: FakeXServer,
    clock: FakeClock,
    db: Database,
    hashtags: list[str] | None = None,
    **options: Any,
) -> XCollector:
    source_keys = (
        "monthly_read_budget",
        "timeout",
        "retries",
        "hashtags",
        "bearer_token",
        "backfill",
    )
    settings = {"timeout": 5, "retries": 3, "bearer_token": server.token}
    settings.update({k: options.pop(k) for k in source_keys if k in options})
    source = SourceConfig(network="x", name="x-test", **settings)
    collector = XCollector(
        source,
        hashtags or ["DocTocToc"],
        session=server.session(),
        sleep=clock.sleep,
        clock=clock,
        reads_used=stored_reads(db, source.key),
        **options,
    )
    collector.retry.jitter = lambda: 0.0
    return collector


def run(db: Database, collector: XCollector, clock: FakeClock, follow: bool = False) -> SourceRun:
    return run_source(db, collector, now=clock(), follow=follow)


def rows(db: Database) -> list[PostRow]:
    with db.session() as session:
        return list(session.scalars(select(PostRow).order_by(PostRow.id)).all())


def cursor(db: Database) -> str | None:
    with db.session() as session:
        return cursors.get_cursor(session, "x-test")


def add_cases(server: FakeXServer, clock: FakeClock, count: int) -> list[str]:
    ids = []
    for i in range(count):
        ids.append(server.add_tweet(f"Cas {i}: douleur thoracique ? #DocTocToc"))
        clock.advance(seconds=1)
    return ids


# --- pagination, cursor, normalization ---------------------------------------------------


def test_pages_all_then_moves_the_cursor_once(server, clock, db):
    ids = add_cases(server, clock, 25)
    pages = list(make(server, clock, db, page_size=10).pages(None))
    assert [len(p.posts) for p in pages] == [10, 10, 5, 0]
    assert [p.cursor for p in pages] == [None, None, None, ids[-1]]
    assert [p.requests for p in pages] == [1, 1, 1, 0]
    assert all(isinstance(p, Page) for p in pages)
    # the second and third requests continue with X's next_token
    assert [("next_token" in params) for _, params in server.requests] == [False, True, True]

    result = run(db, make(server, clock, db, page_size=10), clock)
    assert result.error is None
    assert sorted(r.native_id for r in rows(db)) == sorted(ids)
    assert cursor(db) == ids[-1]


def test_query_fields_and_normalized_post(server, clock, db):
    tid = server.add_tweet(
        "Éruption fébrile chez un enfant de 3 ans #DocTocToc #pédiatrie",
        username="dr_house",
        media=[
            {"type": "photo", "url": "https://pbs.twimg.com/media/a.jpg", "alt_text": "éruption"},
            {"type": "video", "preview_image_url": "https://pbs.twimg.com/v/b.jpg"},
        ],
    )
    assert (
        run(db, make(server, clock, db, hashtags=["DocTocToc", "DocTocTocPsy"]), clock).error
        is None
    )
    params = server.requests[0][1]
    assert params["query"] == "(#DocTocToc OR #DocTocTocPsy) -is:retweet"
    assert params["expansions"] == "author_id,attachments.media_keys,referenced_tweets.id"
    assert set(params["tweet.fields"].split(",")) == {
        "created_at", "lang", "conversation_id", "entities", "referenced_tweets",
        "in_reply_to_user_id", "edit_history_tweet_ids", "author_id", "attachments",
    }  # fmt: skip
    assert params["user.fields"] == "username,name"
    assert set(params["media.fields"].split(",")) == {
        "url",
        "alt_text",
        "preview_image_url",
        "type",
    }
    [row] = rows(db)
    assert (row.network, row.native_id, row.key) == ("x", tid, tid)
    assert row.url == f"https://x.com/dr_house/status/{tid}"
    assert (row.author_handle, row.author_name) == ("dr_house", "Dr_House")
    assert row.author_id == server.add_user("dr_house")
    assert row.lang == "fr" and row.created_at == clock.now and row.edited_at is None
    assert row.hashtags == ["DocTocToc", "pédiatrie"]
    assert row.media == [
        {"url": "https://pbs.twimg.com/media/a.jpg", "alt": "éruption"},
        {"url": "https://pbs.twimg.com/v/b.jpg", "alt": ""},
    ]
    assert row.raw["id"] == tid and row.raw["edit_history_tweet_ids"] == [tid]


def test_hashtag_variants_are_matched_exactly(server, clock, db):
    server.add_tweet("minuscules #doctoctoc")
    server.add_tweet("majuscules #DOCTOCTOC")
    server.add_tweet("accent #DocTocTóc")
    server.add_tweet("configurée #DocTocTocPsy")
    server.add_tweet("sans entités #DocTocToc", entities=False)
    server.add_tweet("pluriel #DocTocTocs")
    server.add_tweet("préfixe #DocTocTocX")
    original = server.add_tweet("retweeté #DocTocToc", username="other")
    server.add_tweet("RT @other: retweeté #DocTocToc", retweet_of=original)
    result = run(db, make(server, clock, db, hashtags=["DocTocToc", "DocTocTocPsy"]), clock)
    assert result.error is None
    assert sorted(r.text.split(" ")[0] for r in rows(db)) == [
        "accent", "configurée", "majuscules", "minuscules", "retweeté", "sans",
    ]  # fmt: skip


# --- edits and deletions -----------------------------------------------------------------


def test_an_edit_updates_the_stored_post(server, clock, db):
    created = clock.now
    tid = server.add_tweet("Dyspnée brutale #DocTocToc")
    assert run(db, make(server, clock, db), clock).new
    clock.advance(minutes=10)
    new_id = server.edit_tweet(tid, "Dyspnée brutale, SpO2 88 % #DocTocToc")
    result = run(db, make(server, clock, db), clock)
    assert (result.new, result.updated, result.error) == ([], 1, None)
    [row] = rows(db)
    assert row.key == tid and row.text == "Dyspnée brutale, SpO2 88 % #DocTocToc"
    assert row.created_at == created and row.edited_at == clock.now
    assert cursor(db) == new_id


def test_an_edit_seen_first_is_keyed_by_the_original(server, clock, db):
    created = clock.now
    tid = server.add_tweet("v1 #DocTocToc")
    clock.advance(minutes=3)
    new_id = server.edit_tweet(tid, "v2 #DocTocToc")
    assert run(db, make(server, clock, db), clock).error is None
    [row] = rows(db)
    assert (row.key, row.native_id, row.text) == (tid, new_id, "v2 #DocTocToc")
    assert row.created_at == created and row.edited_at == clock.now
    assert row.url.endswith(f"/status/{new_id}")


def test_deleted_tweets_are_marked_deleted(server, clock, db):
    ids = add_cases(server, clock, 3)
    assert run(db, make(server, clock, db), clock, follow=True).error is None
    server.delete_tweet(ids[1])
    result = run(db, make(server, clock, db), clock, follow=True)
    assert (result.deleted, result.error) == (1, None)
    by_id = {r.native_id: r for r in rows(db)}
    assert by_id[ids[1]].deleted and by_id[ids[1]].text == ""
    assert not by_id[ids[0]].deleted and not by_id[ids[2]].deleted


def test_recheck_looks_up_in_batches_of_100_and_bounds_reply_searches(server, clock, db):
    ids = add_cases(server, clock, 150)
    assert run(db, make(server, clock, db), clock).error is None
    for tid in ids[::50]:
        server.delete_tweet(tid)
    server.requests.clear()
    result = run(db, make(server, clock, db, reply_calls=4), clock, follow=True)
    assert (result.deleted, result.error) == (3, None)
    lookups = [params["ids"].split(",") for path, params in server.requests if path == LOOKUP]
    assert sorted(len(batch) for batch in lookups) == [50, 100]
    replies = [
        p["query"]
        for path, p in server.requests
        if path == SEARCH and "conversation_id" in p["query"]
    ]
    assert len(replies) == 4
    assert all(len(query) <= 512 for query in replies)


# --- rate limits, server errors, timeouts, malformed data --------------------------------


def test_429_waits_until_the_reset_header(server, clock, db):
    add_cases(server, clock, 3)
    server.fail("429", reset_in=42)
    result = run(db, make(server, clock, db), clock)
    assert result.error is None and len(rows(db)) == 3
    assert clock.slept == [42.0]
    assert server.count(SEARCH) == 2


def test_429_without_reset_header_backs_off_then_gives_up(server, clock, db):
    add_cases(server, clock, 3)
    server.fail("429-noreset", times=100)
    result = run(db, make(server, clock, db, retries=3), clock)
    assert "failed after 4 attempts" in result.error
    assert clock.slept == [2.0, 4.0, 8.0]  # bounded exponential backoff, never a hot loop
    assert server.count(SEARCH) == 4
    assert rows(db) == [] and cursor(db) is None


def test_a_reset_too_far_away_ends_the_cycle_without_sleeping(server, clock, db):
    add_cases(server, clock, 1)
    server.fail("429", reset_in=900)
    result = run(db, make(server, clock, db), clock)
    assert "giving up for this cycle" in result.error
    assert clock.slept == [] and server.count(SEARCH) == 1


@pytest.mark.parametrize("kind", ["500", "503", "garbage", "malformed"])
def test_server_errors_are_retried(server, clock, db, kind):
    add_cases(server, clock, 3)
    server.fail(kind, times=2)
    result = run(db, make(server, clock, db), clock)
    assert result.error is None and len(rows(db)) == 3
    assert clock.slept == [2.0, 4.0]
    assert result.requests == 3


def test_timeouts_are_retried(server, clock, db):
    add_cases(server, clock, 2)
    server.fail("slow", delay=2.0)
    started = time.monotonic()
    result = run(db, make(server, clock, db, timeout=0.2), clock)
    assert time.monotonic() - started < 1.5  # the slow answer was not awaited
    assert result.error is None and len(rows(db)) == 2
    assert clock.slept == [2.0]


def test_a_rejected_token_fails_at_once(server, clock, db):
    add_cases(server, clock, 1)
    result = run(db, make(server, clock, db, bearer_token="wrong"), clock)
    assert "refused the bearer token" in result.error
    assert server.count() == 1 and clock.slept == []


def test_a_source_without_token_is_disabled(server, clock, db):
    with pytest.raises(SourceDisabled, match="bearer_token"):
        make(server, clock, db, bearer_token=None)


def test_malformed_items_are_skipped(server, clock, db):
    good = [server.add_tweet("avant #DocTocToc")]
    base = {
        "id": "1",
        "text": "#DocTocToc",
        "created_at": "2026-11-27T08:00:00.000Z",
        "author_id": "1000",
    }
    malformed = [
        "not an object",
        {**base, "id": 123},
        {**base, "id": None},
        {**base, "text": None},
        {k: v for k, v in base.items() if k != "created_at"},
        {**base, "created_at": "yesterday"},
        {**base, "author_id": ["1000"]},
        {**base, "edit_history_tweet_ids": "1"},
    ]
    for item in malformed:
        server.add_raw(item)
    good.append(server.add_tweet("après #DocTocToc"))
    result = run(db, make(server, clock, db), clock)
    assert result.error is None
    assert result.skipped == len(malformed)
    assert sorted(r.native_id for r in rows(db)) == sorted(good)
    assert cursor(db) is not None


def test_a_tweet_with_odd_nested_fields_costs_only_itself(server, clock, db):
    """Issue 12: one bad item never blocks its page (shapes no check anticipated)."""
    good = [server.add_tweet("avant #DocTocToc")]
    base = {
        "text": "#DocTocToc",
        "created_at": "2026-11-27T08:00:00.000Z",
        "author_id": "1000",
    }
    odd = [
        {**base, "id": "2", "edit_history_tweet_ids": ["2"], "attachments": {"media_keys": 5}},
        {**base, "id": "3", "edit_history_tweet_ids": ["3"], "entities": {"hashtags": 7}},
    ]
    for item in odd:
        server.add_raw(item)
    good.append(server.add_tweet("après #DocTocToc"))
    result = run(db, make(server, clock, db), clock)
    assert result.error is None and result.skipped == len(odd)
    assert sorted(r.native_id for r in rows(db)) == sorted(good)


def test_a_restart_mid_run_leaves_no_gap_and_no_duplicate(server, clock, db):
    ids = add_cases(server, clock, 35)
    server.fail("500", times=4, after=2)  # page 3 of 4 fails after all retries
    first = run(db, make(server, clock, db, page_size=10), clock)
    assert "failed after 4 attempts" in first.error
    assert len(rows(db)) == 20 and cursor(db) is None
    ids += add_cases(server, clock, 2)
    second = run(db, make(server, clock, db, page_size=10), clock)
    assert second.error is None and len(second.new) == 17
    stored = [r.native_id for r in rows(db)]
    assert sorted(stored) == sorted(ids) and len(set(stored)) == len(stored)
    assert cursor(db) == ids[-1]


def test_a_stale_cursor_reads_the_whole_search_window(server, clock, db):
    with db.session() as session:
        old = snowflake(clock.now - timedelta(days=8))
        cursors.set_cursor(session, "x-test", str(old))
    add_cases(server, clock, 2)
    result = run(db, make(server, clock, db), clock)
    assert result.error is None and len(rows(db)) == 2
    assert "since_id" not in server.requests[0][1]


def test_a_second_run_reads_nothing_again(server, clock, db):
    ids = add_cases(server, clock, 30)
    assert len(run(db, make(server, clock, db), clock).new) == 30
    before = server.count()
    second = run(db, make(server, clock, db), clock)
    assert (second.new, second.updated, second.error) == ([], 0, None)
    assert server.count() - before == 1 and second.requests == 1
    assert server.requests[-1][1]["since_id"] == ids[-1]
    assert cursor(db) == ids[-1]


# --- replies -----------------------------------------------------------------------------


def test_replies_are_linked_to_their_case(server, clock, db):
    case = server.add_tweet("Céphalées et fièvre, PL ? #DocTocToc")
    clock.advance(minutes=1)
    first = server.add_tweet("Oui, PL sans attendre", username="neuro", reply_to=case)
    clock.advance(minutes=1)
    server.add_tweet("D'accord, et ATB probabiliste", username="infectio", reply_to=first)
    collector = make(server, clock, db)
    assert run(db, collector, clock, follow=True).error is None
    by_id = {r.native_id: r for r in rows(db)}
    assert by_id[case].answer_count == 2
    replies = [r for r in by_id.values() if r.native_id != case]
    assert all(r.answer_to_id == by_id[case].id and r.reply_to for r in replies)
    assert by_id[first].reply_to == case and by_id[first].thread_root == case

    clock.advance(minutes=1)
    late = server.add_tweet("Et un scanner avant ?", username="urg", reply_to=case)
    assert run(db, collector, clock, follow=True).error is None
    assert {r.native_id: r for r in rows(db)}[case].answer_count == 3
    queries = [
        p for path, p in server.requests if path == SEARCH and "conversation_id" in p["query"]
    ]
    assert queries[0]["query"] == f"conversation_id:{case}"
    assert int(queries[-1]["since_id"]) > int(first)  # the same collector re-reads only new replies
    assert late in {r.native_id for r in rows(db)}


# --- monthly read budget -----------------------------------------------------------------


def test_the_monthly_budget_stops_the_collector_and_says_so(server, clock, db):
    add_cases(server, clock, 40)
    first = run(db, make(server, clock, db, page_size=10, monthly_read_budget=25), clock)
    assert "monthly read budget of 25 reached: X stops until next month" in first.error
    assert server.count(SEARCH) == 2 and len(rows(db)) == 20 and cursor(db) is None
    again = run(db, make(server, clock, db, page_size=10, monthly_read_budget=25), clock)
    assert "monthly read budget of 25 reached" in again.error
    assert server.count(SEARCH) == 2  # not one request more


def test_one_request_never_exceeds_the_remaining_budget(server, clock, db):
    for i in range(30):
        server.add_tweet(f"pluriel {i} #DocTocTocs")  # returned by X, billed, but not kept
    add_cases(server, clock, 30)
    result = run(db, make(server, clock, db, monthly_read_budget=45), clock)
    assert "monthly read budget of 45 reached" in result.error
    assert [p["max_results"] for _, p in server.requests] == ["45"]
    assert len(rows(db)) == 30


def test_backfill_bounds_the_first_run_only(server, clock, db):
    old = server.add_tweet("Vieux cas #DocTocToc", created_at=clock.now - timedelta(days=3))
    recent = server.add_tweet("Cas récent #DocTocToc", created_at=clock.now - timedelta(hours=20))
    collector = make(server, clock, db, backfill=timedelta(days=1))
    assert run(db, collector, clock).error is None
    assert [r.native_id for r in rows(db)] == [recent]  # older than 1 day: not read
    assert server.requests[0][1]["start_time"] == "2026-11-26T08:00:00Z"
    server.requests.clear()
    clock.advance(minutes=5)
    later = server.add_tweet("Nouveau cas #DocTocToc")
    assert run(db, collector, clock).error is None
    assert "start_time" not in server.requests[0][1]  # later runs follow the cursor
    assert {r.native_id for r in rows(db)} == {recent, later} and old not in cursor(db)


def test_x_backfill_beyond_the_search_window_is_a_config_error():
    with pytest.raises(ValueError, match="7 days"):
        SourceConfig(network="x", bearer_token="t", backfill="8d")
