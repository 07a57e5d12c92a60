"""Long-running mode: a job per source and per channel, a thread per stream, config reloads."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.blocking import BlockingScheduler

from bot.collectors.base import StreamingCollector
from bot.core.config import LoadedConfig, load_config
from bot.core.errors import ConfigError
from bot.ops import Metrics, OpsServer, health_problems
from bot.pipeline import Pipeline
from bot.preflight import preflight
from bot.storage.db import Database

log = logging.getLogger(__name__)
DELIVERY_EVERY_S = 15  # streamed posts are classified, routed and alerted within this
STREAM_RESTART_S = 30
CONFIG_CHECK_EVERY_S = 30


class StreamSupervisor:
    """Runs one streaming source until `stop` is set, restarting it after every failure.

    Each (re)start streams from the cursor stored in the database; a failure is logged and
    recorded in the source's health, and the restart waits `restart_after` seconds (`wait`,
    by default `stop.wait`, so that stopping never waits for the restart).
    """

    def __init__(
        self,
        db: Database,
        collector: StreamingCollector,
        stop: threading.Event,
        *,
        restart_after: float = STREAM_RESTART_S,
        wait: Callable[[float], object] | None = None,
    ):
        self.db, self.collector, self.stop = db, collector, stop
        self.restart_after = restart_after
        self.wait = wait or stop.wait

    def run(self) -> None:
        from bot.collect import SourceRun, save_page
        from bot.storage import cursors

        collector = self.collector
        while not self.stop.is_set():
            run = SourceRun(source=collector.key)
            try:
                with self.db.session() as session:
                    cursor = cursors.get_cursor(session, collector.key)
                collector.stream(
                    lambda page, run=run: save_page(
                        self.db, collector.key, page, run, network=collector.network
                    ),
                    self.stop,
                    cursor,
                )
            except Exception as exc:  # noqa: BLE001 - the stream restarts, the bot keeps running
                log.exception(
                    "stream of %s failed; restarting in %ss", collector.key, self.restart_after
                )
                with self.db.session() as session:
                    cursors.record_failure(session, collector.key, f"stream: {exc!r}")
                self.wait(self.restart_after)


class BotRunner:
    """The long-running bot.

    No lock spans the jobs: each source is polled by its own job, each channel delivers in its
    own job, so a source or an SMTP server that hangs delays only its own work. Classify and
    route (short, local) run one at a time in this process. A bad edit of config.yaml is
    logged with its clear error and the bot keeps running on the last good config.
    """

    def __init__(
        self,
        loaded: LoadedConfig,
        db: Database,
        *,
        echo: Callable[[str], None] = print,
        classifier=None,
    ):
        self.loaded = loaded
        self.db = db
        self.echo = echo
        self.stage_lock = threading.Lock()  # classify + route: one at a time in this process
        self._users = threading.Condition()  # jobs using a pipeline; a replaced one closes after
        self._in_use: dict[int, int] = {}
        self._retired: dict[int, Pipeline] = {}
        self.pipeline = Pipeline(loaded, db, classifier=classifier)
        self.metrics = Metrics(self.source_health, db, lambda: self.pipeline.clock())
        self.ops: OpsServer | None = None
        self.scheduler = BlockingScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=32)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 300},
        )
        self._config_mtime = self._mtime()
        self._stop_streams = threading.Event()
        self._streams: list[threading.Thread] = []

    def _mtime(self) -> float:
        try:
            return Path(self.loaded.path).stat().st_mtime
        except OSError:
            return 0.0

    def schedule(self) -> None:
        self.scheduler.remove_all_jobs()
        for collector in self.pipeline.collectors:
            seconds = max(10, int(collector.source.poll_every.total_seconds()))
            self.scheduler.add_job(
                self.collect_one,
                "interval",
                seconds=seconds,
                args=[collector],
                id=f"collect:{collector.key}",
                next_run_time=datetime.now(UTC),
            )
        for name in self.pipeline.channels:
            self.scheduler.add_job(
                self.deliver_channel,
                "interval",
                seconds=DELIVERY_EVERY_S,
                args=[name],
                id=f"deliver:{name}",
            )
        self.start_streams()
        self.scheduler.add_job(
            self.reload_config, "interval", seconds=CONFIG_CHECK_EVERY_S, id="config"
        )
        self.scheduler.add_job(self.purge, "cron", hour=3, minute=17, id="purge")

    def purge(self) -> None:
        """Nightly retention purge (see bot/retention.py)."""
        from bot.retention import purge

        with self._using() as pipeline:
            try:
                log.info(purge(self.db, pipeline.loaded, pipeline.clock()).line())
            except Exception:  # noqa: BLE001
                log.exception("retention purge failed")

    @contextmanager
    def _using(self) -> Iterator[Pipeline]:
        """The current pipeline, kept open until this job is done even if a reload replaces it."""
        with self._users:
            pipeline = self.pipeline
            self._in_use[id(pipeline)] = self._in_use.get(id(pipeline), 0) + 1
        try:
            yield pipeline
        finally:
            with self._users:
                self._in_use[id(pipeline)] -= 1
                if not self._in_use[id(pipeline)]:
                    del self._in_use[id(pipeline)]
                    retired = self._retired.pop(id(pipeline), None)
                    if retired is not None:
                        retired.close()

    def _retire(self, pipeline: Pipeline) -> None:
        # Its sources go to the new pipeline now, even if one of its jobs (a hanging SMTP
        # send) keeps it open a while longer.
        pipeline.source_locks.release_all()
        with self._users:
            if self._in_use.get(id(pipeline)):
                self._retired[id(pipeline)] = pipeline  # closed by its last job
                return
        pipeline.close()

    def _classify_and_route(self, pipeline: Pipeline) -> None:
        with self.stage_lock:
            self.metrics.classified.inc(pipeline.classify_pending())
            self.metrics.routed.inc(pipeline.route().requests)

    def source_health(self) -> list:
        from bot.storage import cursors

        pipeline = self.pipeline
        limits = {c.key: c.source.unhealthy_after for c in pipeline.collectors}
        with self.db.session() as session:
            return cursors.health(session, limits, pipeline.clock())

    def start_ops(self) -> OpsServer | None:
        """Serve /healthz and /metrics when `monitoring.port` is set."""
        cfg = self.loaded.config.monitoring
        if cfg.port is None or self.ops is not None:
            return self.ops
        problems = partial(health_problems, self.db, self.source_health)
        self.ops = OpsServer(cfg.host, cfg.port, problems, self.metrics).start()
        log.info("health and metrics on http://%s:%d/", cfg.host, self.ops.port)
        return self.ops

    def collect_one(self, collector) -> None:
        with self._using() as pipeline:
            try:
                runs = pipeline.collect([collector])
                for run in runs:
                    labels = (collector.network, collector.key)
                    self.metrics.collected.labels(*labels).inc(len(run.new))
                    if run.error:
                        self.metrics.source_failures.labels(*labels).inc()
                self._classify_and_route(pipeline)
                new = sum(len(r.new) for r in runs)
                if new:
                    self.echo(f"{collector.key}: {new} new posts")
                    self.wake_delivery()  # alerts go out now, each channel in its own job
            except Exception:  # noqa: BLE001 - the scheduler must keep running
                log.exception("cycle for %s failed", collector.key)

    def wake_delivery(self) -> None:
        """Run every channel's delivery job now (a job still busy runs again when done)."""
        now = datetime.now(UTC)
        for name in list(self.pipeline.channels):
            with suppress(JobLookupError):
                self.scheduler.modify_job(f"deliver:{name}", next_run_time=now)

    def deliver_channel(self, name: str) -> None:
        """Send what is due on one channel; a slow channel delays only its own messages."""
        with self._using() as pipeline:
            if name not in pipeline.channels:
                return
            try:
                self._classify_and_route(pipeline)  # streamed posts, escalations
                result = pipeline.deliver(channel=name)
                self.metrics.delivered.labels(name).inc(result.messages)
                self.metrics.items_failed.labels(name).inc(result.failed)
                self.metrics.items_retrying.labels(name).inc(result.retrying)
                if result.messages:
                    self.echo(f"{result.messages} messages sent by {name}")
            except Exception:  # noqa: BLE001
                log.exception("delivery by %s failed", name)

    def deliver(self) -> None:
        """Every channel, one after the other (the scheduler runs them side by side)."""
        for name in list(self.pipeline.channels):
            self.deliver_channel(name)

    def start_streams(self) -> None:
        """One thread per streaming source, restarted after failures (StreamSupervisor)."""
        self.stop_streams()
        self._stop_streams = threading.Event()
        for collector in self.pipeline.collectors:
            if isinstance(collector, StreamingCollector) and collector.streams:
                supervisor = StreamSupervisor(self.db, collector, self._stop_streams)
                thread = threading.Thread(
                    target=supervisor.run, name=f"stream:{collector.key}", daemon=True
                )
                thread.start()
                self._streams.append(thread)

    def stop_streams(self) -> None:
        self._stop_streams.set()
        for thread in self._streams:
            thread.join(timeout=5)
        self._streams = []

    def reload_config(self) -> None:
        mtime = self._mtime()
        if mtime == self._config_mtime:
            return
        self._config_mtime = mtime
        try:
            loaded = load_config(self.loaded.path)
            classifier = preflight(loaded)
            pipeline = Pipeline(loaded, self.db, classifier=classifier)
        except ConfigError as exc:
            log.error(
                "config.yaml changed but is invalid; still running on the previous config:\n%s", exc
            )
            self.echo("config not reloaded (invalid):\n" + str(exc))
            return
        if loaded.config.database.url != self.loaded.config.database.url:
            log.error("database.url changed: restart the bot to use the new database")
        self.stop_streams()
        with self._users:
            old, self.pipeline, self.loaded = self.pipeline, pipeline, loaded
        self._retire(old)
        for line in loaded.report():
            self.echo(line)
        self.schedule()
        self.echo("config reloaded")

    def run(self) -> None:
        self.start_ops()
        self.schedule()
        try:
            self.scheduler.start()
        except (KeyboardInterrupt, SystemExit):
            pass
        finally:
            self.stop_streams()
            self.pipeline.close()
            if self.ops is not None:
                self.ops.stop()
