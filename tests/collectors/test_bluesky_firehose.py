"""Bluesky firehose: frame filtering, streaming into the database, resume and reconnect.

The real atproto `FirehoseSubscribeReposClient` talks to a local WebSocket server sending
real DAG-CBOR subscribeRepos frames (tests/fakes).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.collect import SourceRun, run_source, save_page
from bot.collectors.base import Page
from bot.collectors.bluesky import BlueskyCollector, BlueskyCursor
from bot.collectors.bluesky_stream import FrameError, StreamErrorFrame, decode_and_filter
from bot.core.config_models import SourceConfig
from bot.storage import cursors
from bot.storage.models import PostRow
from tests.fakes.bluesky_data import (
    BASE_TIME,
    FOLLOW,
    LIKE,
    POST,
    Op,
    commit_frame,
    delete_frame,
    error_frame,
    follow_record,
    identity_frame,
    like_record,
    post_frame,
    post_record,
    tid,
)
from tests.fakes.bluesky_server import FakeFirehose

TAGS = ["DocTocToc"]
ALICE = "did:plc:aliceaaaaaaaaaaaaaaaaaaa"
BOB = "did:plc:bobbbbbbbbbbbbbbbbbbbbbb"


def uri(did: str, n: int) -> str:
    return f"at://{did}/{POST}/{tid(n)}"


# --- decode_and_filter (pure) --------------------------------------------------------------


def test_tag_facet_post_is_kept_and_normalized():
    record = post_record(
        "Avis cardio ? #DocTocToc",
        facet_tags=["DocTocToc"],
        langs=["fr", "en"],
        created_at=BASE_TIME,
        images=[("ecg", "ECG 12 dérivations")],
        reply=(uri(BOB, 1), uri(BOB, 2)),
    )
    posts, deletions, seq, *_ = decode_and_filter(post_frame(7, ALICE, tid(3), record), TAGS)
    assert (deletions, seq) == ([], 7)
    [post] = posts
    assert post.network == "bluesky"
    assert post.id == post.key == uri(ALICE, 3)
    assert post.url == f"https://bsky.app/profile/{ALICE}/post/{tid(3)}"
    assert (post.author.id, post.author.handle) == (ALICE, ALICE)
    assert (post.text, post.lang, post.created_at) == ("Avis cardio ? #DocTocToc", "fr", BASE_TIME)
    assert post.hashtags == ["DocTocToc"]
    [image] = post.media
    assert image.url.startswith(f"https://cdn.bsky.app/img/feed_fullsize/plain/{ALICE}/bafkrei")
    assert image.url.endswith("@jpeg") and image.alt == "ECG 12 dérivations"
    assert (post.reply_to, post.thread_root) == (uri(BOB, 2), uri(BOB, 1))
    json.dumps(post.raw)  # JSON-safe (CIDs as $link)
    assert post.raw["record"]["embed"]["images"][0]["image"]["ref"]["$link"].startswith("bafkrei")


@pytest.mark.parametrize(
    "record",
    [
        post_record("question sans hashtag dans le texte", tags=["doctoctoc"]),  # record tags
        post_record("Un avis #DOCTOCTOC svp"),  # text fallback, case-insensitive
        post_record("#DocTocToc en tête", facet_tags=["DocTocToc"], tags=["other"]),
    ],
)
def test_structured_tags_and_text_fallback_match(record):
    posts, *_ = decode_and_filter(post_frame(1, ALICE, tid(1), record), TAGS)
    assert len(posts) == 1


@pytest.mark.parametrize(
    "frame",
    [
        post_frame(1, ALICE, tid(1), post_record("rien à voir")),
        post_frame(1, ALICE, tid(1), post_record("#DocTocTocs pluriel", facet_tags=["DocTocTocs"])),
        post_frame(1, ALICE, tid(1), post_record("balise ailleurs", tags=["DocTocTocs"])),
        commit_frame(1, ALICE, [Op("create", LIKE, tid(1), like_record(uri(BOB, 1)))]),
        commit_frame(1, ALICE, [Op("create", FOLLOW, tid(1), follow_record(BOB))]),
        # another collection carrying the hashtag is not a post
        commit_frame(
            1,
            ALICE,
            [
                Op(
                    "create",
                    "com.example.note",
                    tid(1),
                    {"$type": "com.example.note", "text": "#DocTocToc"},
                )
            ],
        ),
        delete_frame(1, ALICE, tid(1), collection=LIKE),
        identity_frame(1, ALICE, "alice.test"),
    ],
)
def test_frames_without_matching_posts_only_advance_seq(frame):
    posts, deletions, seq, *_ = decode_and_filter(frame, TAGS)
    assert (posts, deletions, seq) == ([], [], 1)


def test_post_delete_op_is_reported_with_its_uri():
    frame = commit_frame(
        9, ALICE, [Op("delete", POST, tid(4)), Op("create", LIKE, tid(5), like_record("x"))]
    )
    posts, deletions, seq, *_ = decode_and_filter(frame, TAGS)
    assert (posts, deletions, seq) == ([], [uri(ALICE, 4)], 9)


def test_malformed_frames_and_records():
    with pytest.raises(FrameError):
        decode_and_filter(b"\xff\x00garbage", TAGS)
    with pytest.raises(StreamErrorFrame) as err:
        decode_and_filter(error_frame("FutureCursor", "Cursor in the future."), TAGS)
    assert err.value.error == "FutureCursor"
    bad = post_record("#DocTocToc", facet_tags=["DocTocToc"])
    del bad["createdAt"]  # required by the lexicon
    good = post_record("#DocTocToc ok", facet_tags=["DocTocToc"])
    frame = commit_frame(
        3, ALICE, [Op("create", POST, tid(1), bad), Op("create", POST, tid(2), good)]
    )
    decoded = decode_and_filter(frame, TAGS)
    assert [p.id for p in decoded.posts] == [uri(ALICE, 2)] and decoded.skipped == 1


# --- streaming into the database ------------------------------------------------------------


@pytest.fixture
def hose() -> Iterator[FakeFirehose]:
    server = FakeFirehose()
    yield server
    server.close()


def make_collector(hose: FakeFirehose, clock, **options: float) -> BlueskyCollector:
    source = SourceConfig(  # appview_url: null, no profile lookups (test_bluesky_profiles.py)
        network="bluesky",
        name="bsky",
        stream_url=hose.base_uri,
        search=False,
        retries=2,
        appview_url=None,
    )
    collector = BlueskyCollector(source, TAGS, sleep=clock.sleep, clock=clock)
    collector.stream_options = {"max_delay": 0.0, "checkpoint_every": 0.0, **options}
    return collector


def fill(hose: FakeFirehose, first: int, last: int) -> None:
    """Frames first..last: every third post matches, every seventh frame is a like."""
    for seq in range(first, last + 1):
        if seq % 7 == 0:
            hose.add(
                seq,
                commit_frame(seq, BOB, [Op("create", LIKE, tid(seq), like_record(uri(ALICE, 1)))]),
            )
        elif seq % 3 == 0:
            hose.add(
                seq,
                post_frame(
                    seq,
                    ALICE,
                    tid(seq),
                    post_record(f"#DocTocToc cas {seq}", facet_tags=["DocTocToc"]),
                ),
            )
        else:
            hose.add(seq, post_frame(seq, BOB, tid(seq), post_record(f"bonjour {seq}")))


def matching(first: int, last: int) -> set[str]:
    return {uri(ALICE, s) for s in range(first, last + 1) if s % 3 == 0 and s % 7}


def stream(
    db, collector: BlueskyCollector, until: Callable[[list[Page]], bool], cursor: str | None
):
    """Run collector.stream in a thread, committing pages, until `until(pages)` holds."""
    pages: list[Page] = []
    run = SourceRun(source=collector.key)
    stop = threading.Event()

    def on_page(page: Page) -> None:
        save_page(db, collector.key, page, run)
        pages.append(page)

    thread = threading.Thread(target=collector.stream, args=(on_page, stop, cursor))
    thread.start()
    deadline = time.monotonic() + 10
    while not until(pages) and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    thread.join(10)
    assert not thread.is_alive()
    return pages, run


def seq_reached(seq: int) -> Callable[[list[Page]], bool]:
    return lambda pages: any(p.cursor and BlueskyCursor.decode(p.cursor).seq == seq for p in pages)


def stored(db) -> dict[str, PostRow]:
    with db.session() as session:
        return {row.native_id: row for row in session.scalars(select(PostRow))}


def saved_cursor(db, key: str = "bsky") -> str | None:
    with db.session() as session:
        return cursors.get_cursor(session, key)


def test_stream_stores_matches_marks_deletions_and_saves_seq(db, hose, clock):
    fill(hose, 1, 20)
    hose.add(21, delete_frame(21, ALICE, tid(6)))
    collector = make_collector(hose, clock, batch_size=2)
    pages, run = stream(db, collector, seq_reached(21), cursor='{"seq":0}')
    rows = stored(db)
    assert set(rows) == matching(1, 20)
    assert rows[uri(ALICE, 6)].deleted and rows[uri(ALICE, 6)].text == ""
    assert sum(not r.deleted for r in rows.values()) == len(matching(1, 20)) - 1
    assert BlueskyCursor.decode(saved_cursor(db)).seq == 21
    assert all(len(p.posts) <= 2 for p in pages) and run.new and run.deleted == 1
    assert hose.cursors == [0]


def test_restart_resumes_from_saved_seq_without_gap_or_duplicate(db, hose, clock):
    fill(hose, 1, 10)
    first, _ = stream(db, make_collector(hose, clock), seq_reached(10), cursor='{"seq":0}')
    assert set(stored(db)) == matching(1, 10)
    fill(hose, 11, 30)  # arrives while the bot is down
    second, run = stream(db, make_collector(hose, clock), seq_reached(30), cursor=saved_cursor(db))
    assert hose.cursors == [0, 10]  # resumed right after the last committed seq
    got = [p.id for page in second for p in page.posts]
    assert sorted(got) == sorted(matching(11, 30))  # no gap, nothing twice
    assert set(stored(db)) == matching(1, 30) and len(run.new) == len(matching(11, 30))


@pytest.mark.parametrize("clean", [False, True], ids=["abort", "close-1000"])
def test_reconnects_with_backoff_after_the_server_drops_the_connection(db, hose, clock, clean):
    fill(hose, 1, 12)
    hose.drop_after = [5, 4]
    hose.drop_clean = clean
    pages, _ = stream(db, make_collector(hose, clock), seq_reached(12), cursor='{"seq":0}')
    assert hose.cursors == [0, 5, 9]
    assert set(stored(db)) == matching(1, 12)
    assert clock.slept == [1.0, 1.0]  # injected sleep: no real waiting, frames came in between


def test_catch_up_in_pages_gives_up_with_growing_backoff_when_unreachable(db, clock):
    source = SourceConfig(
        network="bluesky", name="bsky", stream_url="ws://127.0.0.1:9/xrpc", search=False, retries=2
    )
    collector = BlueskyCollector(source, TAGS, sleep=clock.sleep, clock=clock)
    run = run_source(db, collector, follow=False)
    assert run.error and "no connection after 3 attempts" in run.error
    assert clock.slept == [2.0, 4.0]


def test_polling_cycle_consumes_the_firehose_until_idle(db, hose, clock):
    fill(hose, 1, 15)
    with db.session() as session:
        cursors.set_cursor(session, "bsky", '{"seq":0}')
    collector = make_collector(hose, clock, max_delay=2.0, checkpoint_every=10.0)
    collector.idle_timeout = 0.2
    clock.now = BASE_TIME + timedelta(days=1)  # frames are older: not caught up by time
    run = run_source(db, collector, follow=False)
    assert run.error is None and set(stored(db)) == matching(1, 15)
    assert BlueskyCursor.decode(saved_cursor(db)).seq == 15
    second = make_collector(hose, clock)
    second.idle_timeout = 0.2
    again = run_source(db, second, follow=False)
    assert again.new == [] and hose.cursors[-1] == 15


def test_polling_cycle_stops_once_frames_reach_the_cycle_start(db, hose, clock):
    fill(hose, 1, 40)  # frame n is stamped BASE_TIME + n seconds
    with db.session() as session:
        cursors.set_cursor(session, "bsky", '{"seq":0}')
    collector = make_collector(hose, clock)
    collector.idle_timeout = 5.0
    clock.now = BASE_TIME + timedelta(seconds=20)
    started = time.monotonic()
    run_source(db, collector, follow=False)
    assert time.monotonic() - started < 4  # did not wait for the idle timeout
    assert BlueskyCursor.decode(saved_cursor(db)).seq == 20


def test_stream_needs_a_stream_url_or_credentials(clock):
    from bot.core.errors import SourceDisabled

    with pytest.raises(SourceDisabled, match="app_password"):
        BlueskyCollector(SourceConfig(network="bluesky", search=True), TAGS, sleep=clock.sleep)
    with pytest.raises(SourceDisabled, match="ws://"):
        BlueskyCollector(
            SourceConfig(network="bluesky", stream_url="https://x"), TAGS, sleep=clock.sleep
        )


def test_a_failing_commit_stops_the_stream_without_moving_the_cursor(db, hose, clock):
    fill(hose, 1, 6)
    collector = make_collector(hose, clock)

    def on_page(page: Page) -> None:
        raise RuntimeError("database down")

    stop = threading.Event()
    timer = threading.Timer(10, stop.set)  # a broken stream must not hang the suite
    timer.start()
    with pytest.raises(RuntimeError, match="database down"):
        collector.stream(on_page, stop, '{"seq":0}')
    timer.cancel()
    assert saved_cursor(db) is None and collector._committed.seq == 0


def test_error_frame_future_cursor_resumes_from_the_live_tail(db, hose, clock):
    fill(hose, 1, 3)
    collector = make_collector(hose, clock)

    def until(pages: list[Page]) -> bool:
        if len(hose.connections) == 2 and len(hose.frames) == 3:
            hose.add(
                4,
                post_frame(
                    4, ALICE, tid(4), post_record("#DocTocToc live", facet_tags=["DocTocToc"])
                ),
            )
        return seq_reached(4)(pages)

    stream(db, collector, until, cursor='{"seq":99}')
    assert hose.cursors == [99, None]  # FutureCursor: the saved seq is dropped
    assert set(stored(db)) == {uri(ALICE, 4)}
    assert BlueskyCursor.decode(saved_cursor(db)).seq == 4
