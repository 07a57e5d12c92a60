"""Benchmark: Bluesky search backfill of 10,000 posts from the fake XRPC server into SQLite.

The real atproto Client logs in and pages `app.bsky.feed.searchPosts` (100 PostViews a page)
on tests/fakes/bluesky_server.py (127.0.0.1); pages are stored by bot.collect.run_source, as in
production. A second run must find 0 new posts with at most one search request.

    .venv/bin/python benchmarks/bench_collect_bluesky.py [--count 10000]
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.fakes is not an installed package

from bot.collect import run_source  # noqa: E402
from bot.collectors.bluesky import BlueskyCollector  # noqa: E402
from bot.core.config_models import SourceConfig  # noqa: E402
from bot.storage.db import Database  # noqa: E402
from tests.fakes.bluesky_data import BASE_TIME, post_record, post_view, tid  # noqa: E402
from tests.fakes.bluesky_server import FakeBluesky  # noqa: E402

COMMAND = ".venv/bin/python benchmarks/bench_collect_bluesky.py"
SEARCH = "app.bsky.feed.searchPosts"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000, help="posts on the fake server")
    count = parser.parse_args().count
    logging.basicConfig(level=logging.ERROR)

    api = FakeBluesky()
    for i in range(count):
        when = BASE_TIME - timedelta(seconds=30 * i)
        record = post_record(
            f"Cas {i} : douleur thoracique chez un patient de {20 + i % 60} ans, ECG ? #DocTocToc",
            created_at=when,
            facet_tags=["DocTocToc"],
            images=[(f"ecg{i}", "ECG 12 dérivations")] if i % 5 == 0 else None,
            json_form=True,
        )
        did = f"did:plc:doc{i % 500:022d}"
        api.add(post_view(did, tid(i), record, handle=f"doc{i % 500}.bsky.social"))
    source = SourceConfig(
        network="bluesky",
        name="bsky-bench",
        url=api.url,
        handle=api.handle,
        app_password=api.password,
    )

    def collector() -> BlueskyCollector:
        return BlueskyCollector(source, ["DocTocToc"])

    started = time.perf_counter()
    fetched = sum(len(page.posts) for page in collector().pages(None))
    elapsed = time.perf_counter() - started
    print(
        f"collector alone (HTTP + atproto models + normalizing, no storage): {fetched} posts in "
        f"{elapsed:.2f}s = {fetched / elapsed:,.0f} posts/s"
    )

    with tempfile.TemporaryDirectory() as tmp:
        db = Database(f"sqlite:///{Path(tmp) / 'bench.db'}")
        db.upgrade()
        api.requests.clear()
        started = time.perf_counter()
        first = run_source(db, collector(), follow=False)
        elapsed = time.perf_counter() - started
        assert first.error is None, first.error
        print(
            f"first run: {len(first.new)} new posts stored in {elapsed:.2f}s = "
            f"{len(first.new) / elapsed:,.0f} posts/s ({api.requests[SEARCH]} search requests)"
        )
        api.requests.clear()
        started = time.perf_counter()
        second = run_source(db, collector(), follow=False)
        elapsed = time.perf_counter() - started
        assert second.error is None, second.error
        print(
            f"second run: {len(second.new)} new posts, {api.requests[SEARCH]} search request(s), "
            f"{elapsed:.2f}s"
        )
        assert not second.new and api.requests[SEARCH] <= 1
        db.dispose()
    api.close()
    print(f"reproduce: {COMMAND}")


if __name__ == "__main__":
    main()
