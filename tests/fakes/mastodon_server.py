"""A stateful fake Mastodon server: real HTTP on 127.0.0.1, for tests and benchmarks.

Serves the endpoints the Mastodon collector uses, with `Status` entities shaped as in the
Mastodon API documentation (docs.joinmastodon.org/entities/Status):

- `GET /api/v1/timelines/tag/:hashtag` newest first, honouring max_id / since_id / min_id /
  limit (default 20, at most 40) with `Link` headers (rel="next" max_id, rel="prev" min_id);
- `GET /api/v1/statuses/:id` (404 once deleted) and `GET /api/v1/statuses/:id/context`;
- `GET /api/v2/instance/` answers 404 (the collector does not ask for it; Mastodon.py would then treat timelines as available);
- `GET /api/v1/streaming/hashtag?tag=` server-sent events (`update`, `status.update`,
  `delete`) with a `:thump` heartbeat; tests push events, stall or drop the streams.

Every answer carries X-RateLimit-Limit / -Remaining / -Reset for a fixed 5-minute window,
and over the limit the server answers 429 like Mastodon. Tests add, edit, boost and delete
statuses, inject faults (N times a status code, with or without rate-limit headers, slow
answers, bad bodies), serve malformed items, and count requests.

The tag timeline is deliberately loose (a status is listed when its content contains
`#tag` as a substring, so `#DocTocTocs` shows up under `doctoctoc`): the collector's own
exact-tag filter is what decides.
"""

from __future__ import annotations

import bisect
import html
import json
import queue
import re
import sys
import threading
import time
from datetime import UTC, datetime
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes import mastodon_entities as entities
from tests.fakes.mastodon_entities import TAG, fold, iso_ms
from tests.fakes.mastodon_http import Fault, Handler, Request, Stream

__all__ = ["FakeMastodon", "Fault", "Request", "Stream", "iso_ms"]


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], OSError):  # a client hanging up is no error
            super().handle_error(request, client_address)


class FakeMastodon:
    """One fake instance. Use as a context manager, or call start() / close()."""

    def __init__(
        self,
        domain: str = "med.example",
        *,
        rate_limit: int = 300,
        rate_window: float = 300.0,
        id_salt: int = 0,
    ):
        self.domain = domain
        self.rate_limit = rate_limit
        self.rate_window = rate_window
        self.id_salt = id_salt
        self.entries: dict[int, Any] = {}  # id -> status dict, or a malformed item
        self.raw_tags: dict[int, str] = {}  # malformed items: the timeline they appear in
        self._order: list[int] = []  # every id, ascending
        self._match: dict[int, tuple[set[str], str]] = {}
        self.deleted: set[int] = set()
        self.faults: list[Fault] = []
        self.requests: list[Request] = []
        self.streams: list[Stream] = []
        self.heartbeat_every = 0.05
        self._seq = 0
        self._window: tuple[float, int] = (0.0, 0)
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._server: _Server | None = None

    # --- lifecycle ----------------------------------------------------------------------

    def start(self) -> FakeMastodon:
        handler = type("BoundHandler", (Handler,), {"fake": self})
        self._server = _Server(("127.0.0.1", 0), handler)
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> FakeMastodon:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the server first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # --- state ----------------------------------------------------------------------------

    def next_id(self, created_at: datetime) -> int:
        """Snowflake-like ids as Mastodon makes them: milliseconds << 16, plus a sequence."""
        with self._lock:
            self._seq += 1
            return (int(created_at.timestamp() * 1000) << 16) + self.id_salt + self._seq

    def add_status(
        self,
        text: str = "Question #DocTocToc",
        *,
        created_at: datetime,
        username: str = "alice",
        account_domain: str | None = None,
        display_name: str = "Dr Alice",
        tags: list[str] | None = None,
        uri: str | None = None,
        in_reply_to: str | None = None,
        media: list[tuple[str, str | None]] | None = None,
        language: str | None = "fr",
        spoiler_text: str = "",
        content: str | None = None,
    ) -> dict[str, Any]:
        """Add a status; `text` becomes Mastodon-style HTML unless `content` is given."""
        sid = self.next_id(created_at)
        parent = self.entries.get(int(in_reply_to)) if in_reply_to else None
        status = entities.status(
            sid,
            instance=self.domain,
            text=text,
            created_at=created_at,
            username=username,
            account_domain=account_domain,
            display_name=display_name,
            tag_names=tags,
            uri=uri,
            in_reply_to=in_reply_to,
            in_reply_to_account=parent["account"]["id"] if parent else None,
            media=media or [],
            language=language,
            spoiler_text=spoiler_text,
            content=content,
        )
        with self._lock:
            self._put(sid, status)
            if parent:
                parent["replies_count"] += 1
        return status

    def boost(
        self, original: dict[str, Any], *, created_at: datetime, username: str = "bob"
    ) -> dict[str, Any]:
        """A reblog: its own id and uri, empty content, the original under `reblog`."""
        sid = self.next_id(created_at)
        boost = dict(original)
        boost.update(
            id=str(sid),
            uri=f"https://{self.domain}/users/{username}/statuses/{sid}/activity",
            url=None,
            created_at=iso_ms(created_at),
            account=entities.account(username, None, username.title(), self.domain),
            content="",
            tags=[],
            media_attachments=[],
            reblog=original,
        )
        with self._lock:
            self._put(sid, boost)
        return boost

    def add_raw(self, item: Any, *, created_at: datetime, tag: str = "doctoctoc") -> int:
        """A malformed item served as-is in the `tag` timeline."""
        sid = self.next_id(created_at)
        with self._lock:
            self._put(sid, item)
            self.raw_tags[sid] = fold(tag)
        return sid

    def _put(self, sid: int, item: Any) -> None:
        self.entries[sid] = item
        bisect.insort(self._order, sid)

    def edit(self, sid: str, text: str, *, edited_at: datetime) -> None:
        with self._lock:
            self._match.clear()
            status = self.entries[int(sid)]
            status["content"] = entities.to_html(text, self.domain)
            status["edited_at"] = iso_ms(edited_at)
            status["tags"] = entities.tags(TAG.findall(text), self.domain)

    def delete(self, sid: str) -> None:
        with self._lock:
            self.deleted.add(int(sid))

    def fail(
        self, path: str = "/api/v1/timelines/", status: int | None = 500, **kwargs: Any
    ) -> Fault:
        fault = Fault(path=path, status=status, **kwargs)
        with self._lock:
            self.faults.append(fault)
        return fault

    def count(self, prefix: str = "/api/v1/timelines/") -> int:
        with self._lock:
            return sum(1 for r in self.requests if r.path.startswith(prefix))

    def timeline_requests(self) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.path.startswith("/api/v1/timelines/")]

    # --- streaming ----------------------------------------------------------------------------

    def push(self, event: str, payload: Any, *, tag: str = "doctoctoc") -> None:
        """Send an event (`update`, `status.update`, `delete`) to the open streams of `tag`."""
        data = payload if isinstance(payload, str) else json.dumps(payload)
        with self._lock:
            for stream in self.streams:
                if stream.tag == fold(tag):
                    stream.events.put(f"event: {event}\ndata: {data}\n\n")

    def stall_streams(self) -> None:
        with self._lock:
            for stream in self.streams:
                stream.stalled = True

    def drop_streams(self) -> None:
        with self._lock:
            for stream in self.streams:
                stream.events.put(None)

    def wait_for_streams(self, count: int, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if sum(not s.stalled for s in self.streams) >= count:
                    return True
            time.sleep(0.01)
        return False

    def serve_stream(self, target: str, write: Any) -> None:
        """Write server-sent events until the stream is dropped or the server stops."""
        params = {k: v[-1] for k, v in parse_qs(urlsplit(target).query).items()}
        stream = Stream(tag=fold(params.get("tag", "")))
        with self._lock:
            self.requests.append(Request("GET", urlsplit(target).path, params))
            self.streams.append(stream)
        try:
            while not self._stop.is_set():
                try:
                    item = stream.events.get(timeout=self.heartbeat_every)
                except queue.Empty:
                    item = ":thump\n"
                if item is None:
                    break
                if not stream.stalled:
                    write(item.encode())
        except OSError:
            pass  # the client went away
        finally:
            with self._lock:
                self.streams.remove(stream)

    # --- queries ---------------------------------------------------------------------------

    def _in_tag(self, sid: int, tag: str) -> bool:
        if sid in self.raw_tags:
            return self.raw_tags[sid] == tag
        if sid not in self._match:  # folded tag names and text, cached until an edit
            status = self.entries[sid].get("reblog") or self.entries[sid]
            text = html.unescape(re.sub(r"<[^>]+>", "", status.get("content") or ""))
            self._match[sid] = ({fold(t["name"]) for t in status.get("tags") or []}, fold(text))
        names, text = self._match[sid]
        return tag in names or f"#{tag}" in text

    def tag_timeline(self, tag: str, params: dict[str, str]) -> tuple[list[Any], list[int]]:
        """Newest first; with min_id, the `limit` statuses immediately newer than it."""
        tag = fold(tag)
        limit = max(1, min(int(params.get("limit") or 20), 40))
        low = max(int(params.get("since_id") or 0), int(params.get("min_id") or 0))
        high = int(params["max_id"]) if params.get("max_id") else None
        with self._lock:
            start = bisect.bisect_right(self._order, low)
            end = bisect.bisect_left(self._order, high) if high is not None else len(self._order)
            span = (
                self._order[start:end] if params.get("min_id") else reversed(self._order[start:end])
            )
            ids = []
            for sid in span:
                if sid not in self.deleted and self._in_tag(sid, tag):
                    ids.append(sid)
                    if len(ids) == limit:
                        break
            ids.sort(reverse=True)
            return [self.entries[i] for i in ids], ids

    def context(self, sid: int) -> dict[str, list[Any]]:
        with self._lock:
            live = {
                i: s
                for i, s in self.entries.items()
                if i not in self.deleted and isinstance(s, dict)
            }
            ancestors = []
            parent = live[sid].get("in_reply_to_id")
            while parent and int(parent) in live:
                ancestors.insert(0, live[int(parent)])
                parent = live[int(parent)].get("in_reply_to_id")
            below, frontier = [], {str(sid)}
            for i in sorted(live):
                if live[i].get("in_reply_to_id") in frontier:
                    below.append(live[i])
                    frontier.add(str(i))
            return {"ancestors": ancestors, "descendants": below}

    # --- HTTP ------------------------------------------------------------------------------

    def has_fault(self, target: str) -> bool:
        """Whether a fault with an error status waits for this path (without using it up)."""
        path = urlsplit(target).path
        with self._lock:
            return any(f.times > 0 and f.status and path.startswith(f.path) for f in self.faults)

    def _fault_for(self, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.times > 0 and path.startswith(fault.path):
                    if fault.after > 0:
                        fault.after -= 1
                        return None
                    fault.times -= 1
                    return fault
        return None

    def _rate_headers(self) -> tuple[dict[str, str], bool]:
        now = time.time()
        with self._lock:
            start, used = self._window
            if now >= start + self.rate_window:
                start, used = now - (now % self.rate_window), 0
            used += 1
            self._window = (start, used)
        reset = datetime.fromtimestamp(start + self.rate_window, UTC)
        headers = {
            "X-RateLimit-Limit": str(self.rate_limit),
            "X-RateLimit-Remaining": str(max(0, self.rate_limit - used)),
            "X-RateLimit-Reset": iso_ms(reset),
        }
        return headers, used > self.rate_limit

    def handle(self, method: str, target: str) -> tuple[int, dict[str, str], bytes]:
        parts = urlsplit(target)
        path = parts.path
        params = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        with self._lock:
            self.requests.append(Request(method, path, params))
        headers, over = self._rate_headers()
        fault = self._fault_for(path)
        if fault is not None:
            if fault.delay:
                self._stop.wait(fault.delay)
            if fault.bare:
                headers = {}
            headers.update(fault.headers)
            if fault.status is not None:
                body = (
                    fault.body
                    if fault.body is not None
                    else json.dumps({"error": "Injected"}).encode()
                )
                return fault.status, headers, body
            if fault.body is not None:
                return 200, headers, fault.body
        if over:
            return 429, headers, json.dumps({"error": "Too many requests"}).encode()
        status, extra, payload = self.route(method, path, params)
        headers.update(extra)
        return status, headers, json.dumps(payload).encode()

    def route(
        self, method: str, path: str, params: dict[str, str]
    ) -> tuple[int, dict[str, str], Any]:
        not_found = (404, {}, {"error": "Record not found"})
        if method != "GET":
            return 405, {}, {"error": "Method not allowed"}
        if match := re.fullmatch(r"/api/v1/timelines/tag/([^/]+)", path):
            items, ids = self.tag_timeline(match.group(1), params)
            extra = {}
            if ids:
                base = f"{self.url}{path}"
                extra["Link"] = (
                    f'<{base}?max_id={ids[-1]}>; rel="next", <{base}?min_id={ids[0]}>; rel="prev"'
                )
            return 200, extra, items
        if match := re.fullmatch(r"/api/v1/statuses/(\d+)(/context)?", path):
            sid = int(match.group(1))
            item = self.entries.get(sid)
            if sid in self.deleted or not isinstance(item, dict):
                return not_found
            return 200, {}, self.context(sid) if match.group(2) else item
        return not_found
