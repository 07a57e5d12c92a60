"""HTTP plumbing of the fake Mastodon server: injected faults, the request log, SSE streams."""

from __future__ import annotations

import queue
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any


@dataclass
class Fault:
    """Answer matching requests (path prefix) `times` times with this instead of the normal answer.

    `status=None` serves the normal answer (after `delay`); `bare` drops the rate-limit headers.
    """

    path: str
    status: int | None = 500
    times: int = 1
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    after: int = 0
    body: bytes | None = None
    bare: bool = False


@dataclass
class Request:
    method: str
    path: str
    params: dict[str, str]


@dataclass
class Stream:
    """One open streaming connection; a stalled stream sends nothing, not even heartbeats."""

    tag: str
    events: queue.Queue[str | None] = field(default_factory=queue.Queue)
    stalled: bool = False


class Handler(BaseHTTPRequestHandler):
    fake: Any  # the FakeMastodon, bound by FakeMastodon.start()
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # no 40 ms delayed-ACK stalls between headers and body

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self.path.startswith("/api/v1/streaming/") and not self.fake.has_fault(self.path):
            self._stream()
        else:
            self._answer("GET")

    def _stream(self) -> None:
        self.close_connection = True
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()

        def write(data: bytes) -> None:
            self.wfile.write(data)
            self.wfile.flush()

        self.fake.serve_stream(self.path, write)

    def do_POST(self) -> None:  # noqa: N802
        self._answer("POST")

    def _answer(self, method: str) -> None:
        status, headers, body = self.fake.handle(method, self.path)
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
        except OSError:  # the client gave up (timeout): nothing to answer
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Quiet."""
