"""Mastodon collector under failures (429, 5xx, timeouts, network errors, malformed data),
rate limits, and in streaming mode. Nothing sleeps for real: collectors get the FakeClock's
sleep, which records the waits.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from bot.collect import SourceRun, save_page
from tests.collectors.mastodon_support import (
    TIMELINE,
    add_many,
    collector,
    cursor_of,
    prime,
    rows,
    run,
    wait_until,
)
from tests.fakes.mastodon_server import FakeMastodon, iso_ms


@pytest.fixture
def server() -> Iterator[FakeMastodon]:
    with FakeMastodon("med.example") as fake:
        yield fake


# --- failures -------------------------------------------------------------------------------------


def test_429_with_reset_header_waits_until_reset(db, server, clock):
    server.add_status("Cas #DocTocToc", created_at=clock() - timedelta(minutes=10))
    reset = datetime.now(UTC) + timedelta(seconds=30)
    server.fail(
        TIMELINE,
        status=429,
        headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": iso_ms(reset)},
    )
    result = run(db, collector(server, clock), clock, follow=False)
    assert result.error is None and len(result.new) == 1
    assert len(clock.slept) == 1 and 28 <= clock.slept[0] <= 31
    assert server.count(TIMELINE) == 2


def test_429_without_headers_backs_off_without_a_hot_loop(db, server, clock):
    server.add_status("Cas #DocTocToc", created_at=clock() - timedelta(minutes=10))
    server.fail(TIMELINE, status=429, times=2, bare=True)
    result = run(db, collector(server, clock), clock, follow=False)
    assert result.error is None and len(result.new) == 1
    assert len(clock.slept) == 2 and clock.slept[0] >= 2 and clock.slept[1] > clock.slept[0]


def test_429_giving_up_keeps_the_cursor(db, server, clock):
    prime(db, server, clock)
    coll = collector(server, clock)
    before = cursor_of(db, coll)
    add_many(server, clock, 5)
    server.fail(TIMELINE, status=429, times=3, headers={"Retry-After": "20"})
    result = run(db, coll, clock, follow=False)
    assert result.error and "rate limited" in result.error
    assert clock.slept == [20, 20]  # retries=2: three attempts, two waits, as the server asked
    assert server.count(TIMELINE) == 3
    assert cursor_of(db, coll) == before and result.new == []


def test_server_errors_are_retried(db, server, clock):
    server.add_status("Cas #DocTocToc", created_at=clock() - timedelta(minutes=10))
    server.fail(TIMELINE, status=500, times=1)
    server.fail(TIMELINE, status=503, times=1, headers={"Retry-After": "7"})
    result = run(db, collector(server, clock), clock, follow=False)
    assert result.error is None and len(result.new) == 1
    assert len(clock.slept) == 2 and 2 <= clock.slept[0] <= 3 and clock.slept[1] == 7


def test_server_reset_after_reset_window_is_not_a_500_wait(db, server, clock):
    """A 500 carries X-RateLimit-Reset too (Mastodon sends it everywhere): it is not a wait hint."""
    server.add_status("Cas #DocTocToc", created_at=clock() - timedelta(minutes=10))
    reset = datetime.now(UTC) + timedelta(seconds=250)
    server.fail(TIMELINE, status=502, headers={"X-RateLimit-Reset": iso_ms(reset)})
    assert run(db, collector(server, clock), clock, follow=False).error is None
    assert len(clock.slept) == 1 and clock.slept[0] < 10


def test_timeouts_are_retried(db, server, clock):
    server.add_status("Cas #DocTocToc", created_at=clock() - timedelta(minutes=10))
    server.fail(TIMELINE, status=None, delay=2.0)  # answers after the client gave up
    coll = collector(server, clock, timeout=0.2)
    assert coll.api.request_timeout == 0.2
    result = run(db, coll, clock, follow=False)
    assert result.error is None and len(result.new) == 1
    assert len(clock.slept) == 1


def test_network_error_ends_the_cycle_without_moving_the_cursor(db, clock):
    with FakeMastodon() as fake:
        prime(db, fake, clock)
        coll = collector(fake, clock)
        before = cursor_of(db, coll)
    result = run(db, coll, clock, follow=False)  # the server is gone: connection refused
    assert result.error and "network error" in result.error
    assert len(clock.slept) == 2 and cursor_of(db, coll) == before


def test_unauthorized_is_not_retried(db, server, clock):
    server.fail(TIMELINE, status=401, times=5)
    result = run(db, collector(server, clock), clock, follow=False)
    assert result.error and "401" in result.error and clock.slept == []


def test_malformed_items_are_skipped_and_counted(db, server, clock):
    t = clock() - timedelta(hours=1)
    good = server.add_status("Bon #DocTocToc", created_at=t)
    bad = [
        {"id": "1", "content": "<p>#DocTocToc</p>"},  # no uri, account, created_at
        {**good, "id": None},
        {**good, "uri": "https://x/1", "account": "alice"},
        {**good, "uri": "https://x/2", "created_at": "hier"},
        {**good, "uri": "https://x/3", "in_reply_to_id": {"id": "5"}},
        "pas un statut",
        None,
    ]
    for i, item in enumerate(bad):
        server.add_raw(item, created_at=t + timedelta(minutes=i + 1))
    last = server.add_status("Dernier #DocTocToc", created_at=t + timedelta(minutes=30))
    coll = collector(server, clock)
    result = run(db, coll, clock, follow=False)
    assert result.error is None and result.skipped == len(bad)
    assert [r.native_id for r in rows(db)] == [good["id"], last["id"]]
    assert cursor_of(db, coll) == {"doctoctoc": last["id"]}


def test_a_bad_body_is_retried(db, server, clock):
    server.add_status("Cas #DocTocToc", created_at=clock() - timedelta(minutes=10))
    server.fail(TIMELINE, status=None, body=b"<html>proxy error")
    result = run(db, collector(server, clock), clock, follow=False)
    assert result.error is None and len(result.new) == 1 and len(clock.slept) == 1


def test_an_object_instead_of_a_list_moves_nothing(db, server, clock):
    """Mastodon.py turns a JSON object into a list of its keys: skipped, the cursor stays."""
    prime(db, server, clock)
    coll = collector(server, clock)
    before = cursor_of(db, coll)
    late = server.add_status("Cas #DocTocToc", created_at=clock() - timedelta(minutes=10))
    server.fail(TIMELINE, status=None, body=b'{"error": "maintenance"}')
    result = run(db, coll, clock, follow=False)
    assert result.error is None and result.new == [] and result.skipped == 1
    assert cursor_of(db, coll) == before
    again = run(db, collector(server, clock), clock, follow=False)
    assert len(again.new) == 1 and rows(db)[-1].native_id == late["id"]


def test_a_missing_timeline_is_a_clear_error(db, server, clock):
    server.fail(TIMELINE, status=404, times=5)
    result = run(db, collector(server, clock), clock, follow=False)
    assert result.error == f"#DocTocToc timeline not found on {server.url}" and clock.slept == []


# --- rate limits -----------------------------------------------------------------------------------


def test_own_rate_limit_accounting_waits_instead_of_exceeding(db, server, clock):
    prime(db, server, clock)
    add_many(server, clock, 50)
    coll = collector(server, clock, page_size=10, rate_limit=3, rate_window=300.0)
    result = run(db, coll, clock, follow=False)
    assert result.error is None and len(result.new) == 50
    assert clock.slept and all(0 < s <= 300 for s in clock.slept)
    # never more than 3 requests in any 300 s of the (fake) clock
    assert len(clock.slept) == (coll.requests - 1) // 3


def test_server_remaining_zero_waits_for_its_reset(db, server, clock):
    prime(db, server, clock)
    add_many(server, clock, 60)
    reset = datetime.now(UTC) + timedelta(seconds=42)
    server.fail(
        TIMELINE,
        status=None,
        headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": iso_ms(reset)},
    )
    result = run(db, collector(server, clock), clock, follow=False)
    assert result.error is None and len(result.new) == 60
    assert len(clock.slept) == 1 and 40 <= clock.slept[0] <= 43


# --- streaming (optional mode) -------------------------------------------------------------------


def test_stream_then_reconnect_and_catch_up_after_a_silent_stream(db, server, clock):
    before = server.add_status("Avant #DocTocToc", created_at=clock() - timedelta(minutes=30))
    coll = collector(server, clock, stream=True, heartbeat=0.3, reconnect_wait=1.0)
    assert coll.streams and coll.stream_url == f"{server.url}/api/v1/streaming/hashtag"
    stop, done = threading.Event(), {}
    record = SourceRun(source=coll.key)

    def stored(sid: str, *, deleted: bool = False) -> bool:
        return any(r.native_id == sid and r.deleted == deleted for r in rows(db))

    def streaming() -> None:
        done["cursor"] = coll.stream(lambda page: save_page(db, coll.key, page, record), stop, None)

    thread = threading.Thread(target=streaming, daemon=True)
    thread.start()
    try:
        wait_until(lambda: stored(before["id"]))  # the catch-up poll after connecting
        assert server.wait_for_streams(1)
        live = server.add_status("En direct #DocTocToc", created_at=clock() - timedelta(minutes=20))
        server.push("update", live)
        wait_until(lambda: stored(live["id"]))
        assert server.count(TIMELINE) == 1  # delivered by the stream, not by polling
        server.push("delete", before["id"])
        wait_until(lambda: stored(before["id"], deleted=True))
        # The link goes silent (no heartbeat): what is posted meanwhile is lost to the stream...
        server.stall_streams()
        server.fail("/api/v1/streaming/", status=503)  # ... and the first reconnection fails
        missed = server.add_status(
            "Pendant la coupure #DocTocToc", created_at=clock() - timedelta(minutes=10)
        )
        server.push("update", missed)
        # ... and found by the catch-up poll once the stream is back.
        wait_until(lambda: stored(missed["id"]))
        assert server.wait_for_streams(1)
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()
    assert clock.slept == [1.0]  # one backoff, after the failed reconnection
    assert json.loads(done["cursor"]) == {"doctoctoc": missed["id"]}
    assert len(record.new) == 3 and sum(1 for r in rows(db) if r.native_id == live["id"]) == 1
