"""Streaming the hashtag timelines of a Mastodon source, with polling as the safety net.

One `stream_hashtag` connection (server-sent events) per hashtag; a catch-up poll from the
cursor after every (re)connection finds what happened while no stream was listening.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from mastodon import StreamListener

from bot.collectors.base import Page
from bot.core.config_models import SourceConfig
from bot.core.errors import CollectorError

log = logging.getLogger(__name__)
MAX_RECONNECT_WAIT = 300.0


class _Source(Protocol):
    """What streaming needs of the Mastodon collector."""

    api: Any  # the Mastodon.py client
    hashtags: list[str]
    sleep: Callable[[float], None]
    source: SourceConfig

    @property
    def key(self) -> str: ...

    def pages(self, cursor: str | None) -> Iterator[Page]: ...

    def add_to_page(self, page: Page, item: Any, *, require_tag: bool) -> None: ...


class _Listener(StreamListener):
    """Forwards one hashtag stream's events to the collector's queue (from its own thread)."""

    def __init__(self, tag: str, events: queue.Queue[tuple[str, str, Any]]):
        super().__init__()
        self.tag, self.events = tag, events
        self.connected = threading.Event()
        self.received = False
        self.closed = False
        self.error: Exception | None = None
        self.response: Any = None

    def handle_stream(self, response: Any) -> None:
        self.response = response
        self.connected.set()
        super().handle_stream(response)

    def handle_heartbeat(self) -> None:
        self.received = True

    def on_update(self, status: Any) -> None:
        self.received = True
        self.events.put(("update", self.tag, status))

    def on_status_update(self, status: Any) -> None:
        self.received = True
        self.events.put(("update", self.tag, status))

    def on_delete(self, status_id: Any) -> None:
        self.received = True
        self.events.put(("delete", self.tag, str(status_id)))

    def on_unknown_event(self, name: str, unknown_event: Any = None) -> None:
        log.debug("ignored streaming event %s", name)

    def close(self) -> None:
        self.closed = True
        if self.response is not None:
            self.response.close()


def _open(collector: _Source, tag: str, events: queue.Queue, heartbeat: float) -> _Listener:
    listener = _Listener(tag, events)

    def run() -> None:
        try:
            collector.api.stream_hashtag(tag, listener, timeout=heartbeat)
        except Exception as exc:  # noqa: BLE001 - any failure ends this connection
            listener.error = exc
        finally:
            listener.connected.set()
            events.put(("ended", tag, listener))

    threading.Thread(target=run, name=f"mastodon-stream-{tag}", daemon=True).start()
    listener.connected.wait(collector.source.timeout.total_seconds())
    return listener


def stream_source(
    collector: _Source,
    cursor: str | None,
    on_page: Callable[[Page], None],
    *,
    stop: threading.Event,
    heartbeat: float = 60.0,
    reconnect_wait: float = 5.0,
) -> str | None:
    """Stream until `stop` is set; returns the last polled cursor.

    A connection that drops, or stays silent longer than `heartbeat` seconds (Mastodon sends a
    `:thump` about every 15 s, so silence means a dead link), is reopened after a backoff and
    followed by a catch-up poll. Streamed statuses and deletions come as pages without a
    cursor: only polling moves it, so a status seen twice is stored once and one missed while
    disconnected is found by the next catch-up.
    """
    events: queue.Queue[tuple[str, str, Any]] = queue.Queue()
    listeners: dict[str, _Listener] = {}
    pending = [tag.lstrip("#") for tag in collector.hashtags]
    failures = 0
    try:
        while not stop.is_set():
            if pending:
                if failures:
                    collector.sleep(min(reconnect_wait * 2 ** (failures - 1), MAX_RECONNECT_WAIT))
                for tag in pending:
                    listeners[tag] = _open(collector, tag, events, heartbeat)
                pending = []
                try:
                    for page in collector.pages(cursor):  # catch up, from the last cursor
                        on_page(page)
                        cursor = page.cursor or cursor
                except CollectorError as exc:
                    log.warning("%s: catch-up failed: %s", collector.key, exc)
                    failures += 1
                    for listener in listeners.values():
                        listener.close()
                    pending = list(listeners)
                    continue
            try:
                kind, tag, payload = events.get(timeout=0.05)
            except queue.Empty:
                continue
            if kind == "ended":
                if payload is listeners.get(tag) and not payload.closed and tag not in pending:
                    failures = 0 if payload.received else failures + 1
                    log.info(
                        "%s: #%s stream ended (%s); reconnecting", collector.key, tag, payload.error
                    )
                    pending.append(tag)
                continue
            on_page(_event_page(collector, kind, payload))
    finally:
        for listener in listeners.values():
            listener.close()
    return cursor


def _event_page(collector: _Source, kind: str, payload: Any) -> Page:
    """A streamed status or deletion as a page without a cursor (only polling moves it)."""
    page = Page(requests=0)
    if kind == "delete":
        page.deleted.append(payload)
    else:
        collector.add_to_page(page, payload, require_tag=True)
    return page
