"""Benchmark: collect 10,000 tweets from the fake X API v2 server into a fresh SQLite database.

The real tweepy Client talks HTTP to tests/fakes/x_server.py on 127.0.0.1; posts are stored
through bot.collect.run_source, page by page, as in production.

    .venv/bin/python benchmarks/bench_collect_x.py [--count 10000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.fakes is not an installed package

from bot.collect import run_source  # noqa: E402
from bot.collectors.x import XCollector  # noqa: E402
from bot.core.config_models import SourceConfig  # noqa: E402
from bot.storage.db import Database  # noqa: E402
from tests.fakes.x_server import FakeXServer  # noqa: E402

COMMAND = ".venv/bin/python benchmarks/bench_collect_x.py"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000, help="tweets on the fake server")
    count = parser.parse_args().count

    server = FakeXServer().start()
    for i in range(count):
        server.add_tweet(
            f"Cas {i} : douleur thoracique chez un patient de {20 + i % 60} ans, ECG ? #DocTocToc",
            username=f"doc{i % 500}",
        )
    source = SourceConfig(network="x", name="x-bench", bearer_token=server.token)

    def collector() -> XCollector:
        return XCollector(source, ["DocTocToc"], session=server.session())

    started = time.perf_counter()
    fetched = sum(len(page.posts) for page in collector().pages(None))
    elapsed = time.perf_counter() - started
    print(
        f"collector alone (HTTP + tweepy + normalizing, no storage): {fetched} posts in "
        f"{elapsed:.2f}s = {fetched / elapsed:,.0f} posts/s"
    )
    server.requests.clear()

    with tempfile.TemporaryDirectory() as tmp:
        db = Database(f"sqlite:///{Path(tmp) / 'bench.db'}")
        db.upgrade()
        started = time.perf_counter()
        first = run_source(db, collector(), follow=False)
        elapsed = time.perf_counter() - started
        assert first.error is None, first.error
        print(
            f"first run:  {len(first.new)} posts stored in {elapsed:.2f}s = "
            f"{len(first.new) / elapsed:,.0f} posts/s ({first.requests} requests)"
        )

        before = server.count()
        second = run_source(db, collector(), follow=False)
        print(
            f"second run: {len(second.new)} new posts, {server.count() - before} request(s)"
            f" (error: {second.error})"
        )

        before = server.count()
        started = time.perf_counter()
        third = run_source(db, collector(), follow=True)
        print(
            f"third run with replies + recheck of {count} recent cases: {len(third.new)} new, "
            f"{server.count() - before} requests in {time.perf_counter() - started:.2f}s "
            f"(error: {third.error})"
        )
        db.dispose()
    server.stop()
    print(f"reproduce: {COMMAND}")


if __name__ == "__main__":
    main()
