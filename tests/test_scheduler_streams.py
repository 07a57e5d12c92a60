"""The scheduler's collect job and stream supervisor, with scripted collectors (no network).

Nothing sleeps for real: the supervisor's restart wait is injected, and a stream that "runs"
blocks on the stop event the test sets.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from bot.collectors.base import Collector, Page, StreamingCollector
from bot.core.config import load_config
from bot.core.config_models import SourceConfig
from bot.core.post import Author, Post
from bot.pipeline import Pipeline
from bot.scheduler import STREAM_RESTART_S, BotRunner, StreamSupervisor
from bot.storage import cursors
from tests.conftest import FakeClock

TAGS = ["DocTocToc"]
T0 = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
Script = Callable[[Callable[[Page], None], threading.Event], None]


def source(name: str, *, stream: bool = True) -> SourceConfig:
    return SourceConfig(network="mastodon", url="https://med.example", name=name, stream=stream)


def post(i: int, text: str = "Avis dermato sur une plaque annulaire ? #DocTocToc") -> Post:
    return Post(
        network="mastodon",
        id=str(i),
        url=f"https://med.example/@dr_a/{i}",
        author=Author(id="1", handle="dr_a@med.example", name="Dr A"),
        text=text,
        created_at=T0 - timedelta(minutes=10 - i),
        hashtags=["DocTocToc"],
    )


class ScriptedStream(StreamingCollector):
    """A streaming source whose every start runs the next script."""

    network = "mastodon"

    def __init__(self, name: str, scripts: list[Script], *, streams: bool = True):
        super().__init__(source(name, stream=streams), TAGS)
        self.scripts = list(scripts)
        self.started_from: list[str | None] = []  # the cursor of every start
        self.returned = threading.Event()

    @property
    def streams(self) -> bool:
        return bool(self.source.stream)

    def pages(self, cursor: str | None) -> Iterator[Page]:
        return iter(())

    def stream(
        self, on_page: Callable[[Page], None], stop: threading.Event, cursor: str | None = None
    ) -> str | None:
        self.started_from.append(cursor)
        self.scripts.pop(0)(on_page, stop)
        self.returned.set()
        return cursor


class DuckStream(Collector):
    """Has a stream_url and a stream() method, but declares no streaming: never streamed."""

    network = "mastodon"
    stream_url = "wss://med.example/api/v1/streaming"

    def __init__(self) -> None:
        super().__init__(source("duck"), TAGS)
        self.streamed = False

    def pages(self, cursor: str | None) -> Iterator[Page]:
        return iter(())

    def stream(self, *args: object) -> None:
        self.streamed = True


def deliver_then_fail(page: Page) -> Script:
    def script(on_page: Callable[[Page], None], stop: threading.Event) -> None:
        on_page(page)
        raise ConnectionError("connection reset by peer")

    return script


def deliver_until_stopped(page: Page, live: threading.Event) -> Script:
    def script(on_page: Callable[[Page], None], stop: threading.Event) -> None:
        on_page(page)
        live.set()
        stop.wait()

    return script


def stored_cursor(db, key: str) -> str | None:
    with db.session() as session:
        return cursors.get_cursor(session, key)


def source_health(db, key: str):
    with db.session() as session:
        [health] = cursors.health(session, {key: timedelta(minutes=30)}, T0 + timedelta(hours=1))
    return health


# --- the stream supervisor -------------------------------------------------------------------


def test_a_failing_stream_is_logged_recorded_and_restarted_from_its_cursor(db, caplog):
    live, stop = threading.Event(), threading.Event()
    waits: list[float] = []
    collector = ScriptedStream(
        "flaky",
        [
            deliver_then_fail(Page(posts=[post(1)], cursor="c1")),
            deliver_until_stopped(Page(posts=[post(2)], cursor="c2"), live),
        ],
    )
    supervisor = StreamSupervisor(db, collector, stop, wait=waits.append)
    thread = threading.Thread(target=supervisor.run, daemon=True)
    with caplog.at_level(logging.ERROR, logger="bot.scheduler"):
        thread.start()
        assert live.wait(10), "the stream was not restarted"
        # While the restarted stream runs, the failure is visible in the source's health.
        health = source_health(db, "flaky")
        assert health.failing_since is not None
        assert health.last_error == "stream: ConnectionError('connection reset by peer')"
        stop.set()
        thread.join(10)
    assert not thread.is_alive(), "the supervisor did not stop with its stop event"
    assert collector.returned.is_set()
    # Restarted once, after the backoff, from the cursor the failed stream had committed.
    assert waits == [STREAM_RESTART_S]
    assert collector.started_from == [None, "c1"]
    assert stored_cursor(db, "flaky") == "c2"
    [record] = [r for r in caplog.records if r.name == "bot.scheduler"]
    assert record.getMessage() == f"stream of flaky failed; restarting in {STREAM_RESTART_S}s"
    assert record.exc_info is not None and record.exc_info[0] is ConnectionError


def test_stopping_during_the_backoff_does_not_restart_the_stream(db):
    stop = threading.Event()
    collector = ScriptedStream("flaky", [deliver_then_fail(Page(cursor="c1"))])
    waits: list[float] = []

    def wait(seconds: float) -> None:  # the bot shuts down while the stream waits to restart
        waits.append(seconds)
        stop.set()

    StreamSupervisor(db, collector, stop, restart_after=7, wait=wait).run()
    assert waits == [7] and collector.started_from == [None]


# --- which sources stream: the scheduler asks the type ----------------------------------------


@pytest.fixture
def loaded(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(
        f"""\
version: 1
hashtags: [DocTocToc]
channels:
  outbox: {{dir: {tmp_path / "outbox"}}}
subscribers:
  - {{name: File, id: file, deliver_by: [outbox], immediate: routine}}
""",
        encoding="utf-8",
    )
    return load_config(path, env={})


def runner_with(loaded, db, collectors: list[Collector], **pipeline) -> BotRunner:
    runner = BotRunner(loaded, db, echo=lambda _line: None)
    runner.pipeline.close()
    runner.pipeline = Pipeline(loaded, db, collectors=collectors, **pipeline)
    return runner


def test_only_streaming_collectors_with_streaming_on_get_a_stream_thread(loaded, db):
    live = threading.Event()
    on = ScriptedStream("on", [deliver_until_stopped(Page(posts=[post(1)], cursor="c1"), live)])
    off = ScriptedStream("off", [], streams=False)
    duck = DuckStream()
    runner = runner_with(loaded, db, [on, off, duck], classifier=object())
    runner.start_streams()
    try:
        assert live.wait(10)
        assert [t.name for t in runner._streams] == ["stream:on"]
    finally:
        runner.stop_streams()
    assert on.returned.is_set() and runner._streams == []
    assert off.started_from == [] and not duck.streamed
    assert stored_cursor(db, "on") == "c1"


# --- the collect job ----------------------------------------------------------------------------


class OnePage(Collector):
    network = "mastodon"

    def __init__(self, posts: list[Post]):
        super().__init__(source("src", stream=False), TAGS)
        self.posts = posts

    def pages(self, cursor: str | None) -> Iterator[Page]:
        if cursor is None:
            yield Page(posts=self.posts, cursor="1")


def collected(runner: BotRunner, name: str) -> float | None:
    return runner.metrics.registry.get_sample_value(
        f"doctoctoc_{name}_total", {"network": "mastodon", "source": "src"}
    )


def test_collect_one_stores_classifies_counts_and_wakes_delivery(loaded, db):
    clock = FakeClock(T0)
    said: list[str] = []
    texts = [
        "Patient de 58 ans, douleur thoracique depuis 40 min, sus-décalage ST ? #DocTocToc",
        "Nourrisson de 5 semaines, fièvre à 38,6 °C depuis ce matin, on fait quoi ? #DocTocToc",
    ]
    collector = OnePage([post(1, texts[0]), post(2, texts[1])])
    runner = runner_with(loaded, db, [collector], clock=clock, sleep=clock.sleep)
    runner.echo = said.append
    runner.schedule()
    job = runner.scheduler.get_job("deliver:outbox")
    job.modify(next_run_time=datetime(2099, 1, 1, tzinfo=UTC))

    runner.collect_one(collector)

    assert said == ["src: 2 new posts"]
    assert collected(runner, "posts_collected") == 2
    assert runner.metrics.registry.get_sample_value("doctoctoc_posts_classified_total") == 2
    # The alerts go out now: the delivery job is due, not at its next interval.
    assert runner.scheduler.get_job("deliver:outbox").next_run_time < datetime(
        2099, 1, 1, tzinfo=UTC
    )
    runner.collect_one(collector)  # nothing new: nothing said, nothing counted twice
    assert said == ["src: 2 new posts"] and collected(runner, "posts_collected") == 2
    runner.pipeline.close()


def test_collect_one_logs_a_failing_cycle_and_keeps_the_scheduler_running(loaded, db, caplog):
    collector = OnePage([post(1)])
    runner = runner_with(loaded, db, [collector], classifier=object())  # cannot classify
    with caplog.at_level(logging.ERROR, logger="bot.scheduler"):
        runner.collect_one(collector)  # must not raise
    [record] = [r for r in caplog.records if r.name == "bot.scheduler"]
    assert record.getMessage() == "cycle for src failed" and record.exc_info is not None
    assert collected(runner, "posts_collected") == 1  # stored and counted before it failed
    assert stored_cursor(db, "src") == "1"
    runner.pipeline.close()
