"""`/healthz` and Prometheus `/metrics` over HTTP for a long-running bot (README: Operator).

No post text, token or address is ever served.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from bot.storage import cursors
from bot.storage.db import Database
from bot.storage.health import oldest_due_by_channel, pending_by_channel

log = logging.getLogger(__name__)


class Metrics:
    """Counters of this process, and gauges read from the database at each scrape."""

    def __init__(self, health: Callable[[], list[cursors.SourceHealth]], db: Database, clock):
        self.registry = CollectorRegistry()
        self.collected = Counter(
            "doctoctoc_posts_collected",
            "New posts stored, per network and source.",
            ["network", "source"],
            registry=self.registry,
        )
        self.source_failures = Counter(
            "doctoctoc_source_failures",
            "Collection cycles that failed, per source.",
            ["network", "source"],
            registry=self.registry,
        )
        self.classified = Counter(
            "doctoctoc_posts_classified", "Posts classified.", registry=self.registry
        )
        self.routed = Counter(
            "doctoctoc_requests_routed", "Requests routed to subscribers.", registry=self.registry
        )
        self.delivered = Counter(
            "doctoctoc_messages_delivered",
            "Messages (alerts, digests) sent, per channel.",
            ["channel"],
            registry=self.registry,
        )
        self.items_failed = Counter(
            "doctoctoc_deliveries_failed",
            "Deliveries that failed for good, per channel.",
            ["channel"],
            registry=self.registry,
        )
        self.items_retrying = Counter(
            "doctoctoc_deliveries_retried",
            "Deliveries that failed and will be retried, per channel.",
            ["channel"],
            registry=self.registry,
        )
        self.registry.register(_DatabaseGauges(health, db, clock))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _DatabaseGauges:
    def __init__(self, health, db: Database, clock):
        self.health, self.db, self.clock = health, db, clock

    def collect(self) -> Any:
        now = self.clock()
        depth = GaugeMetricFamily(
            "doctoctoc_delivery_queue_depth", "Deliveries pending, per channel.", labels=["channel"]
        )
        oldest = GaugeMetricFamily(
            "doctoctoc_delivery_oldest_due_seconds",
            "How long the oldest due pending delivery has waited, per channel.",
            labels=["channel"],
        )
        lag = GaugeMetricFamily(
            "doctoctoc_collection_lag_seconds",
            "Time since each source's last successful collection.",
            labels=["source"],
        )
        healthy = GaugeMetricFamily(
            "doctoctoc_source_healthy", "1 when the source is healthy.", labels=["source"]
        )
        try:
            with self.db.session() as session:
                for channel, count in pending_by_channel(session).items():
                    depth.add_metric([channel], count)
                for channel, due in oldest_due_by_channel(session, now).items():
                    oldest.add_metric([channel], max(0.0, (now - _aware(due)).total_seconds()))
            for h in self.health():
                if h.last_success_at is not None:
                    lag.add_metric(
                        [h.source], max(0.0, (now - _aware(h.last_success_at)).total_seconds())
                    )
                healthy.add_metric([h.source], 1.0 if h.healthy else 0.0)
        except Exception:  # noqa: BLE001 - /metrics still serves the counters
            log.exception("metrics: cannot read the database")
        yield from (depth, oldest, lag, healthy)


def _aware(value: datetime) -> datetime:
    from datetime import UTC

    return value if value.tzinfo else value.replace(tzinfo=UTC)


def health_problems(db: Database, health: Callable[[], list[cursors.SourceHealth]]) -> list[str]:
    """Why the bot is not healthy (empty: healthy)."""
    try:
        db.ping()
    except Exception as exc:  # noqa: BLE001
        return [f"database unreachable: {type(exc).__name__}"]
    try:
        sources = health()
    except Exception as exc:  # noqa: BLE001
        return [f"database unreadable: {type(exc).__name__}"]
    return [
        f"source {h.source} unhealthy: failing since {h.failing_since:%Y-%m-%dT%H:%M:%SZ}"
        for h in sources
        if not h.healthy
    ]


class OpsServer:
    """A small HTTP server in a daemon thread (host and port from `monitoring`)."""

    def __init__(self, host: str, port: int, problems: Callable[[], list[str]], metrics: Metrics):
        ops = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's hook name
                path = self.path.split("?", 1)[0]
                if path == "/healthz":
                    found = ops.problems()
                    body = ("\n".join(found) if found else "ok").encode() + b"\n"
                    self._send(503 if found else 200, "text/plain; charset=utf-8", body)
                elif path == "/metrics":
                    self._send(200, CONTENT_TYPE_LATEST, ops.metrics.render())
                else:
                    self._send(404, "text/plain; charset=utf-8", b"not found\n")

            def _send(self, code: int, content_type: str, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: Any) -> None:  # scrapes are not worth a log line
                pass

        self.problems, self.metrics = problems, metrics
        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="ops", daemon=True)

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def start(self) -> OpsServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
