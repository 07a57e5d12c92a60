"""Helpers shared by the Mastodon collector tests (real Mastodon.py against FakeMastodon)."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from bot.collect import SourceRun, run_source
from bot.collectors import build_collector
from bot.collectors.mastodon import MastodonCollector
from bot.core.config_models import SourceConfig
from bot.storage import cursors
from bot.storage.db import Database
from bot.storage.models import PostRow
from tests.conftest import FakeClock
from tests.fakes.mastodon_server import FakeMastodon

TAGS = ["DocTocToc"]
TIMELINE = "/api/v1/timelines/tag/"


def collector(
    fake: FakeMastodon, clock: FakeClock, *, tags: list[str] | None = None, **kwargs: Any
) -> MastodonCollector:
    """A collector of `fake`: SourceConfig fields (timeout, retries, name, stream) or options."""
    keys = ("timeout", "retries", "name", "stream", "backfill")
    config = {k: kwargs.pop(k) for k in keys if k in kwargs}
    source = SourceConfig(
        network="mastodon", url=fake.url, **{"retries": 2, "timeout": 5, **config}
    )
    coll = build_collector(source, tags or TAGS, sleep=clock.sleep, clock=clock, **kwargs)
    assert isinstance(coll, MastodonCollector)
    return coll


def run(
    db: Database, coll: MastodonCollector, clock: FakeClock, *, follow: bool = True
) -> SourceRun:
    try:
        return run_source(db, coll, now=clock(), follow=follow)
    finally:
        coll.close()


def rows(db: Database) -> list[PostRow]:
    with db.session() as session:
        return list(session.scalars(select(PostRow).order_by(PostRow.id)).all())


def cursor_of(db: Database, coll: MastodonCollector) -> dict[str, str] | None:
    with db.session() as session:
        value = cursors.get_cursor(session, coll.key)
    return json.loads(value) if value else None


def add_many(fake: FakeMastodon, clock: FakeClock, count: int, *, start: int = 0) -> list[dict]:
    base = clock() - timedelta(hours=1)
    return [
        fake.add_status(
            f"Question {start + i} #DocTocToc", created_at=base + timedelta(seconds=start + i)
        )
        for i in range(count)
    ]


def prime(db: Database, fake: FakeMastodon, clock: FakeClock) -> dict:
    """A first run over one status: the cursor exists from then on."""
    first = fake.add_status("Premier cas #DocTocToc", created_at=clock() - timedelta(hours=2))
    assert run(db, collector(fake, clock), clock, follow=False).new
    fake.requests.clear()
    return first


def wait_until(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)
