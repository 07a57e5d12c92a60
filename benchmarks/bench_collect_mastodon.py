"""Benchmark: collect 10,000 #DocTocToc statuses from the fake Mastodon server into a fresh SQLite db.

The real Mastodon.py client talks HTTP to tests/fakes/mastodon_server.py on 127.0.0.1; posts are
stored through bot.collect.run_source, page by page (40 statuses, min_id paging), as in
production. The source starts with a cursor older than every status (a backlog of 10,000 since
the last run), since a first run without a cursor takes only the newest page by design. The
statuses are older than the 3-day follow window, so the numbers are those of polling alone.

    .venv/bin/python benchmarks/bench_collect_mastodon.py [--count 10000]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.fakes is not an installed package

from bot.collect import run_source  # noqa: E402
from bot.collectors.mastodon import MastodonCollector  # noqa: E402
from bot.core.config_models import SourceConfig  # noqa: E402
from bot.storage import cursors  # noqa: E402
from bot.storage.db import Database  # noqa: E402
from tests.fakes.mastodon_server import FakeMastodon  # noqa: E402

COMMAND = ".venv/bin/python benchmarks/bench_collect_mastodon.py"
BACKLOG = json.dumps({"doctoctoc": "0"})  # older than every status id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000, help="statuses on the fake server")
    count = parser.parse_args().count

    server = FakeMastodon("med.example").start()
    start = datetime.now(UTC) - timedelta(days=4) - timedelta(seconds=30 * count)
    for i in range(count):
        server.add_status(
            f"Cas {i} : douleur thoracique chez un patient de {20 + i % 60} ans.\n\nECG ? #DocTocToc",
            created_at=start + timedelta(seconds=30 * i),
            username=f"doc{i % 500}",
            account_domain=None if i % 3 else "autre.example",
            media=[(f"https://med.example/system/original/{i}.jpg", "ECG 12 dérivations")]
            if i % 10 == 0
            else None,
        )
    source = SourceConfig(network="mastodon", name="mastodon-bench", url=server.url)

    def collector() -> MastodonCollector:
        return MastodonCollector(source, ["DocTocToc"])

    try:
        alone = collector()
        started = time.perf_counter()
        fetched = sum(len(page.posts) for page in alone.pages(BACKLOG))
        elapsed = time.perf_counter() - started
        alone.close()
        print(
            f"collector alone (HTTP + Mastodon.py + normalizing, no storage): {fetched} posts in "
            f"{elapsed:.2f}s = {fetched / elapsed:,.0f} posts/s, {alone.requests} requests"
        )
        server.requests.clear()
        # The fake server's own 300-per-5-minutes window is not what is measured here.
        server.rate_limit = 1_000_000

        with tempfile.TemporaryDirectory() as tmp:
            db = Database(f"sqlite:///{Path(tmp) / 'bench.db'}")
            db.upgrade()
            with db.session() as session:
                cursors.set_cursor(session, source.key, BACKLOG)
            started = time.perf_counter()
            first = run_source(db, collector())
            elapsed = time.perf_counter() - started
            assert first.error is None, first.error
            print(
                f"first run (collect + store in SQLite): {len(first.new)} posts stored in {elapsed:.2f}s "
                f"= {len(first.new) / elapsed:,.0f} posts/s; {first.requests} requests "
                f"({server.count('/api/v1/timelines/')} timeline pages, "
                f"{server.count('/api/v2/instance')} instance probe)"
            )
            server.requests.clear()
            started = time.perf_counter()
            second = run_source(db, collector())
            elapsed = time.perf_counter() - started
            assert second.error is None, second.error
            print(
                f"second run over the same data: {len(second.new)} new posts, {second.updated} updated, "
                f"{second.requests} requests ({server.count('/api/v1/timelines/')} timeline request, "
                f"{server.count('/api/v2/instance')} instance probe) in {elapsed * 1000:.0f} ms"
            )
            db.dispose()
    finally:
        server.close()
    print(f"reproduce with: {COMMAND}")


if __name__ == "__main__":
    main()
