"""One cycle: collect -> store -> classify -> route -> deliver, each stage testable alone."""

from __future__ import annotations

import gc
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path

from bot.collect import SourceRun, run_source
from bot.collectors import build_collector
from bot.collectors.base import Collector, utc_now
from bot.core.config import LoadedConfig
from bot.core.errors import DocTocTocError
from bot.storage import classifications, cursors
from bot.storage.db import Database
from bot.storage.locks import SourceLocks, stage_lock
from digests.channels import Channel, build_channels
from digests.delivery import FlushResult, flush
from digests.routing import (
    RouteResult,
    escalate,
    release_student_items,
    route_posts,
    sync_subscribers,
)

log = logging.getLogger(__name__)
CLASSIFY_BATCH = 500


class _BulkGc:
    """Routing and delivery make 100,000s of objects at national scale: the cyclic garbage
    collector would run thousands of times, each full run scanning also everything alive
    before (the config's 10,000 subscribers, modules). During such a step, those are frozen
    (gc.freeze: still freed by their reference counts) and young objects are collected every
    20,000 allocations instead of 700. Steps may overlap (scheduler threads): the first one
    in sets this up, the last one out restores the collector as it was."""

    YOUNG = 20_000

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.thresholds = gc.get_threshold()

    @contextmanager
    def step(self) -> Iterator[None]:
        with self.lock:
            self.running += 1
            if self.running == 1:
                self.thresholds = gc.get_threshold()
                gc.freeze()
                gc.set_threshold(self.YOUNG, *self.thresholds[1:])
        try:
            yield
        finally:
            with self.lock:
                self.running -= 1
                if self.running == 0:
                    gc.set_threshold(*self.thresholds)
                    gc.unfreeze()


_bulk_gc = _BulkGc()


def delivery_workers(loaded: LoadedConfig) -> int:
    """delivery.workers: "auto" is one process per CPU core, at most 4."""
    workers = loaded.config.delivery.workers
    return min(4, os.cpu_count() or 1) if workers == "auto" else workers


@dataclass
class CycleSummary:
    new_posts: int = 0
    requests: int = 0
    urgent: int = 0
    sources_failed: list[str] = field(default_factory=list)
    source_errors: dict[str, str] = field(default_factory=dict)
    flushed: FlushResult = field(default_factory=FlushResult)
    outbox_dir: str | None = None

    def line(self) -> str:
        """The one-line human summary that ends each cycle."""
        text = f"{self.new_posts} new posts, {self.requests} requests ({self.urgent} urgent)"
        by_channel: dict[str, list[int]] = {}
        for _sub, channel, kind, _n in self.flushed.sent:
            counts = by_channel.setdefault(channel, [0, 0])
            counts[0] += 1
            counts[1] += kind == "alert"
        parts = []
        for channel, (n, alerts) in sorted(by_channel.items()):
            noun = "digest" if n == 1 else "digests"
            where = (
                f"written to {self.outbox_dir}/" if channel == "outbox" else f"sent by {channel}"
            )
            extra = f" ({alerts} alert{'s' if alerts != 1 else ''})" if alerts else ""
            parts.append(f"{n} {noun} {where}{extra}")
        text += "; " + (", ".join(parts) if parts else "no digest due")
        if self.flushed.retrying:
            text += f"; {self.flushed.retrying} deliveries will be retried"
        if self.sources_failed:
            text += f"; failing: {', '.join(self.sources_failed)}"
        return text

    def problems(self) -> list[str]:
        """What went wrong in this cycle, one line each (`run --once` then exits non-zero)."""
        out = [
            f"source {name} failed: {self.source_errors.get(name, 'see the log')}"
            for name in self.sources_failed
        ]
        if self.flushed.failed:
            out.append(f"{self.flushed.failed} deliveries failed for good (see `doctoctoc status`)")
        return out


def _reads_this_month(db: Database, source: str) -> int:
    with db.session() as session:
        return cursors.reads_this_month(session, source)


class Pipeline:
    def __init__(
        self,
        loaded: LoadedConfig,
        db: Database,
        *,
        classifier=None,
        channels: dict[str, Channel] | None = None,
        collectors: list[Collector] | None = None,
        clock: Callable[[], datetime] = utc_now,
        sleep: Callable[[float], None] = time.sleep,
        base_dir: Path | None = None,
    ):
        self.loaded = loaded
        self.db = db
        self.clock = clock
        self.base_dir = base_dir or loaded.path.resolve().parent
        self._classifier = classifier
        self.channels = (
            channels if channels is not None else build_channels(loaded, base_dir=Path.cwd())
        )
        self.collectors = collectors if collectors is not None else self._build_collectors(sleep)
        self.source_locks = SourceLocks(db.engine)

    def _build_collectors(self, sleep: Callable[[float], None]) -> list[Collector]:
        out = []
        for i, source in enumerate(self.loaded.config.sources):
            if not self.loaded.source_enabled(i):
                continue
            kwargs = {"sleep": sleep, "clock": self.clock}
            if source.network == "replay":
                kwargs["base_dir"] = self.base_dir
            if source.network == "x":
                kwargs["reads_used"] = partial(_reads_this_month, self.db, source.key)
            try:
                out.append(build_collector(source, self.loaded.config.hashtags, **kwargs))
            except DocTocTocError as exc:
                self.loaded.disabled[f"sources[{i}]"] = str(exc)
                log.warning("disabled: sources[%d]: %s", i, exc)
        return out

    @property
    def classifier(self):
        if self._classifier is None:
            from classifiers import load_classifier

            cfg = self.loaded.config.classifier
            self._classifier = load_classifier(cfg.model)
            self._classifier.uncertain_below = cfg.uncertain_below
        return self._classifier

    # --- stages --------------------------------------------------------------------------

    def collect(self, collectors: list[Collector] | None = None) -> list[SourceRun]:
        """Poll each source this process holds (PostgreSQL: one process per source)."""
        runs = []
        for collector in collectors if collectors is not None else self.collectors:
            if not self.source_locks.hold(collector.key):
                log.debug("%s is polled by another process", collector.key)
                continue
            runs.append(run_source(self.db, collector, now=self.clock()))
        return runs

    def classify_pending(self) -> int:
        """Classify stored top-level posts that have no classification yet."""
        done = 0
        while True:
            with self.db.session() as session:
                # Several processes (PostgreSQL): one classifies at a time, and reads what is
                # still unclassified only once it holds the lock, so no post is done twice.
                stage_lock(session, "classify")
                rows = classifications.unclassified_posts(session, CLASSIFY_BATCH)
                if not rows:
                    return done
                results = self.classifier.classify([r.text for r in rows], [r.lang for r in rows])
                now = self.clock()
                for row, c in zip(rows, results, strict=True):
                    classifications.add_classification(
                        session, row, c, model_version=self.classifier.version, now=now
                    )
                done += len(rows)

    def route(self) -> RouteResult:
        now = self.clock()
        with _bulk_gc.step(), self.db.session() as session:
            stage_lock(session, "route")  # one process routes at a time (PostgreSQL)
            sync_subscribers(session, self.loaded, now)
            ids = classifications.unrouted_posts(session)
            result = route_posts(session, self.loaded, ids, now)
            held = set(result.held)
            classifications.mark_routed(session, [i for i in ids if i not in held], now)
            escalate(session, self.loaded, now)
            release_student_items(session, now, self.loaded)
        return result

    def deliver(self, *, force: bool = False, channel: str | None = None) -> FlushResult:
        """Send what is due (only on `channel` when given: each channel has its own job)."""
        channels = self.channels if channel is None else {channel: self.channels[channel]}
        with _bulk_gc.step():
            return flush(
                self.db, self.loaded, channels, self.clock(), force=force, only_channel=channel,
                workers=delivery_workers(self.loaded),
            )  # fmt: skip

    def cycle(self, *, force_flush: bool = False, collect: bool = True) -> CycleSummary:
        summary = CycleSummary(outbox_dir=self._outbox_dir())
        if collect:
            for run in self.collect():
                summary.new_posts += len(run.new)
                if run.error:
                    summary.sources_failed.append(run.source)
                    summary.source_errors[run.source] = run.error
        self.classify_pending()
        routed = self.route()
        summary.requests, summary.urgent = routed.requests, routed.urgent
        summary.flushed = self.deliver(force=force_flush)
        return summary

    def _outbox_dir(self) -> str | None:
        outbox = self.loaded.config.channels.outbox
        return outbox.dir.rstrip("/") if outbox else None

    def close(self) -> None:
        self.source_locks.release_all()
        for collector in self.collectors:
            collector.close()
        for channel in self.channels.values():
            channel.close()
