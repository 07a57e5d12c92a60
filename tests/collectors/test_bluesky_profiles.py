"""Firehose posts get their author's handle and display name (`app.bsky.actor.getProfiles`).

The real atproto client and firehose client talk to the local fakes: `FakeFirehose` for the
frames, `FakeBluesky` for createSession and getProfiles (as the PDS or as the public AppView).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from pydantic import ValidationError
from sqlalchemy import select

from bot.collect import run_source
from bot.collectors.base import Page
from bot.collectors.bluesky import BlueskyCollector, BlueskyCursor
from bot.collectors.bluesky_profiles import ProfileCache, ProfileResolver
from bot.collectors.bluesky_stream import decode_and_filter
from bot.core.config_models import SourceConfig
from bot.core.post import Author, Post
from bot.storage import cursors
from bot.storage.models import PostRow
from tests.collectors.test_bluesky_firehose import stream as run_stream
from tests.fakes.bluesky_data import (
    BASE_TIME,
    POST,
    identity_frame,
    post_frame,
    post_record,
    tid,
)
from tests.fakes.bluesky_server import FakeBluesky, FakeFirehose

TAGS = ["DocTocToc"]
PROFILES = "app.bsky.actor.getProfiles"
SESSION = "com.atproto.server.createSession"
ALICE = "did:plc:aliceaaaaaaaaaaaaaaaaaaa"
BOB = "did:plc:bobbbbbbbbbbbbbbbbbbbbbb"


def did(n: int) -> str:
    return f"did:plc:author{n:018d}"


def uri(author: str, n: int) -> str:
    return f"at://{author}/{POST}/{tid(n)}"


def add_post(hose: FakeFirehose, seq: int, author: str) -> str:
    record = post_record(f"#DocTocToc cas {seq}", facet_tags=["DocTocToc"])
    hose.add(seq, post_frame(seq, author, tid(seq), record))
    return uri(author, seq)


@pytest.fixture
def hose() -> Iterator[FakeFirehose]:
    server = FakeFirehose()
    yield server
    server.close()


@pytest.fixture
def api() -> Iterator[FakeBluesky]:
    server = FakeBluesky()
    yield server
    server.close()


@pytest.fixture
def appview() -> Iterator[FakeBluesky]:
    """A second server standing for the public AppView (`appview_url`)."""
    server = FakeBluesky()
    yield server
    server.close()


def make_collector(hose: FakeFirehose, clock, *, login: FakeBluesky | None = None, **settings):
    config = {"network": "bluesky", "name": "bsky", "stream_url": hose.base_uri, "search": False}
    if login is not None:
        config.update(url=login.url, handle=login.handle, app_password=login.password)
    config.update(settings)
    collector = BlueskyCollector(SourceConfig(**config), TAGS, sleep=clock.sleep, clock=clock)
    collector.stream_options = {"max_delay": 0.0, "checkpoint_every": 0.0}
    collector.profile_timeout = 0.3
    return collector


def stream(db, collector: BlueskyCollector, until: Callable[[list[Page]], bool]) -> list[Page]:
    """Run collector.stream from the saved seq (or 0) until `until(pages)` holds."""
    with db.session() as session:
        cursor = cursors.get_cursor(session, collector.key) or '{"seq":0}'
    pages, _ = run_stream(db, collector, until, cursor)
    return pages


def seq_reached(seq: int) -> Callable[[list[Page]], bool]:
    return lambda pages: any(p.cursor and BlueskyCursor.decode(p.cursor).seq == seq for p in pages)


def stored(db) -> dict[str, PostRow]:
    with db.session() as session:
        return {row.native_id: row for row in session.scalars(select(PostRow))}


def authors(db) -> dict[str, tuple[str, str]]:
    return {k: (r.author_handle, r.author_name) for k, r in stored(db).items()}


def profile_calls(server: FakeBluesky) -> list[list[str]]:
    return [q.get("actors", []) for nsid, q in server.log if nsid == PROFILES]


# --- end to end ---------------------------------------------------------------------------------


def test_firehose_post_is_stored_with_the_authors_handle_and_display_name(db, hose, appview, clock):
    appview.add_profile(ALICE, "alice.bsky.social", "Dr Alice")
    first = add_post(hose, 1, ALICE)
    collector = make_collector(hose, clock, appview_url=appview.url)
    stream(db, collector, seq_reached(1))
    row = stored(db)[first]
    assert (row.author_id, row.author_handle, row.author_name) == (
        ALICE,
        "alice.bsky.social",
        "Dr Alice",
    )
    # the link keeps the DID: permanent, while a handle can change (bsky.app accepts both)
    assert row.url == f"https://bsky.app/profile/{ALICE}/post/{tid(1)}"
    assert profile_calls(appview) == [[ALICE]]


def test_thirty_authors_cost_two_calls_and_the_same_authors_again_cost_none(
    db, hose, appview, clock
):
    for n in range(1, 30):
        appview.add_profile(did(n), f"doc{n}.bsky.social", f"Dr {n}")
    # author 30 is unknown to the AppView: left out of the answer, stored with its DID
    expected = {add_post(hose, n, did(n)): (f"doc{n}.bsky.social", f"Dr {n}") for n in range(1, 30)}
    expected[add_post(hose, 30, did(30))] = (did(30), "")
    with db.session() as session:
        cursors.set_cursor(session, "bsky", '{"seq":0}')
    clock.now = BASE_TIME + timedelta(days=1)  # frames are older: catch up until idle

    collector = make_collector(hose, clock, appview_url=appview.url)
    collector.stream_options = {"batch_size": 50, "max_delay": 60.0, "checkpoint_every": 60.0}
    collector.idle_timeout = 0.2
    run = run_source(db, collector, follow=False)  # one batch of 30 posts
    assert run.error is None and len(run.new) == 30
    assert authors(db) == expected
    assert [len(actors) for actors in profile_calls(appview)] == [25, 5]

    # a second batch by the same 30 authors, through the same collector (its cache)
    again = {add_post(hose, 30 + n, did(n)): expected[uri(did(n), n)] for n in range(1, 31)}
    appview.requests.clear()
    run = run_source(db, collector, follow=False)
    assert run.error is None and len(run.new) == 30
    assert {k: v for k, v in authors(db).items() if k in again} == again
    assert appview.requests[PROFILES] == 0


@pytest.mark.parametrize(
    ("failure", "pause"),
    [
        ({"status": 500}, 60),
        ({"status": 502}, 60),
        ({"status": 429, "headers": {"Retry-After": "600"}}, 600),  # honoured
        ({"status": 400, "body": {"error": "InvalidRequest", "message": "bad actors"}}, 60),
        ({"status": 200, "body": {"unexpected": True}}, 60),  # malformed answer
        ({"status": 200, "delay": 1.0}, 60),  # slower than profile_timeout (0.3 s)
    ],
    ids=["500", "502", "429", "400", "malformed", "timeout"],
)
def test_a_failing_lookup_keeps_the_did_logs_once_and_pauses_lookups(
    db, hose, appview, clock, caplog, failure, pause
):
    appview.add_profile(ALICE, "alice.bsky.social", "Dr Alice")
    appview.add_profile(BOB, "bob.bsky.social", "Dr Bob")
    appview.fail(PROFILES, **failure)
    for seq in (1, 2, 3):
        add_post(hose, seq, ALICE if seq != 2 else BOB)
    collector = make_collector(hose, clock, appview_url=appview.url)
    started = time.monotonic()
    with caplog.at_level(logging.INFO, logger="bot.collectors.bluesky_profiles"):
        stream(db, collector, seq_reached(3))
    assert time.monotonic() - started < 5  # the stream went on right away
    rows = stored(db)
    assert len(rows) == 3  # nothing lost
    assert {r.author_handle for r in rows.values()} == {ALICE, BOB}
    assert {r.author_name for r in rows.values()} == {""}
    assert appview.requests[PROFILES] == 1  # one failure, then paused: no retry storm
    warnings = [
        r
        for r in caplog.records
        if r.name == "bot.collectors.bluesky_profiles" and r.levelno == logging.WARNING
    ]
    assert len(warnings) == 1 and "getProfiles failed" in warnings[0].getMessage()
    assert collector.profiles.paused_until == clock() + timedelta(seconds=pause)

    clock.advance(seconds=pause + 1)  # the pause is over: the next batch looks its authors up
    add_post(hose, 4, ALICE)
    stream(db, collector, seq_reached(4))
    assert stored(db)[uri(ALICE, 4)].author_handle == "alice.bsky.social"
    assert appview.requests[PROFILES] == 2


def test_pauses_grow_while_the_appview_keeps_failing(db, hose, appview, clock, caplog):
    appview.fail(PROFILES, 503, times=3)
    appview.add_profile(ALICE, "alice.bsky.social", "Dr Alice")
    collector = make_collector(hose, clock, appview_url=appview.url)
    resolver = collector.profiles
    with caplog.at_level(logging.INFO, logger="bot.collectors.bluesky_profiles"):
        for seq, wait in ((1, 0), (2, 61), (3, 121), (4, 241)):
            clock.advance(seconds=wait)
            add_post(hose, seq, ALICE)
            stream(db, collector, seq_reached(seq))
    assert appview.requests[PROFILES] == 4 and resolver.failures == 0
    assert stored(db)[uri(ALICE, 4)].author_handle == "alice.bsky.social"
    records = [r for r in caplog.records if r.name == "bot.collectors.bluesky_profiles"]
    assert [r.levelname for r in records] == ["WARNING", "INFO", "INFO", "INFO"]
    assert "works again" in records[-1].getMessage()


def test_unauthenticated_sources_ask_the_appview_url(db, hose, api, appview, clock):
    appview.add_profile(ALICE, "alice.bsky.social", "Dr Alice")
    add_post(hose, 1, ALICE)
    stream(db, make_collector(hose, clock, appview_url=appview.url), seq_reached(1))
    assert stored(db)[uri(ALICE, 1)].author_handle == "alice.bsky.social"
    [(nsid, headers)] = appview.headers_log
    assert nsid == PROFILES and "Authorization" not in headers
    assert api.requests == {}


def test_authenticated_sources_reuse_the_login_not_the_appview(db, hose, api, appview, clock):
    api.add_profile(ALICE, "alice.bsky.social", "Dr Alice")
    add_post(hose, 1, ALICE)
    add_post(hose, 2, ALICE)
    hose.add(3, identity_frame(3, BOB, "bob.bsky.social"))
    add_post(hose, 4, BOB)  # unknown to the AppView: a second call, same session
    collector = make_collector(hose, clock, login=api, appview_url=appview.url)
    stream(db, collector, seq_reached(4))
    assert stored(db)[uri(ALICE, 2)].author_name == "Dr Alice"
    assert api.requests[SESSION] == 1 and api.requests[PROFILES] == 2
    assert all(
        h["Authorization"].startswith("Bearer ") for n, h in api.headers_log if n == PROFILES
    )
    assert appview.requests == {}


def test_without_credentials_and_appview_url_null_no_lookup_is_made(db, hose, appview, clock):
    add_post(hose, 1, ALICE)
    stream(db, make_collector(hose, clock, appview_url=None), seq_reached(1))
    assert stored(db)[uri(ALICE, 1)].author_handle == ALICE


def test_identity_events_update_a_cached_handle_without_a_lookup(db, hose, appview, clock):
    appview.add_profile(ALICE, "alice.bsky.social", "Dr Alice")
    add_post(hose, 1, ALICE)
    hose.add(2, identity_frame(2, ALICE, "dr-alice.example.org"))
    hose.add(3, identity_frame(3, BOB, "bob.bsky.social"))  # not an author we know: ignored
    add_post(hose, 4, ALICE)
    collector = make_collector(hose, clock, appview_url=appview.url)
    stream(db, collector, seq_reached(4))
    rows = stored(db)
    assert rows[uri(ALICE, 1)].author_handle == "alice.bsky.social"
    assert (rows[uri(ALICE, 4)].author_handle, rows[uri(ALICE, 4)].author_name) == (
        "dr-alice.example.org",
        "Dr Alice",
    )
    assert appview.requests[PROFILES] == 1
    assert collector.profiles.cache.get(BOB) is None


def test_identity_frames_are_decoded():
    decoded = decode_and_filter(identity_frame(5, ALICE, "alice.test"), TAGS)
    assert (decoded.posts, decoded.seq, decoded.identities) == ([], 5, ((ALICE, "alice.test"),))


# --- the cache and the resolver alone ---------------------------------------------------------


def post_by(author: str, n: int = 1) -> Post:
    return Post(
        network="bluesky",
        id=uri(author, n),
        url=f"https://bsky.app/profile/{author}/post/{tid(n)}",
        author=Author(id=author, handle=author),
        text="#DocTocToc",
        created_at=BASE_TIME,
    )


def test_cache_is_bounded_and_entries_expire(clock):
    cache = ProfileCache(size=3, ttl=timedelta(hours=6), clock=clock)
    resolver = ProfileResolver(
        lambda dids: {"profiles": [{"did": d, "handle": f"{d[-3:]}.test"} for d in dids]},
        clock=clock,
        cache=cache,
    )
    resolver.resolve([did(1), did(2), did(3)])
    resolver.resolve([did(1), did(4)])  # did(2), least recently used, is evicted
    assert len(cache) == 3 and cache.get(did(2)) is None and cache.get(did(1)) is not None
    clock.advance(hours=7)
    assert cache.get(did(1)) is None and len(cache) == 2


def test_odd_answers_never_cost_a_post(clock):
    answers = iter(
        [
            {
                "profiles": [
                    "junk",
                    {"did": ALICE, "handle": "handle.invalid", "displayName": " Dr\nAlice "},
                    {"did": "did:plc:notasked", "handle": "x.test"},
                    {"did": BOB, "handle": 42},
                ]
            }
        ]
    )
    resolver = ProfileResolver(lambda dids: next(answers), clock=clock)
    posts = [post_by(ALICE), post_by(BOB), post_by("not-a-did")]
    resolver.enrich(posts)
    assert [(p.author.handle, p.author.name) for p in posts] == [
        (ALICE, "Dr Alice"),  # an invalid handle: the DID stands in, the name is kept
        (BOB, ""),
        ("not-a-did", ""),  # never sent to the AppView
    ]
    assert resolver.calls == 1 and resolver.cache.get("did:plc:notasked") is None


def test_appview_url_must_be_http():
    assert SourceConfig(network="bluesky").appview_url == "https://public.api.bsky.app"
    assert SourceConfig(network="bluesky", appview_url=None).appview_url is None
    with pytest.raises(ValidationError, match="http"):
        SourceConfig(network="bluesky", appview_url="wss://api.bsky.app")
