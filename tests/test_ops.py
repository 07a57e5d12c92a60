"""Issue 12, health and metrics: `/healthz` and Prometheus `/metrics` after a failing source."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import timedelta

from bot.collectors.base import Collector, Page
from bot.core.config import load_config
from bot.core.config_models import SourceConfig
from bot.core.errors import CollectorError
from bot.pipeline import Pipeline
from bot.scheduler import BotRunner
from tests.conftest import FakeClock


class Down(Collector):
    network = "mastodon"

    def __init__(self):
        super().__init__(
            SourceConfig(
                network="mastodon", url="https://down.example", name="down",
                unhealthy_after=timedelta(minutes=30),
            ),
            ["DocTocToc"],
        )  # fmt: skip

    def pages(self, cursor: str | None) -> Iterator[Page]:
        raise CollectorError("HTTP 502 from https://down.example")


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_healthz_and_metrics_after_a_failing_source(tmp_path, db):
    path = tmp_path / "config.yaml"
    path.write_text(
        f"version: 1\nhashtags: [DocTocToc]\nchannels:\n  outbox: {{dir: {tmp_path}/out}}\n"
        "monitoring: {port: 0}\n",
        encoding="utf-8",
    )
    loaded = load_config(path, env={})
    clock = FakeClock()
    runner = BotRunner(loaded, db, echo=lambda _line: None)
    runner.pipeline.close()
    down = Down()
    runner.pipeline = Pipeline(
        loaded, db, classifier=object(), collectors=[down], clock=clock, sleep=clock.sleep
    )
    ops = runner.start_ops()
    assert ops is not None
    base = f"http://127.0.0.1:{ops.port}"
    try:
        runner.collect_one(down)
        status, body = get(f"{base}/healthz")
        assert status == 200 and body.strip() == "ok"  # failing, but not for long yet
        clock.advance(minutes=31)
        runner.collect_one(down)
        status, body = get(f"{base}/healthz")
        assert status == 503 and "source down unhealthy" in body
        status, metrics = get(f"{base}/metrics")
        assert status == 200
        assert 'doctoctoc_source_failures_total{network="mastodon",source="down"} 2.0' in metrics
        assert 'doctoctoc_source_healthy{source="down"} 0.0' in metrics
        assert "doctoctoc_delivery_queue_depth" in metrics
        assert get(f"{base}/other")[0] == 404
    finally:
        ops.stop()
