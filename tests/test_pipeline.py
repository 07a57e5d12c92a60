"""Pipeline stages alone: collect with failing sources, replay cursors, scheduler reloads."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import func, select

from bot.collect import run_source
from bot.collectors.base import Collector, Page
from bot.collectors.replay import ReplayCollector
from bot.core.config import load_config
from bot.core.config_models import SourceConfig
from bot.core.errors import CollectorError
from bot.pipeline import Pipeline
from bot.scheduler import BotRunner
from bot.storage import cursors
from bot.storage.models import PostRow

from .conftest import ROOT


def replay_file(tmp_path: Path, posts: list[dict]) -> Path:
    path = tmp_path / "posts.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in posts), encoding="utf-8")
    return path


def post(i: int, text: str = "Question ? #DocTocToc", **kw) -> dict:
    return {
        "network": "mastodon",
        "id": str(i),
        "url": f"https://m.example/@a/{i}",
        "author": {"id": "1", "handle": "@a@m.example", "name": "A"},
        "text": text,
        "created_at": f"2026-11-27T08:{i % 60:02d}:00Z",
        "hashtags": [],
        **kw,
    }


def replay(path: Path) -> ReplayCollector:
    return ReplayCollector(
        SourceConfig(network="replay", url=str(path)), ["DocTocToc", "DocTocTocPsy"]
    )


def count(db) -> int:
    with db.session() as s:
        return s.scalar(select(func.count(PostRow.id)))


def test_replay_matches_hashtags_exactly_and_skips_malformed_lines(tmp_path, db):
    path = replay_file(
        tmp_path,
        [
            post(1),
            post(2, "#doctoctoc minuscule ?"),
            post(3, "#DOCTOCTOC ?"),
            post(4, "#DocTocTocs ?"),
            post(5, "pas de tag"),
            post(6, "#DocTocTocPsy ?"),
            post(7, "#DocTocTóc accent ?"),
        ],
    )
    with path.open("a") as fh:
        fh.write("{broken json\n")
        fh.write(json.dumps({"network": "mastodon"}) + "\n")
        fh.write(json.dumps(post(8, "réponse sans tag", reply_to="1")) + "\n")
    run = run_source(db, replay(path))
    assert run.error is None and run.skipped == 2
    with db.session() as s:
        ids = sorted(int(r) for r in s.scalars(select(PostRow.native_id)))
        assert ids == [1, 2, 3, 6, 7, 8]
        assert s.scalar(select(PostRow.answer_count).where(PostRow.native_id == "1")) == 1


def test_replay_resumes_from_its_cursor_without_duplicates(tmp_path, db):
    path = replay_file(tmp_path, [post(i) for i in range(1, 6)])
    run_source(db, replay(path))
    with path.open("a") as fh:
        fh.write(json.dumps(post(6)) + "\n")
    second = run_source(db, replay(path))
    assert len(second.new) == 1 and count(db) == 6


class Broken(Collector):
    network = "mastodon"

    def __init__(self, fail_after: int, pages: list[list[dict]], exc: Exception):
        super().__init__(
            SourceConfig(network="mastodon", url="https://broken.example", name="broken"),
            ["DocTocToc"],
        )
        self.fail_after, self._pages, self.exc = fail_after, pages, exc

    def pages(self, cursor: str | None) -> Iterator[Page]:
        start = int(cursor or 0)
        for n, raw in enumerate(self._pages[start:], start=start):
            if n >= self.fail_after:
                raise self.exc
            from bot.core.post import Post

            yield Page(posts=[Post.from_dict(p) for p in raw], cursor=str(n + 1))


def test_failing_source_keeps_committed_pages_and_does_not_stop_others(tmp_path, db, monkeypatch):
    pages = [[post(1), post(2)], [post(3)], [post(4)]]
    broken = Broken(2, pages, CollectorError("HTTP 503 after 4 attempts"))
    crashing = Broken(0, pages, KeyError("bug in a parser"))
    crashing.source = SourceConfig(network="mastodon", url="https://crash.example", name="crash")
    ok = replay(replay_file(tmp_path, [post(10), post(11)]))
    config = load_config(ROOT / "config.yaml", env={})
    pipeline = Pipeline(
        config, db, classifier=object(), collectors=[crashing, broken, ok], channels={}
    )
    runs = pipeline.collect()
    assert [r.error is not None for r in runs] == [True, True, False]
    assert "bug in a parser" in runs[0].error
    assert count(db) == 5  # pages 1-2 of the broken source, both replay posts
    with db.session() as s:
        assert cursors.get_cursor(s, "broken") == "2"  # moved only past committed pages
        health = {
            h.source: h
            for h in cursors.health(s, {"broken": config.config.sources[0].unhealthy_after})
        }
        assert health["broken"].failing_since is not None
    # The source recovers: the next cycle resumes at page 3, no gap, no duplicate.
    broken.fail_after = 99
    pipeline.collect([broken])
    assert count(db) == 6


def test_bad_config_edit_keeps_the_running_bot_on_the_last_good_config(tmp_path, db):
    config_path = tmp_path / "config.yaml"
    config_path.write_text(
        (ROOT / "config.yaml")
        .read_text()
        .replace("bot/demo/sample.jsonl", str(ROOT / "bot/demo/sample.jsonl"))
    )
    loaded = load_config(config_path, env={})
    said: list[str] = []
    runner = BotRunner(loaded, db, echo=said.append)
    runner.schedule()
    jobs = {j.id for j in runner.scheduler.get_jobs()}
    assert {"deliver:outbox", "config"} <= jobs and any(
        j.startswith("collect:replay") for j in jobs
    )
    config_path.write_text(
        config_path.read_text().replace("min_urgency: soon", "min_urgency: sometimes")
    )
    runner._config_mtime = -1
    runner.reload_config()
    assert runner.loaded is loaded
    assert any("config not reloaded" in line and "min_urgency" in line for line in said)
    config_path.write_text(
        config_path.read_text().replace("min_urgency: sometimes", "min_urgency: urgent")
    )
    runner._config_mtime = -1
    runner.reload_config()
    assert runner.loaded is not loaded and said[-1] == "config reloaded"
    assert runner.loaded.config.subscribers[1].min_urgency == "urgent"


def test_bulk_steps_leave_the_garbage_collector_as_they_found_it():
    import gc
    import threading

    from bot.pipeline import _bulk_gc

    before = gc.get_threshold()
    inside = threading.Event()
    release = threading.Event()

    def other_step():
        with _bulk_gc.step():
            inside.set()
            release.wait(5)

    with _bulk_gc.step():
        assert gc.get_threshold()[0] == _bulk_gc.YOUNG and gc.get_freeze_count() > 0
        thread = threading.Thread(target=other_step)
        thread.start()
        inside.wait(5)
    assert gc.get_threshold()[0] == _bulk_gc.YOUNG  # the other step still runs
    release.set()
    thread.join(5)
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
