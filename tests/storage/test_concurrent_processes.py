"""Fault 8 of issue 12: two bot processes starting together on an empty PostgreSQL database.

Subscriber sync must not crash on the other's insert, and each post is classified once.
(Threads stand in for processes: each has its own connections and transactions.)
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from bot.core.config import load_config
from bot.pipeline import Pipeline
from bot.storage.db import Database
from bot.storage.models import ClassificationRow, PostRow, SubscriberRow
from digests.routing import sync_subscribers
from tests.conftest import ROOT, _postgres_database
from tests.digests.helpers import T0
from tests.pg import scratch_schema
from tests.test_pipeline import post, replay, replay_file


@pytest.fixture
def pg() -> Iterator[Database]:
    yield from _postgres_database()


def demo_loaded(tmp_path):
    path = tmp_path / "config.yaml"
    text = (ROOT / "config.yaml").read_text()
    path.write_text(text.replace("bot/demo/sample.jsonl", str(ROOT / "bot/demo/sample.jsonl")))
    return load_config(path, env={})


def test_two_processes_sync_subscribers_at_once_without_unique_violation(tmp_path, pg):
    loaded = demo_loaded(tmp_path)
    errors: list[BaseException] = []
    with pg.session() as first:
        sync_subscribers(first, loaded, T0)  # inserted, not yet committed

        def second() -> None:
            try:
                with pg.session() as s:
                    sync_subscribers(s, loaded, T0)  # blocks on the unique key until `first` ends
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        thread = threading.Thread(target=second)
        thread.start()
        thread.join(timeout=0.5)  # it waits on the row lock
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert errors == []
    with pg.session() as s:
        assert s.scalar(select(func.count()).select_from(SubscriberRow)) == len(
            loaded.config.subscribers
        )


class MeetingClassifier:
    """The real classifier, but both processes meet before storing: the race made certain."""

    def __init__(self, inner, barrier: threading.Barrier):
        self.inner, self.barrier = inner, barrier
        self.version = inner.version
        self.calls = 0

    def classify(self, texts, langs=None):
        self.calls += 1
        # The fixed code never lets both in at once: then this wait times out (1 s).
        with contextlib.suppress(threading.BrokenBarrierError):
            self.barrier.wait(timeout=1)
        return self.inner.classify(texts, langs)


def test_two_processes_classify_each_post_once(tmp_path, pg):
    from classifiers import load_classifier

    loaded = demo_loaded(tmp_path)
    from bot.collect import run_source

    run_source(pg, replay(replay_file(tmp_path, [post(i) for i in range(1, 31)])))
    inner = load_classifier()
    barrier = threading.Barrier(2)
    pipelines = [
        Pipeline(
            loaded,
            pg,
            classifier=MeetingClassifier(inner, barrier),
            channels={},
            collectors=[],
        )
        for _ in range(2)
    ]
    errors: list[BaseException] = []

    def work(p: Pipeline) -> None:
        try:
            p.classify_pending()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(p,)) for p in pipelines]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    with pg.session() as s:
        posts = s.scalar(select(func.count()).select_from(PostRow))
        classified = s.scalar(select(func.count()).select_from(ClassificationRow))
        distinct = s.scalar(select(func.count(func.distinct(ClassificationRow.post_id))))
    assert posts == 30 and distinct == 30
    assert classified == 30  # not 60


def test_two_run_once_processes_on_an_empty_database(tmp_path):
    """The audit's case end to end: two `doctoctoc run --once` started together on an empty
    PostgreSQL database both succeed, and every post is classified once."""
    from tests.conftest import POSTGRES_URL

    if not POSTGRES_URL:
        pytest.skip("PostgreSQL not configured: set DOCTOCTOC_TEST_POSTGRES_URL (.ci/run does)")
    with scratch_schema(POSTGRES_URL) as url:
        _two_processes(tmp_path, url)


def _two_processes(tmp_path, url: str) -> None:
    """Run both processes on `url`, then check that each post was classified once."""
    import os
    import subprocess
    import sys

    config = (ROOT / "config.yaml").read_text()
    config = config.replace("bot/demo/sample.jsonl", str(ROOT / "bot/demo/sample.jsonl"))
    config = config.replace("sqlite:///doctoctoc.db", f'"{url}"')
    procs = []
    for name in ("a", "b"):
        cwd = tmp_path / name
        cwd.mkdir()
        (cwd / "config.yaml").write_text(config, encoding="utf-8")
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        env.pop("DOCTOCTOC_CONFIG", None)
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "bot.cli", "run", "--once"],
                cwd=cwd,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )  # fmt: skip
        )
    results = [(p.wait(timeout=180), *p.communicate()) for p in procs]
    for code, out, err in results:
        assert code == 0, (out, err)
        assert "Traceback" not in err
    db = Database(url)
    try:
        with db.session() as s:
            classified = s.scalar(select(func.count()).select_from(ClassificationRow))
            distinct = s.scalar(select(func.count(func.distinct(ClassificationRow.post_id))))
    finally:
        db.dispose()
    assert classified == distinct > 0
