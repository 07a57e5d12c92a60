"""Mastodon collector: hashtag timelines of one instance, polled with Mastodon.py.

Cursor: one JSON object for the source, `{"<tag>": "<min_id>"}` (tags case/accent folded),
the id of the newest status already committed for each configured hashtag.

Polling: for each hashtag, `timeline_hashtag(tag, min_id=cursor, limit=40)` returns the
statuses immediately newer than the cursor; the library's `fetch_previous` (the `Link`
header's rel="prev" min_id) then walks towards the present until a short or empty page.
Every page is yielded oldest first with a cursor covering that page and earlier ones only,
so a crash or an error part-way never skips a status and a restart never repeats one.

Late statuses: statuses delivered to the instance's inbox get ids from their arrival time, but
a status the instance fetches later (thread resolution, search) gets a backdated id (from its
`created_at`), which may sort before the cursor, where `min_id` polling never looks. So a
running bot re-reads each hashtag's newest page (40 statuses) every `lookback_every` (15 min;
the first time one period after the collector starts, so that a short-lived `run --once` keeps
to one request per idle cycle) and stores the statuses at or before the cursor (known ones are
recognised); the cursor does not move. A late status older than the 40 newest is still missed.

First run (no cursor for a tag): only the most recent page (40 statuses; `first_run_pages`
raises it) is collected. A hashtag's whole history can be huge and old questions are no
longer actionable; from then on nothing is missed.

Rate limits: Mastodon allows 300 requests per 5 minutes. Each HTTP request goes through a
session that keeps a sliding window of the collector's own requests (waiting with the
injected `sleep` when full) and honours `X-RateLimit-Remaining: 0` until the reset time.
The library runs with `ratelimit_method="throw"` so that it never sleeps by itself: a 429,
a 5xx, a timeout or a network error becomes `Transient` and the shared `RetryPolicy`
decides (Retry-After or X-RateLimit-Reset honoured, measured against the server's Date).

Threads: `replies` fetches, for at most `max_cases` recent cases, the status itself (to
apply edits and see deletions) and its context (descendants become Posts replying to the
case). `recheck` reports the cases that answered 404 (by key, the canonical uri), checking
those not seen yet.

Streaming (optional, `stream: true`): `stream()` listens to `stream_hashtag` and catches up
by polling after every (re)connection; see mastodon_stream.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
from mastodon import (
    Mastodon,
    MastodonAPIError,
    MastodonNetworkError,
    MastodonNotFoundError,
    MastodonRatelimitError,
    MastodonUnauthorizedError,
)

from bot.collectors.base import Collector, Page, Transient, fold_tag, retry_after_seconds
from bot.collectors.mastodon_status import MalformedStatus, id_order, status_id, status_to_post
from bot.core.config_models import SourceConfig
from bot.core.errors import CollectorError
from bot.core.post import Post

log = logging.getLogger(__name__)
T = TypeVar("T")

PAGE_SIZE = 40  # Mastodon's maximum for timelines
MAX_PAGES = 500  # per hashtag and cycle; the rest waits for the next cycle
RATE_LIMIT = 300  # requests ...
RATE_WINDOW = 300.0  # ... per 5 minutes
MAX_CASES = 20  # cases followed (status + context) per cycle
BACKFILL_MAX_PAGES = 250  # first-run backfill: 10,000 statuses per tag, under 300 requests / 5 min
LOOKBACK_EVERY = timedelta(minutes=15)  # newest page re-read for late, backdated statuses
CASE_WINDOW = timedelta(hours=48)


class _Mastodon(Mastodon):
    """Mastodon.py without its availability probe before every timeline call.

    `timeline()` first asks `timeline_is_available`, which fetches `GET /api/v2/instance/`
    (once per client, again after every failure) only to emit a warning. The collector reports
    a refused or missing timeline itself from the timeline's own answer (401/403/404), so the
    probe would be one wasted request per process and cycle.
    """

    def timeline_is_available(self, *args: Any, **kwargs: Any) -> bool:
        return True


class _Session(requests.Session):
    """A requests session that reports every HTTP request before and after it is sent."""

    def __init__(self, before: Callable[[], None], after: Callable[[requests.Response], None]):
        super().__init__()
        self._before, self._after = before, after

    def request(
        self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any
    ) -> requests.Response:
        self._before()
        response = super().request(method, url, *args, **kwargs)
        self._after(response)
        return response


class MastodonCollector(Collector):
    network = "mastodon"

    def __init__(
        self,
        source: SourceConfig,
        hashtags: list[str],
        *,
        page_size: int = PAGE_SIZE,
        first_run_pages: int = 1,
        max_cases: int = MAX_CASES,
        rate_limit: int = RATE_LIMIT,
        rate_window: float = RATE_WINDOW,
        lookback_every: timedelta = LOOKBACK_EVERY,
        **kwargs: Any,
    ):
        super().__init__(source, hashtags, **kwargs)
        if not source.url:
            raise CollectorError("a mastodon source needs 'url'")
        self.base_url = source.url.rstrip("/")
        self.host = urlsplit(self.base_url).hostname or self.base_url
        self.page_size = max(1, min(page_size, PAGE_SIZE))
        self.first_run_pages = max(1, first_run_pages)
        self.max_cases = max_cases
        self.rate_limit, self.rate_window = rate_limit, rate_window
        self.lookback_every = lookback_every
        self._looked_back: dict[str, datetime] = {}  # tag -> when its newest page was last read
        self.requests = 0  # HTTP requests sent, for Page.requests and benchmarks
        self._counted = 0
        self._sent: deque[datetime] = deque()
        self._lock = threading.Lock()  # stream connections send from their own threads
        self._headers: Any = {}
        self._server_wait = 0.0
        # The scheduler streams sources that have a stream_url (config `stream: true`).
        self.stream_url = f"{self.base_url}/api/v1/streaming/hashtag" if source.stream else None
        self._gone: set[str] = set()
        self._seen: set[str] = set()
        self.api = _Mastodon(
            api_base_url=self.base_url,
            access_token=source.access_token,
            ratelimit_method="throw",
            request_timeout=source.timeout.total_seconds(),
            session=_Session(self._before_request, self._after_response),
            user_agent="doctoctoc-bot",
        )

    def close(self) -> None:
        self.api.session.close()

    # --- rate limiting and request accounting --------------------------------------------

    def _before_request(self) -> None:
        with self._lock:
            self._wait_for_budget()
            self._sent.append(self.clock())
            self.requests += 1
            self._headers = {}

    def _wait_for_budget(self) -> None:
        if self._server_wait > 0:
            wait, self._server_wait = min(self._server_wait, self.rate_window), 0.0
            log.info("%s: server rate limit exhausted; waiting %.0fs", self.key, wait)
            self.sleep(wait)
        window = timedelta(seconds=self.rate_window)
        while True:
            now = self.clock()
            while self._sent and self._sent[0] <= now - window:
                self._sent.popleft()
            if len(self._sent) < self.rate_limit:
                break
            wait = (self._sent[0] + window - now).total_seconds()
            log.info(
                "%s: %d requests in %.0fs; waiting %.1fs",
                self.key,
                len(self._sent),
                self.rate_window,
                wait,
            )
            self.sleep(max(wait, 0.01))

    def _after_response(self, response: requests.Response) -> None:
        self._headers = response.headers
        if response.status_code != 429 and response.headers.get("X-RateLimit-Remaining") == "0":
            self._server_wait = self._wait_hint(rate_limited=True) or 0.0

    def _wait_hint(self, *, rate_limited: bool) -> float | None:
        """Seconds the last answer asks us to wait (Retry-After; reset time only for 429s)."""
        headers = self._headers
        if not rate_limited:
            headers = (
                {"Retry-After": headers.get("Retry-After")} if headers.get("Retry-After") else {}
            )
        now = self.clock().timestamp()
        if self._headers.get("Date"):
            with contextlib.suppress(TypeError, ValueError):
                now = parsedate_to_datetime(self._headers["Date"]).timestamp()
        return retry_after_seconds(headers, now=now)

    def _take_requests(self) -> int:
        count, self._counted = self.requests - self._counted, self.requests
        return count

    def _call(self, fn: Callable[[], T], what: str) -> T:
        """Run one library call under the shared retry policy; 404s pass through unchanged."""

        def attempt() -> T:
            try:
                return fn()
            except MastodonNotFoundError:
                raise
            except MastodonRatelimitError as exc:
                raise Transient(
                    f"{what}: rate limited", retry_after=self._wait_hint(rate_limited=True)
                ) from exc
            except MastodonNetworkError as exc:
                raise Transient(f"{what}: network error or timeout: {exc}") from exc
            except MastodonUnauthorizedError as exc:
                raise CollectorError(f"{what}: access token refused (401)") from exc
            except MastodonAPIError as exc:
                status = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], int) else None
                if status == 429:
                    raise Transient(
                        f"{what}: rate limited", retry_after=self._wait_hint(rate_limited=True)
                    ) from exc
                if status is None or status >= 500:
                    hint = self._wait_hint(rate_limited=False)
                    raise Transient(
                        f"{what}: server error {status or 'bad answer'}", retry_after=hint
                    ) from exc
                raise CollectorError(f"{what}: HTTP {status}: {exc}") from exc

        return self.retry.call(attempt, what)

    # --- polling ---------------------------------------------------------------------------

    def pages(self, cursor: str | None) -> Iterator[Page]:
        state = self._load_cursor(cursor)
        self._take_requests()
        for tag in self.hashtags:
            yield from self._tag_pages(tag.lstrip("#"), state)

    def _load_cursor(self, cursor: str | None) -> dict[str, str]:
        if not cursor:
            return {}
        try:
            data = json.loads(cursor)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            log.warning(
                "%s: unreadable cursor %r; starting from the newest statuses", self.key, cursor
            )
            return {}
        return {str(k): str(v) for k, v in data.items() if v}

    def _list(self, tag: str, fn: Callable[[], Any]) -> list[Any]:
        """A page of the tag timeline, under the retry policy."""

        def fetch() -> list[Any]:
            try:
                batch = fn()
            except MastodonNotFoundError as exc:
                raise CollectorError(f"#{tag} timeline not found on {self.base_url}") from exc
            if not isinstance(batch, list):
                raise Transient(f"#{tag} timeline: expected a list, got {type(batch).__name__}")
            return batch

        return self._call(fetch, f"#{tag} timeline")

    def _timeline(self, tag: str, **params: Any) -> list[Any]:
        return self._list(
            tag, lambda: self.api.timeline_hashtag(tag, limit=self.page_size, **params)
        )

    def _tag_pages(self, tag: str, state: dict[str, str]) -> Iterator[Page]:
        key = fold_tag(tag)
        since = state.get(key)
        if since is not None:
            batch = self._timeline(tag, min_id=since)
        else:
            batch = self._timeline(tag)
            older = [batch]
            while older[-1] and hasattr(older[-1], "_pagination_next") and self._wants_older(older):
                older.append(self._older(tag, older[-1]))
            for extra in reversed(older[1:]):
                if extra:
                    yield self._page(extra, key, state)
        for _ in range(MAX_PAGES):
            before = state.get(key)
            yield self._page(batch, key, state)  # even empty: it accounts for the request
            if len(batch) < self.page_size or state.get(key) == before:
                break  # caught up (or the server made no progress)
            batch = self._newer(tag, batch, state[key])
        last = self._looked_back.setdefault(key, self.clock())  # first look: one period on
        if since is not None and self.clock() - last >= self.lookback_every:
            yield self._lookback(tag, key, state)

    def _wants_older(self, pages: list[list[Any]]) -> bool:
        """First run: `first_run_pages`, or older pages until `backfill` is covered (bounded)."""
        if len(pages) < self.first_run_pages:
            return True
        backfill = self.source.backfill
        if backfill is None or len(pages) >= BACKFILL_MAX_PAGES:
            return False
        dates = [d for d in (_created(item) for item in pages[-1]) if d is not None]
        return bool(dates) and min(dates) > self.clock() - backfill

    def _lookback(self, tag: str, key: str, state: dict[str, str]) -> Page:
        """The newest page again, keeping what sorts at or before the cursor (late statuses)."""
        batch = self._timeline(tag)
        self._looked_back[key] = self.clock()
        cursor = state.get(key)
        page = Page()
        for item in reversed(batch):
            sid = status_id(item)
            if cursor is None or (sid is not None and id_order(sid) <= id_order(cursor)):
                self.add_to_page(page, item, require_tag=True)  # newer ones: the next min_id walk
        page.cursor = json.dumps(state, sort_keys=True)
        page.requests = self._take_requests()
        return page

    def _older(self, tag: str, batch: list[Any]) -> list[Any]:
        return self._list(tag, lambda: self.api.fetch_next(batch))

    def _newer(self, tag: str, batch: list[Any], cursor: str) -> list[Any]:
        if getattr(batch, "_pagination_prev", None):
            return self._list(tag, lambda: self.api.fetch_previous(batch))
        return self._timeline(tag, min_id=cursor)

    def _page(self, batch: list[Any], key: str, state: dict[str, str]) -> Page:
        page = Page()
        for item in reversed(batch):  # the API answers newest first
            self.add_to_page(page, item, require_tag=True)
        newest = self._batch_cursor(batch)
        if newest is not None and (key not in state or id_order(newest) > id_order(state[key])):
            state[key] = newest
        page.cursor = json.dumps(state, sort_keys=True)
        page.requests = self._take_requests()
        return page

    def _batch_cursor(self, batch: list[Any]) -> str | None:
        """The newest id of a page: the Link header's rel="prev" min_id, else the items' ids."""
        prev = getattr(batch, "_pagination_prev", None)
        if isinstance(prev, dict) and prev.get("min_id") not in (None, ""):
            return str(prev["min_id"])
        ids = [i for i in (status_id(item) for item in batch) if i is not None]
        return max(ids, key=id_order) if ids else None

    def add_to_page(
        self, page: Page, item: Any, *, require_tag: bool, thread_root: str | None = None
    ) -> None:
        """Normalize `item` into `page` (once per key); a malformed status is logged and counted."""
        try:
            post = status_to_post(
                item,
                host=self.host,
                wanted=self.hashtags,
                require_tag=require_tag,
                thread_root=thread_root,
            )
        except (MalformedStatus, ValueError, TypeError, KeyError, AttributeError) as exc:
            # One bad item never blocks its page, whatever shape it has.
            log.warning(
                "%s: skipped malformed status %.40s: %.200s", self.key, status_id(item) or "?", exc
            )
            page.skipped += 1
            return
        if post is not None and all(p.key != post.key for p in page.posts):
            page.posts.append(post)

    # --- threads and deletions -----------------------------------------------------------------

    def _followed(self, cases: list[Post]) -> list[Post]:
        since = self.clock() - CASE_WINDOW
        mine = [c for c in cases if c.network == self.network and c.created_at >= since]
        mine.sort(key=lambda c: c.created_at, reverse=True)
        return mine[: self.max_cases]

    def _fetch_or_gone(self, case: Post, fn: Callable[[], T], what: str) -> T | None:
        try:
            return self._call(fn, what)
        except MastodonNotFoundError:
            self._gone.add(case.id)
            return None

    def replies(self, cases: list[Post]) -> Iterator[Page]:
        self._take_requests()
        for case in self._followed(cases):
            self._seen.add(case.id)
            status = self._fetch_or_gone(
                case, lambda c=case: self.api.status(c.id), f"status {case.id}"
            )
            if status is None:
                continue
            page = Page()
            self.add_to_page(page, status, require_tag=False)  # the case itself: carries its edits
            context = self._fetch_or_gone(
                case, lambda c=case: self.api.status_context(c.id), f"context {case.id}"
            )
            descendants = context.get("descendants") if isinstance(context, dict) else None
            for item in descendants if isinstance(descendants, list) else []:
                self.add_to_page(page, item, require_tag=False, thread_root=case.id)
            page.requests = self._take_requests()
            yield page

    def stream(
        self,
        on_page: Callable[[Page], None],
        stop: threading.Event,
        cursor: str | None = None,
        *,
        heartbeat: float = 60.0,
        reconnect_wait: float = 5.0,
    ) -> str | None:
        """Optional near-real-time mode (`stream: true`): hashtag streams plus catch-up polling.

        Runs until `stop` is set (see mastodon_stream); returns the last polled cursor.
        """
        from bot.collectors.mastodon_stream import stream_source

        return stream_source(
            self, cursor, on_page, stop=stop, heartbeat=heartbeat, reconnect_wait=reconnect_wait
        )

    def recheck(self, posts: list[Post]) -> list[str]:
        for case in self._followed(posts):
            if case.id not in self._seen:
                self._seen.add(case.id)
                self._fetch_or_gone(case, lambda c=case: self.api.status(c.id), f"status {case.id}")
        # Keys (canonical uris), which storage matches like native ids: the same numeric id on
        # two instances is two statuses, and only this one must be marked deleted.
        gone = [p.key or p.id for p in posts if p.id in self._gone]
        self._gone.clear()
        self._seen.clear()
        return gone


def _created(item: Any) -> datetime | None:
    value = item.get("created_at") if isinstance(item, dict) else None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)
