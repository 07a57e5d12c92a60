"""One contract, every collector: the failure semantics the collectors issue asks of all three
networks, run against each one's real client library and local fake server.

- every matching post is stored once; a second run stores nothing and sends at most one request
  for new posts;
- a 5xx that persists ends the cycle with an error, after bounded retries, and leaves the cursor
  where it was: the next run stores everything, nothing twice;
- a 429 without any reset header backs off (never a hot loop) and then succeeds;
- a timeout is retried;
- a malformed item is skipped and counted, the posts around it are stored;
- one failing source never stops the others (the pipeline's collect stage).

Each network's own test module covers its details (headers, pagination, edits, threads).
"""

from __future__ import annotations

import itertools
from abc import ABC, abstractmethod
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from bot.collect import run_source
from bot.collectors import build_collector
from bot.collectors.base import Collector
from bot.collectors.x import XCollector
from bot.core.config import load_config
from bot.core.config_models import SourceConfig
from bot.pipeline import Pipeline
from bot.storage import cursors
from bot.storage.models import PostRow
from tests.conftest import FakeClock
from tests.fakes.bluesky_data import post_record, post_view, tid
from tests.fakes.bluesky_server import FakeBluesky
from tests.fakes.mastodon_server import FakeMastodon
from tests.fakes.x_server import FakeXServer

TAGS = ["DocTocToc"]


class Harness(ABC):
    """A fake server of one network, driven the same way for every network."""

    network: str
    name: str

    def __init__(self, clock: FakeClock):
        self.clock = clock
        self.counter = itertools.count(1)

    @abstractmethod
    def add(self, count: int) -> list[str]:
        """Publish `count` matching posts, newer than any before; their native ids."""

    @abstractmethod
    def fail(self, status: int, times: int) -> None:
        """The next `times` searches answer `status` with no rate-limit header at all."""

    @abstractmethod
    def slow(self) -> None:
        """The next search answers only after the client's timeout."""

    @abstractmethod
    def malformed(self) -> None:
        """Serve one malformed item among the search results from now on."""

    @abstractmethod
    def collector(self, timeout: float = 5.0) -> Collector: ...

    def close(self) -> None:
        pass

    def when(self) -> Any:
        return self.clock() - timedelta(hours=2) + timedelta(seconds=next(self.counter))


class MastodonHarness(Harness):
    network, name = "mastodon", "mastodon-contract"
    timeline = "/api/v1/timelines/tag/"

    def __init__(self, clock: FakeClock):
        super().__init__(clock)
        self.server = FakeMastodon("med.example").start()

    def add(self, count: int) -> list[str]:
        return [
            self.server.add_status(f"Cas {i} #DocTocToc", created_at=self.when())["id"]
            for i in range(count)
        ]

    def fail(self, status: int, times: int) -> None:
        self.server.fail(self.timeline, status=status, times=times, bare=True)

    def slow(self) -> None:
        self.server.fail(self.timeline, status=None, delay=1.5)

    def malformed(self) -> None:
        self.server.add_raw({"id": "1", "content": "<p>#DocTocToc</p>"}, created_at=self.when())

    def collector(self, timeout: float = 5.0) -> Collector:
        source = SourceConfig(
            network="mastodon", name=self.name, url=self.server.url, retries=2, timeout=timeout
        )
        return build_collector(source, TAGS, sleep=self.clock.sleep, clock=self.clock)

    def close(self) -> None:
        self.server.close()


class BlueskyHarness(Harness):
    network, name = "bluesky", "bluesky-contract"
    search = "app.bsky.feed.searchPosts"
    author = "did:plc:aliceaaaaaaaaaaaaaaaaaaa"

    def __init__(self, clock: FakeClock):
        super().__init__(clock)
        self.server = FakeBluesky()

    def add(self, count: int) -> list[str]:
        uris = []
        for i in range(count):
            n = next(self.counter)
            record = post_record(
                f"Cas {i} #DocTocToc",
                created_at=self.clock() - timedelta(hours=2) + timedelta(seconds=n),
                facet_tags=["DocTocToc"],
                json_form=True,
            )
            uris.append(
                self.server.add(post_view(self.author, tid(n), record, handle="alice.test"))
            )
        return uris

    def fail(self, status: int, times: int) -> None:
        self.server.fail(self.search, status, times=times)

    def slow(self) -> None:
        self.server.fail(self.search, 200, delay=1.5)

    def malformed(self) -> None:
        self.server.junk_items = [{"uri": "at://broken"}]

    def collector(self, timeout: float = 5.0) -> Collector:
        source = SourceConfig(
            network="bluesky",
            name=self.name,
            url=self.server.url,
            handle=self.server.handle,
            app_password=self.server.password,
            retries=2,
            timeout=timedelta(seconds=timeout),
        )
        return build_collector(source, TAGS, sleep=self.clock.sleep, clock=self.clock)

    def close(self) -> None:
        self.server.close()


class XHarness(Harness):
    network, name = "x", "x-contract"

    def __init__(self, clock: FakeClock):
        super().__init__(clock)
        self.server = FakeXServer(clock=clock).start()

    def add(self, count: int) -> list[str]:
        ids = []
        for i in range(count):
            ids.append(self.server.add_tweet(f"Cas {i} #DocTocToc"))
            self.clock.advance(seconds=1)
        return ids

    def fail(self, status: int, times: int) -> None:
        kind = "429-noreset" if status == 429 else str(status)
        self.server.fail(kind, times=times)

    def slow(self) -> None:
        self.server.fail("slow", delay=1.5)

    def malformed(self) -> None:
        self.server.add_raw({"id": 123, "text": "#DocTocToc"})

    def collector(self, timeout: float = 5.0) -> Collector:
        source = SourceConfig(
            network="x",
            name=self.name,
            bearer_token=self.server.token,
            retries=2,
            timeout=timedelta(seconds=timeout),
        )
        return XCollector(
            source, TAGS, session=self.server.session(), sleep=self.clock.sleep, clock=self.clock
        )

    def close(self) -> None:
        self.server.stop()


HARNESSES = {"mastodon": MastodonHarness, "bluesky": BlueskyHarness, "x": XHarness}


@pytest.fixture(params=sorted(HARNESSES))
def net(request, clock) -> Iterator[Harness]:
    harness = HARNESSES[request.param](clock)
    yield harness
    harness.close()


def run(db, harness: Harness, **kwargs: Any):
    collector = harness.collector(**kwargs)
    try:
        return run_source(db, collector, now=harness.clock(), follow=False)
    finally:
        collector.close()


def stored(db, network: str | None = None) -> list[str]:
    with db.session() as session:
        query = select(PostRow.native_id).order_by(PostRow.id)
        if network:
            query = query.where(PostRow.network == network)
        return list(session.scalars(query))


def cursor(db, harness: Harness) -> str | None:
    with db.session() as session:
        return cursors.get_cursor(session, harness.name)


def test_every_post_is_stored_once_and_a_second_run_reads_nothing_new(db, net):
    ids = net.add(7)
    collector = net.collector()  # the running bot keeps its collectors from cycle to cycle
    try:
        first = run_source(db, collector, now=net.clock(), follow=False)
        assert first.error is None and len(first.new) == 7
        assert sorted(stored(db)) == sorted(ids)
        assert cursor(db, net) is not None

        second = run_source(db, collector, now=net.clock(), follow=False)
        assert second.error is None and second.new == [] and second.requests <= 1
        later = net.add(2)
        third = run_source(db, collector, now=net.clock(), follow=False)
        assert third.error is None and len(third.new) == 2
    finally:
        collector.close()
    assert sorted(stored(db)) == sorted(ids + later)
    # a new process (a fresh collector) resumes from the stored cursor: nothing twice
    assert run(db, net).new == []


def test_a_persistent_server_error_keeps_the_cursor_and_loses_nothing(db, net):
    ids = net.add(3)
    assert run(db, net).error is None
    before = cursor(db, net)
    late = net.add(4)
    net.fail(500, times=3)  # retries=2: every attempt of this cycle fails
    failed = run(db, net)
    assert failed.error and "3 attempts" in failed.error
    assert failed.new == [] and cursor(db, net) == before
    assert len(net.clock.slept) == 2 and all(wait >= 2.0 for wait in net.clock.slept)

    recovered = run(db, net)
    assert recovered.error is None and len(recovered.new) == 4
    assert sorted(stored(db)) == sorted(ids + late)  # no gap, no duplicate


def test_a_429_without_reset_header_backs_off_then_succeeds(db, net):
    ids = net.add(2)
    net.fail(429, times=2)
    result = run(db, net)
    assert result.error is None and sorted(stored(db)) == sorted(ids)
    waits = net.clock.slept
    assert len(waits) == 2 and waits[0] >= 2.0 and waits[1] > waits[0]  # exponential, not hot


def test_a_timeout_is_retried(db, net):
    ids = net.add(2)
    net.slow()
    result = run(db, net, timeout=0.3)
    assert result.error is None and sorted(stored(db)) == sorted(ids)
    assert len(net.clock.slept) == 1


def test_a_malformed_item_is_skipped_and_the_others_stored(db, net):
    before = net.add(2)
    net.malformed()
    after = net.add(2)
    result = run(db, net)
    assert result.error is None and result.skipped == 1
    assert sorted(stored(db)) == sorted(before + after)
    assert cursor(db, net) is not None


def test_one_failing_source_never_stops_the_others(db, clock, tmp_path):
    harnesses = [cls(clock) for _, cls in sorted(HARNESSES.items())]
    try:
        expected = {h.network: h.add(3) for h in harnesses}
        broken = harnesses[1]  # the middle one: sources before and after it still run
        broken.fail(503, times=10)
        config = tmp_path / "config.yaml"
        config.write_text("version: 1\nhashtags: [DocTocToc]\n")
        pipeline = Pipeline(
            load_config(config),
            db,
            classifier=object(),
            channels={},
            collectors=[h.collector() for h in harnesses],
            clock=clock,
        )
        runs = {r.source: r for r in pipeline.collect()}
        assert runs[broken.name].error and stored(db, broken.network) == []
        for h in harnesses:
            if h is not broken:
                assert runs[h.name].error is None
                assert sorted(stored(db, h.network)) == sorted(expected[h.network])
        for c in pipeline.collectors:
            c.close()
    finally:
        for h in harnesses:
            h.close()
