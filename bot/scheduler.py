"""Long-running mode: APScheduler jobs per source, a delivery job, and config reloads.

A bad edit of config.yaml is logged with its clear error and the bot keeps running on
the last good config.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from apscheduler.schedulers.blocking import BlockingScheduler

from .config import LoadedConfig, load_config
from .errors import ConfigError
from .pipeline import Pipeline
from .preflight import preflight
from .storage.db import Database

log = logging.getLogger(__name__)
DELIVERY_EVERY_S = 15  # streamed posts are classified, routed and alerted within this
STREAM_RESTART_S = 30
CONFIG_CHECK_EVERY_S = 30


class BotRunner:
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
        self.lock = threading.Lock()  # one stage at a time in this process
        self.pipeline = Pipeline(loaded, db, classifier=classifier)
        self.scheduler = BlockingScheduler(
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 300}
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
        self.scheduler.add_job(self.deliver, "interval", seconds=DELIVERY_EVERY_S, id="deliver")
        self.start_streams()
        self.scheduler.add_job(
            self.reload_config, "interval", seconds=CONFIG_CHECK_EVERY_S, id="config"
        )

    def collect_one(self, collector) -> None:
        with self.lock:
            try:
                summary_runs = self.pipeline.collect([collector])
                self.pipeline.classify_pending()
                self.pipeline.route()
                flushed = self.pipeline.deliver()  # alerts go out in the cycle that collected them
                new = sum(len(r.new) for r in summary_runs)
                if new or flushed.messages:
                    self.echo(f"{collector.key}: {new} new posts; {flushed.messages} messages sent")
            except Exception:  # noqa: BLE001 - the scheduler must keep running
                log.exception("cycle for %s failed", collector.key)

    def start_streams(self) -> None:
        """One thread per streaming source (Bluesky firehose), restarted after failures."""
        self.stop_streams()
        self._stop_streams = threading.Event()
        for collector in self.pipeline.collectors:
            if getattr(collector, "stream_url", None) and hasattr(collector, "stream"):
                thread = threading.Thread(
                    target=self._stream_forever,
                    args=(collector, self._stop_streams),
                    name=f"stream:{collector.key}",
                    daemon=True,
                )
                thread.start()
                self._streams.append(thread)

    def stop_streams(self) -> None:
        self._stop_streams.set()
        for thread in self._streams:
            thread.join(timeout=5)
        self._streams = []

    def _stream_forever(self, collector, stop: threading.Event) -> None:
        from .collect import SourceRun, save_page
        from .storage import cursors

        while not stop.is_set():
            run = SourceRun(source=collector.key)
            try:
                with self.db.session() as session:
                    cursor = cursors.get_cursor(session, collector.key)
                collector.stream(
                    lambda page, run=run: save_page(
                        self.db, collector.key, page, run, network=collector.network
                    ),
                    stop,
                    cursor,
                )
            except Exception as exc:  # noqa: BLE001 - the stream restarts, the bot keeps running
                log.exception(
                    "stream of %s failed; restarting in %ss", collector.key, STREAM_RESTART_S
                )
                with self.db.session() as session:
                    cursors.record_failure(session, collector.key, f"stream: {exc!r}")
                stop.wait(STREAM_RESTART_S)

    def deliver(self) -> None:
        with self.lock:
            try:
                self.pipeline.classify_pending()
                self.pipeline.route()
                result = self.pipeline.deliver()
                if result.messages:
                    self.echo(f"{result.messages} messages sent")
            except Exception:  # noqa: BLE001
                log.exception("delivery job failed")

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
        with self.lock:
            self.stop_streams()
            self.pipeline.close()
            self.loaded = loaded
            self.pipeline = pipeline
            for line in loaded.report():
                self.echo(line)
            self.schedule()
        self.echo("config reloaded")

    def run(self) -> None:
        self.schedule()
        try:
            self.scheduler.start()
        except (KeyboardInterrupt, SystemExit):
            pass
        finally:
            self.stop_streams()
            self.pipeline.close()
