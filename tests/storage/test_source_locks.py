"""Issue 12, several instances on PostgreSQL: each source is polled by one process at a time;
when the holder dies, another takes the source over at its next poll."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import text

from bot.collectors.base import Collector, Page
from bot.core.config import load_config
from bot.core.config_models import SourceConfig
from bot.pipeline import Pipeline
from bot.storage.db import Database
from bot.storage.locks import lock_key
from tests.conftest import _postgres_database


@pytest.fixture
def pg() -> Iterator[Database]:
    yield from _postgres_database()


class PaidSource(Collector):
    """A source whose every page costs money: it records who fetched it."""

    network = "x"

    def __init__(self, fetched: list[str], who: str):
        super().__init__(SourceConfig(network="x", name="x-paid"), ["DocTocToc"])
        self.fetched, self.who = fetched, who

    def pages(self, cursor: str | None) -> Iterator[Page]:
        n = int(cursor or 0)
        self.fetched.append(f"{self.who}:{n}")
        yield Page(cursor=str(n + 1))


def process(pg: Database, tmp_path, fetched: list[str], who: str) -> Pipeline:
    """A second bot process: its own engine and connections on the same database."""
    path = tmp_path / "config.yaml"
    path.write_text("version: 1\nhashtags: [DocTocToc]\n", encoding="utf-8")
    db = Database(str(pg.engine.url.render_as_string(hide_password=False)))
    return Pipeline(
        load_config(path, env={}), db, classifier=object(), channels={},
        collectors=[PaidSource(fetched, who)],
    )  # fmt: skip


def kill_lock_holder(pg: Database, name: str) -> None:
    """Kill the backend holding lock `name` and wait until it has exited: without a timeout
    pg_terminate_backend only sends SIGTERM, and the dying backend keeps the lock for a moment
    (long enough, on a loaded machine, for the next pg_try_advisory_lock to fail)."""
    key = lock_key(name) & 0xFFFFFFFFFFFFFFFF
    with pg.engine.begin() as conn:
        killed = conn.execute(
            text(
                "SELECT pg_terminate_backend(pid, 10000) FROM pg_locks "
                "WHERE locktype = 'advisory' AND classid = :hi AND objid = :lo AND granted"
            ),
            {"hi": key >> 32, "lo": key & 0xFFFFFFFF},
        ).all()
    assert killed == [(True,)]


def test_each_page_is_fetched_by_one_process_and_the_other_takes_over(tmp_path, pg):
    fetched: list[str] = []
    a = process(pg, tmp_path, fetched, "a")
    b = process(pg, tmp_path, fetched, "b")
    try:
        for _ in range(3):
            a.collect()
            b.collect()
        assert fetched == ["a:0", "a:1", "a:2"]  # b never spent a read
        kill_lock_holder(pg, "source:x-paid")  # what PostgreSQL does when `a` dies
        b.collect()
        b.collect()
        assert fetched[3:] == ["b:3", "b:4"]  # b resumes at a's cursor
        a.collect()  # a restarted: b holds the source now
        assert fetched[5:] == []
    finally:
        a.close()
        b.close()
        a.db.dispose()
        b.db.dispose()
