"""Local fake Bluesky: an XRPC HTTP server (AppView reads + createSession) and a firehose.

`FakeBluesky` is a real HTTP server on 127.0.0.1 (port 0, own thread). It serves
`com.atproto.server.createSession` (no didDoc, so the client stays on this server),
`app.bsky.feed.searchPosts` (newest `indexedAt` first, offset cursors, loose substring match
so the collector's own hashtag filter is exercised), `getPostThread`, `getPosts` and
`app.bsky.actor.getProfiles` (profiles added with `add_profile`; unknown actors are left out of
the answer; it answers without authentication too, like the public AppView), with request
counting and failure injection (`fail(nsid, status, headers=..., delay=...)`).
It also serves `com.atproto.identity.resolveHandle` and the chat DMs (`chat.bsky.convo.*`,
see `bluesky_chat.FakeChat`, reached as `api.chat`); `headers_log` keeps every request's headers.

`FakeFirehose` is a `websockets` server on 127.0.0.1 (port 0) running its own asyncio loop in a
thread, at `/xrpc/com.atproto.sync.subscribeRepos`. It replays the frames whose seq is above
the `cursor` query parameter, then sends new ones as they are added; `drop_after` makes it
cut a connection after some frames (abruptly, or with a clean close).
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from .bluesky_chat import FakeChat
from .bluesky_data import error_frame, profile_view

SUBSCRIBE = "/xrpc/com.atproto.sync.subscribeRepos"


def fake_jwt(did: str, lifetime: int = 7200) -> str:
    def b64(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    now = int(time.time())
    header = b64({"alg": "HS256", "typ": "at+jwt"})
    payload = b64({"scope": "com.atproto.appPass", "sub": did, "iat": now, "exp": now + lifetime})
    return f"{header}.{payload}.c2lnbmF0dXJl"


@dataclass
class Failure:
    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] | None = None
    delay: float = 0.0


class FakeBluesky:
    """In-memory AppView + PDS session endpoint over real HTTP."""

    def __init__(self, handle: str = "bot.example.test", password: str = "app-pass-1234"):
        self.handle, self.password = handle, password
        self.did = "did:plc:botbotbotbotbotbotbotbot"
        self.views: dict[str, dict[str, Any]] = {}  # uri -> PostView
        self.profiles: dict[str, dict[str, Any]] = {}  # did -> ProfileViewDetailed
        self.replies: dict[str, list[str]] = {}  # parent uri -> reply uris
        self.junk_items: list[Any] = []  # malformed items put first in search results
        self.failures: dict[str, list[Failure]] = {}
        self.requests: Counter[str] = Counter()
        self.log: list[tuple[str, dict[str, list[str]]]] = []
        self.headers_log: list[tuple[str, dict[str, str]]] = []  # (nsid, request headers)
        self.chat = FakeChat(self.did, self.handle)
        self._lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # -- data -----------------------------------------------------------------------------

    def add(self, view: dict[str, Any], reply_to: str | None = None) -> str:
        with self._lock:
            self.views[view["uri"]] = view
            if reply_to:
                self.replies.setdefault(reply_to, []).append(view["uri"])
        return view["uri"]

    def add_profile(self, did: str, handle: str | None = None, name: str | None = None) -> dict:
        view = profile_view(did, handle, name)
        with self._lock:
            self.profiles[did] = view
        return view

    def delete(self, uri: str) -> None:
        with self._lock:
            self.views.pop(uri, None)

    def fail(self, nsid: str, status: int = 500, *, times: int = 1, **kwargs: Any) -> None:
        """The next `times` calls to `nsid` answer `status` (after `delay` seconds)."""
        self.failures.setdefault(nsid, []).extend(Failure(status, **kwargs) for _ in range(times))

    # -- endpoints --------------------------------------------------------------------------

    def _search(self, q: dict[str, list[str]]) -> dict[str, Any]:
        term = q.get("q", [""])[0].lower()
        limit = min(int(q.get("limit", ["25"])[0]), 100)
        offset = int(q.get("cursor", ["0"])[0] or 0)
        with self._lock:
            hits = [v for v in self.views.values() if term in v["record"].get("text", "").lower()]
        hits.sort(key=lambda v: v["indexedAt"], reverse=True)
        items: list[Any] = hits[offset : offset + limit]
        if offset == 0:
            items = [*self.junk_items, *items]
        answer: dict[str, Any] = {"posts": items, "hitsTotal": len(hits)}
        if offset + limit < len(hits):
            answer["cursor"] = str(offset + limit)
        return answer

    def _profiles(self, q: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        actors = q.get("actors", [])
        if not actors:
            return 400, {
                "error": "InvalidRequest",
                "message": 'Error: Params must have the property "actors"',
            }
        if len(actors) > 25:
            return 400, {
                "error": "InvalidRequest",
                "message": "Error: actors must not have more than 25 elements",
            }
        with self._lock:
            by_handle = {v["handle"]: v for v in self.profiles.values()}
            found = [self.profiles.get(a) or by_handle.get(a.lower()) for a in actors]
        return 200, {"profiles": [v for v in found if v is not None]}

    def _post_thread(self, uri: str, depth: int) -> dict[str, Any]:
        view = self.views[uri]

        def node(u: str, level: int) -> dict[str, Any]:
            if u not in self.views:
                return {"$type": "app.bsky.feed.defs#notFoundPost", "uri": u, "notFound": True}
            out: dict[str, Any] = {
                "$type": "app.bsky.feed.defs#threadViewPost",
                "post": self.views[u],
            }
            if level < depth:
                out["replies"] = [node(r, level + 1) for r in self.replies.get(u, [])]
            return out

        root = node(view["uri"], 0)
        return {"thread": root}

    def _route(
        self,
        method: str,
        path: str,
        q: dict[str, list[str]],
        body: bytes,
        auth: str,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict]:
        nsid = path.removeprefix("/xrpc/")
        if nsid == "com.atproto.identity.resolveHandle" and method == "GET":
            return self.chat.resolve_handle(q)
        if nsid == "com.atproto.server.createSession" and method == "POST":
            data = json.loads(body or b"{}")
            if (
                data.get("identifier") not in (self.handle, self.did)
                or data.get("password") != self.password
            ):
                return 401, {
                    "error": "AuthenticationRequired",
                    "message": "Invalid identifier or password",
                }
            return 200, {
                "accessJwt": fake_jwt(self.did),
                "refreshJwt": fake_jwt(self.did, 86400),
                "handle": self.handle,
                "did": self.did,
                "active": True,
            }
        if nsid == "app.bsky.actor.getProfiles" and method == "GET":
            return self._profiles(q)  # public: the AppView answers without a session too
        if not auth.startswith("Bearer "):
            return 401, {"error": "AuthMissing", "message": "Authentication Required"}
        if nsid.startswith("chat.bsky."):
            return self.chat.route(method, nsid, q, body, headers or {})
        if nsid == "app.bsky.feed.searchPosts":
            return 200, self._search(q)
        if nsid == "app.bsky.feed.getPostThread":
            uri = q.get("uri", [""])[0]
            if uri not in self.views:
                return 400, {"error": "NotFound", "message": f"Post not found: {uri}"}
            return 200, self._post_thread(uri, int(q.get("depth", ["6"])[0]))
        if nsid == "app.bsky.feed.getPosts":
            uris = q.get("uris", [])
            if len(uris) > 25:
                return 400, {
                    "error": "InvalidRequest",
                    "message": "uris must not have more than 25 elements",
                }
            return 200, {"posts": [self.views[u] for u in uris if u in self.views]}
        return 501, {"error": "MethodNotImplemented", "message": f"Method Not Implemented: {nsid}"}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _serve(self, method: str) -> None:
                parts = urlsplit(self.path)
                q = parse_qs(parts.query)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                nsid = parts.path.removeprefix("/xrpc/")
                with fake._lock:
                    fake.requests[nsid] += 1
                    fake.log.append((nsid, q))
                    fake.headers_log.append((nsid, dict(self.headers)))
                    queue = fake.failures.get(nsid) or []
                    failure = queue.pop(0) if queue else None
                headers: dict[str, str] = {}
                if failure is not None:
                    time.sleep(failure.delay)
                    status, payload = (
                        failure.status,
                        failure.body or {"error": "InternalServerError"},
                    )
                    headers = failure.headers
                else:
                    status, payload = fake._route(
                        method,
                        parts.path,
                        q,
                        body,
                        self.headers.get("Authorization", ""),
                        dict(self.headers),
                    )
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json; charset=utf-8")
                    self.send_header("Content-Length", str(len(data)))
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

        return Handler


class FakeFirehose:
    """A subscribeRepos WebSocket server replaying from `cursor` and streaming new frames."""

    def __init__(self) -> None:
        self.frames: list[tuple[int, bytes]] = []  # (seq, frame), seq ascending
        self.connections: list[str] = []  # request paths, e.g. ".../subscribeRepos?cursor=3"
        self.drop_after: list[int | None] = []  # per connection: frames before cutting it
        self.drop_clean = False  # cut with a normal close (1000) instead of an abort
        self.sent = 0
        self._closing = False
        self._loop = asyncio.new_event_loop()
        self._changed: asyncio.Condition | None = None
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self._thread.start()
        ready.wait(5)
        self.base_uri = f"ws://127.0.0.1:{self.port}/xrpc"

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)

        async def start() -> None:
            self._changed = asyncio.Condition()
            self._server = await serve(
                self._serve, "127.0.0.1", 0, process_request=self._check_path
            )
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()

        self._loop.run_until_complete(start())
        self._loop.run_forever()

    def add(self, seq: int, frame: bytes) -> None:
        """Append a frame (seqs must grow); live connections receive it."""
        asyncio.run_coroutine_threadsafe(self._notify((seq, frame)), self._loop).result(5)

    async def _notify(self, entry: tuple[int, bytes] | None = None) -> None:
        assert self._changed is not None
        if entry is not None:
            self.frames.append(entry)  # on the loop: atomic with respect to the handlers
        async with self._changed:
            self._changed.notify_all()

    def _check_path(self, connection: ServerConnection, request: Request) -> Response | None:
        if urlsplit(request.path).path != SUBSCRIBE:
            return Response(404, "Not Found", Headers([("Content-Length", "0")]))
        return None

    async def _serve(self, ws: ServerConnection) -> None:
        assert self._changed is not None
        path = ws.request.path if ws.request else ""
        number = len(self.connections)
        self.connections.append(path)
        limit = self.drop_after[number] if number < len(self.drop_after) else None
        raw = parse_qs(urlsplit(path).query).get("cursor", [None])[0]
        cursor = int(raw) if raw is not None else None
        if cursor is not None and self.frames and cursor > self.frames[-1][0]:
            await ws.send(error_frame("FutureCursor", "Cursor in the future."))
            await ws.close()
            return
        index = 0 if cursor is not None else len(self.frames)  # no cursor: live tail only
        sent = 0
        while True:
            while index < len(self.frames):
                seq, frame = self.frames[index]
                index += 1
                if cursor is not None and seq <= cursor:
                    continue
                if limit is not None and sent >= limit:
                    if self.drop_clean:
                        await ws.close()
                    else:
                        ws.transport.abort()
                    return
                await ws.send(frame)
                sent += 1
                self.sent += 1
            async with self._changed:
                await self._changed.wait_for(lambda i=index: i < len(self.frames) or self._closing)
            if self._closing:
                return

    @property
    def cursors(self) -> list[int | None]:
        out: list[int | None] = []
        for path in self.connections:
            raw = parse_qs(urlsplit(path).query).get("cursor", [None])[0]
            out.append(int(raw) if raw is not None else None)
        return out

    def close(self) -> None:
        async def stop() -> None:
            self._closing = True
            await self._notify()
            self._server.close()
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


@contextmanager
def fake_bluesky() -> Iterator[tuple[FakeBluesky, FakeFirehose]]:
    api, hose = FakeBluesky(), FakeFirehose()
    try:
        yield api, hose
    finally:
        api.close()
        hose.close()
