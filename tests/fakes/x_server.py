"""A fake X API v2 server over a real socket, for the X collector's tests and benchmark.

Serves `GET /2/tweets/search/recent` and `GET /2/tweets` with the documented v2 shapes:
`{"data": [...], "includes": {"users", "media", "tweets"}, "meta": {"newest_id",
"oldest_id", "result_count", "next_token"}}`, only the requested fields and expansions,
X's error bodies (429 with `x-rate-limit-*` headers, `resource-not-found` lookup errors,
400 for bad parameters). Tweet ids are snowflakes (time-ordered), so `since_id` works.

Deliberately loose: a hashtag in the query matches the tag as a *substring* of the folded
text (so `#DocTocTocs` comes back for `#DocTocToc`); the collector's exact filter is
what the tests exercise. tweepy's host is fixed: `session()` returns a requests Session
whose adapter rewrites `https://api.twitter.com` to this server.

User lookup by username and direct messages (user context, OAuth 1.0a) are served by
`x_dm.FakeXDirectMessages`, reached as `server.dm`; failures injected with `fail()` apply there too.
"""

from __future__ import annotations

import bisect
import json
import re
import threading
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from requests.adapters import HTTPAdapter

from .x_dm import FakeXDirectMessages

TWITTER_EPOCH_MS = 1288834974657
NOT_FOUND = "https://api.twitter.com/2/problems/resource-not-found"
INVALID = "https://api.twitter.com/2/problems/invalid-request"
DEFAULT_TWEET_FIELDS = ("id", "text", "edit_history_tweet_ids")
_TAG = re.compile(r"#(\w+)")


def snowflake(when: datetime, sequence: int = 0) -> int:
    return ((int(when.timestamp() * 1000) - TWITTER_EPOCH_MS) << 22) | (sequence & 0x3FFFFF)


def x_time(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


@dataclass
class Failure:
    kind: str  # "429", "429-noreset", "500", "503", "slow", "garbage", "malformed"
    times: int = 1
    path: str | None = None
    after: int = 0
    reset_in: float = 30.0
    delay: float = 1.0


@dataclass
class _Stored:
    tweet: dict[str, Any]
    folded: str
    latest: bool = True
    retweet: bool = False
    raw: bool = False


class RewriteAdapter(HTTPAdapter):
    """Sends `https://api.twitter.com/...` requests to the local fake server instead."""

    def __init__(self, base: str):
        super().__init__()
        self.base = base

    def send(self, request, **kwargs):  # type: ignore[override]
        request.url = request.url.replace("https://api.twitter.com", self.base, 1)
        return super().send(request, **kwargs)


class FakeXServer:
    def __init__(self, *, clock: Callable[[], datetime] | None = None, token: str = "test-bearer"):
        self.clock = clock or (lambda: datetime.now(UTC))
        self.token = token
        self.users: dict[str, dict[str, Any]] = {}
        self.media: dict[str, dict[str, Any]] = {}
        self.failures: list[Failure] = []
        self.requests: list[tuple[str, dict[str, str]]] = []
        self._tweets: dict[int, _Stored] = {}
        self._ids: list[int] = []  # ascending
        self._last_id = 0
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self.dm = FakeXDirectMessages(self.users, self.add_user)

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> FakeXServer:
        handler = type("Handler", (_Handler,), {"fake": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._httpd.block_on_close = False
        threading.Thread(target=self._httpd.serve_forever, args=(0.02,), daemon=True).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()

    @property
    def base_url(self) -> str:
        assert self._httpd is not None, "start() the server first"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def session(self) -> requests.Session:
        session = requests.Session()
        session.trust_env = False
        session.mount("https://api.twitter.com", RewriteAdapter(self.base_url))
        return session

    # --- state ---------------------------------------------------------------------------

    def _next_id(self, when: datetime) -> int:
        new = max(snowflake(when), self._last_id + 1)
        self._last_id = new
        return new

    def add_user(self, username: str, name: str | None = None) -> str:
        for user in self.users.values():
            if user["username"] == username:
                return user["id"]
        uid = str(1000 + len(self.users))
        self.users[uid] = {"id": uid, "username": username, "name": name or username.title()}
        return uid

    def add_tweet(
        self,
        text: str,
        *,
        username: str = "dr_house",
        lang: str = "fr",
        created_at: datetime | None = None,
        media: list[dict[str, str]] | None = None,
        reply_to: str | None = None,
        retweet_of: str | None = None,
        entities: bool = True,
    ) -> str:
        with self._lock:
            when = created_at or self.clock()
            tid = str(self._next_id(when))
            author = self.add_user(username)
            tweet: dict[str, Any] = {
                "id": tid,
                "text": text,
                "created_at": x_time(when),
                "author_id": author,
                "conversation_id": tid,
                "lang": lang,
                "edit_history_tweet_ids": [tid],
            }
            tags = [
                {"start": m.start(), "end": m.end(), "tag": m.group(1)} for m in _TAG.finditer(text)
            ]
            if entities and tags:
                tweet["entities"] = {"hashtags": tags}
            if media:
                keys = []
                for item in media:
                    kind = item.get("type", "photo")
                    key = f"{3 if kind == 'photo' else 7}_{len(self.media) + 1}"
                    self.media[key] = {"media_key": key, "type": kind, **item}
                    keys.append(key)
                tweet["attachments"] = {"media_keys": keys}
            if reply_to is not None:
                parent = self._tweets[int(reply_to)].tweet
                tweet["conversation_id"] = parent["conversation_id"]
                tweet["in_reply_to_user_id"] = parent["author_id"]
                tweet["referenced_tweets"] = [{"type": "replied_to", "id": reply_to}]
            if retweet_of is not None:
                tweet["referenced_tweets"] = [{"type": "retweeted", "id": retweet_of}]
            self._store(int(tid), _Stored(tweet, _fold(text), retweet=retweet_of is not None))
            return tid

    def add_raw(self, item: Any) -> int:
        """A malformed item, returned as is by every hashtag search (sorted by its own id)."""
        with self._lock:
            sort_id = self._next_id(self.clock())
            self._store(sort_id, _Stored({"_": item}, "", raw=True))
            return sort_id

    def edit_tweet(self, tid: str, text: str) -> str:
        """X makes an edit a new tweet id; every version lists the whole edit history."""
        with self._lock:
            old = self._tweets[int(tid)]
            new_id = str(self._next_id(self.clock()))
            history = [*old.tweet["edit_history_tweet_ids"], new_id]
            tweet = {**old.tweet, "id": new_id, "text": text, "created_at": x_time(self.clock())}
            for version in history[:-1]:
                stored = self._tweets[int(version)]
                stored.tweet["edit_history_tweet_ids"] = history
                stored.latest = False
            tweet["edit_history_tweet_ids"] = history
            self._store(int(new_id), _Stored(tweet, _fold(text)))
            return new_id

    def delete_tweet(self, tid: str) -> None:
        with self._lock:
            for version in self._tweets[int(tid)].tweet["edit_history_tweet_ids"]:
                self._tweets.pop(int(version), None)
                self._ids.remove(int(version))

    def _store(self, sort_id: int, stored: _Stored) -> None:
        self._tweets[sort_id] = stored
        bisect.insort(self._ids, sort_id)

    def fail(self, kind: str, **kwargs: Any) -> None:
        self.failures.append(Failure(kind, **kwargs))

    def count(self, path: str | None = None) -> int:
        return sum(1 for p, _ in self.requests if path is None or p == path)

    # --- HTTP ----------------------------------------------------------------------------

    def handle(
        self, target: str, headers: dict[str, str], method: str = "GET", body: bytes = b""
    ) -> tuple[int, dict[str, str], bytes, float]:
        url = urlsplit(target)
        params = {k: v[-1] for k, v in parse_qs(url.query).items()}
        with self._lock:
            self.requests.append((url.path, params))
            failure = self._failure(url.path)
        delay = 0.0
        if failure is not None:
            if failure.kind == "slow":
                delay = failure.delay
            elif failure.kind == "garbage":
                return 200, {"content-type": "text/html"}, b"<html>oops</html>", 0.0
            elif failure.kind == "malformed":
                body = b'{"data": {"id": "1"}, "meta": null}'
                return 200, {"content-type": "application/json"}, body, 0.0
            else:
                return (*self._error(failure), 0.0)
        if self.dm.handles(url.path):
            status, answer = self.dm.route(method, url.path, headers, body, self.token)
            kind = "application/json" if status < 400 else "application/problem+json"
            return status, {"content-type": kind}, json.dumps(answer).encode(), delay
        if headers.get("Authorization") != f"Bearer {self.token}":
            return (*_problem(401, "Unauthorized"), delay)
        with self._lock:
            if url.path == "/2/tweets/search/recent":
                status, body = self._search(params)
            elif url.path == "/2/tweets":
                status, body = self._lookup(params)
            else:
                return (*_problem(404, "Not Found"), delay)
        reset = str(int(self.clock().timestamp()) + 900)
        limits = {
            "x-rate-limit-limit": "450",
            "x-rate-limit-remaining": "449",
            "x-rate-limit-reset": reset,
        }
        return (
            status,
            {"content-type": "application/json", **limits},
            json.dumps(body).encode(),
            delay,
        )

    def _failure(self, path: str) -> Failure | None:
        for rule in self.failures:
            if rule.times <= 0 or (rule.path is not None and rule.path != path):
                continue
            if rule.after > 0:
                rule.after -= 1
                return None
            rule.times -= 1
            return rule
        return None

    def _error(self, failure: Failure) -> tuple[int, dict[str, str], bytes]:
        if failure.kind.startswith("429"):
            status, headers, body = _problem(429, "Too Many Requests")
            headers.update({"x-rate-limit-limit": "450", "x-rate-limit-remaining": "0"})
            if failure.kind == "429":
                headers["x-rate-limit-reset"] = str(
                    int(self.clock().timestamp() + failure.reset_in)
                )
            return status, headers, body
        status = int(failure.kind)
        titles = {403: "Forbidden", 500: "Internal Server Error", 502: "Bad Gateway"}
        return _problem(status, titles.get(status, "Service Unavailable"))

    def _search(self, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        query = params.get("query", "")
        if not query:
            return 400, _invalid("query", "", "The `query` query parameter can not be empty")
        size = int(params.get("max_results", "10"))
        if not 10 <= size <= 100:
            message = f"The `max_results` query parameter value [{size}] is not between 10 and 100"
            return 400, _invalid("max_results", str(size), message)
        since = int(params.get("since_id", "0"))
        if since and _snowflake_time(since) < self.clock() - timedelta(days=7):
            message = f"Invalid 'since_id':'{since}'. 'since_id' must be a tweet id created after the last 7 days."
            return 400, _invalid("since_id", str(since), message)
        if params.get("start_time"):  # RFC 3339; tweets from then on (ids are time-ordered)
            start_at = datetime.fromisoformat(params["start_time"].replace("Z", "+00:00"))
            if start_at < self.clock() - timedelta(days=7):
                return 400, _invalid("start_time", params["start_time"], "start_time too old")
            since = max(since, snowflake(start_at) - 1)
        tags = [_fold(f"#{t}") for t in _TAG.findall(query)]
        conversations = set(re.findall(r"conversation_id:(\d+)", query))
        no_retweets = "-is:retweet" in query
        token = params.get("next_token")
        start = len(self._ids) if token is None else bisect.bisect_left(self._ids, int(token, 36))
        found: list[tuple[int, _Stored]] = []
        position = start - 1
        while position >= 0 and len(found) <= size:
            sort_id = self._ids[position]
            stored = self._tweets[sort_id]
            position -= 1
            if sort_id <= since:
                break
            if stored.raw:
                if tags:
                    found.append((sort_id, stored))
                continue
            if not stored.latest or (no_retweets and stored.retweet):
                continue
            if (
                any(t in stored.folded for t in tags)
                or stored.tweet["conversation_id"] in conversations
            ):
                found.append((sort_id, stored))
        more = len(found) > size
        found = found[:size]
        if not found:
            return 200, {"meta": {"result_count": 0}}
        body = self._render([s for _, s in found], params)
        ids = [int(s.tweet["id"]) for _, s in found if not s.raw] or [found[0][0]]
        meta: dict[str, Any] = {
            "newest_id": str(max(ids)),
            "oldest_id": str(min(ids)),
            "result_count": len(found),
        }
        if more:
            meta["next_token"] = _base36(found[-1][0])
        body["meta"] = meta
        return 200, body

    def _lookup(self, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        ids = [i for i in params.get("ids", "").split(",") if i]
        if not 1 <= len(ids) <= 100:
            return 400, _invalid("ids", params.get("ids", ""), "ids must hold 1 to 100 tweet ids")
        found = [self._tweets[int(i)] for i in ids if i.isdigit() and int(i) in self._tweets]
        body = self._render(found, params) if found else {}
        missing = [i for i in ids if not (i.isdigit() and int(i) in self._tweets)]
        if missing:
            body["errors"] = [
                {
                    "value": i,
                    "detail": f"Could not find tweet with ids: [{i}].",
                    "title": "Not Found Error",
                    "resource_type": "tweet",
                    "parameter": "ids",
                    "resource_id": i,
                    "type": NOT_FOUND,
                }
                for i in missing
            ]
        return 200, body

    def _render(self, found: list[_Stored], params: dict[str, str]) -> dict[str, Any]:
        fields = set(DEFAULT_TWEET_FIELDS) | _csv(params.get("tweet.fields"))
        expansions = _csv(params.get("expansions"))
        user_fields = {"id", "name", "username"} | _csv(params.get("user.fields"))
        media_fields = {"media_key", "type"} | _csv(params.get("media.fields"))
        data, users, media, referenced = [], {}, {}, {}
        for stored in found:
            if stored.raw:
                data.append(stored.tweet["_"])
                continue
            tweet = stored.tweet
            data.append({k: v for k, v in tweet.items() if k in fields or k in expansions})
            if "author_id" in expansions and tweet["author_id"] in self.users:
                user = self.users[tweet["author_id"]]
                users[user["id"]] = {k: v for k, v in user.items() if k in user_fields}
            if "attachments.media_keys" in expansions:
                for key in tweet.get("attachments", {}).get("media_keys", []):
                    media[key] = {k: v for k, v in self.media[key].items() if k in media_fields}
            if "referenced_tweets.id" in expansions:
                for ref in tweet.get("referenced_tweets", []):
                    if int(ref["id"]) in self._tweets:
                        parent = self._tweets[int(ref["id"])].tweet
                        referenced[ref["id"]] = {k: v for k, v in parent.items() if k in fields}
        body: dict[str, Any] = {"data": data}
        includes = {
            name: list(items.values())
            for name, items in (("users", users), ("media", media), ("tweets", referenced))
            if items
        }
        if includes:
            body["includes"] = includes
        return body


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed ACK
    fake: FakeXServer

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._answer("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._answer("POST")

    def _answer(self, method: str) -> None:
        sent = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status, headers, body, delay = self.fake.handle(self.path, dict(self.headers), method, sent)
        if delay:
            time.sleep(delay)
        try:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        return


def _fold(text: str) -> str:
    """Case- and accent-insensitive text, '#' kept (X matches hashtags that way)."""
    text = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in text if not unicodedata.combining(c))


def _csv(value: str | None) -> set[str]:
    return {v for v in (value or "").split(",") if v}


def _problem(status: int, title: str) -> tuple[int, dict[str, str], bytes]:
    body = {"title": title, "detail": title, "type": "about:blank", "status": status}
    return status, {"content-type": "application/problem+json"}, json.dumps(body).encode()


def _invalid(parameter: str, value: str, message: str) -> dict[str, Any]:
    return {
        "errors": [{"parameters": {parameter: [value]}, "message": message}],
        "title": "Invalid Request",
        "detail": "One or more parameters to your request was invalid.",
        "type": INVALID,
    }


def _snowflake_time(tid: int) -> datetime:
    return datetime.fromtimestamp(((tid >> 22) + TWITTER_EPOCH_MS) / 1000, UTC)


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while number:
        number, rest = divmod(number, 36)
        out = digits[rest] + out
    return out or "0"
