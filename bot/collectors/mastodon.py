"""Mastodon collector: hashtag timelines of one instance, polled with Mastodon.py.

The cursor is one JSON object for the source, `{"<tag>": "<min_id>"}` (tags case/accent
folded): the newest status already committed for each hashtag. Optional streaming
(`stream: true`) is in mastodon_stream.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import urlsplit

from mastodon import MastodonError, MastodonNotFoundError

from bot.collectors.base import Page, StreamingCollector, Transient, fold_tag
from bot.collectors.mastodon_status import MalformedStatus, id_order, status_id, status_to_post
from bot.collectors.mastodon_stream import stream_source
from bot.core.config_models import SourceConfig
from bot.core.errors import CollectorError
from bot.core.post import Post
from bot.networks import mastodon as mastodon_net
from bot.networks.failure import (
    AUTH,
    NOT_FOUND,
    RATE_LIMITED,
    UNAVAILABLE,
    UNREACHABLE,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

PAGE_SIZE = 40  # Mastodon's maximum for timelines
MAX_PAGES = 500  # per hashtag and cycle; the rest waits for the next cycle
MAX_CASES = 20  # cases followed (status + context) per cycle
BACKFILL_MAX_PAGES = 250  # first-run backfill: 10,000 statuses per tag, under 300 requests / 5 min
LOOKBACK_EVERY = timedelta(minutes=15)  # newest page re-read for late, backdated statuses
CASE_WINDOW = timedelta(hours=48)


class MastodonCollector(StreamingCollector):
    network = "mastodon"

    def __init__(
        self,
        source: SourceConfig,
        hashtags: list[str],
        *,
        page_size: int = PAGE_SIZE,
        first_run_pages: int = 1,
        max_cases: int = MAX_CASES,
        rate_limit: int = mastodon_net.RATE_LIMIT,
        rate_window: float = mastodon_net.RATE_WINDOW,
        lookback_every: timedelta = LOOKBACK_EVERY,
        heartbeat: float = 60.0,
        reconnect_wait: float = 5.0,
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
        self.lookback_every = lookback_every
        self._looked_back: dict[str, datetime] = {}  # tag -> when its newest page was last read
        self._counted = 0
        # Stream connections send from their own threads: the limiter is thread-safe.
        self.limiter = mastodon_net.RateLimiter(
            limit=rate_limit, window=rate_window, clock=self.clock, sleep=self.sleep, name=self.key
        )
        self.stream_url = f"{self.base_url}/api/v1/streaming/hashtag" if source.stream else None
        self.heartbeat, self.reconnect_wait = heartbeat, reconnect_wait  # streaming, seconds
        self._gone: set[str] = set()
        self._seen: set[str] = set()
        self.api = mastodon_net.make_api(
            self.base_url,
            access_token=source.access_token,
            timeout=source.timeout.total_seconds(),
            session=self.limiter.session(),
            user_agent="doctoctoc-bot",
        )

    def close(self) -> None:
        self.api.session.close()

    # --- request accounting ----------------------------------------------------------------

    @property
    def requests(self) -> int:
        """HTTP requests sent, for Page.requests and benchmarks."""
        return self.limiter.requests

    def _take_requests(self) -> int:
        count, self._counted = self.requests - self._counted, self.requests
        return count

    def _call(self, fn: Callable[[], T], what: str) -> T:
        """Run one library call under the shared retry policy; 404s pass through unchanged.

        A 429, a 5xx, a timeout or a network error is retried (Retry-After or X-RateLimit-Reset
        honoured, measured against the server's Date).
        """

        def attempt() -> T:
            try:
                return fn()
            except MastodonError as exc:
                failure = mastodon_net.classify(exc)
                if failure is None or failure.kind == NOT_FOUND:
                    raise
                if failure.kind == RATE_LIMITED:
                    hint = self.limiter.wait_hint(rate_limited=True)
                    raise Transient(f"{what}: rate limited", retry_after=hint) from exc
                if failure.kind == UNREACHABLE:
                    raise Transient(f"{what}: network error or timeout: {exc}") from exc
                if failure.kind == AUTH:
                    raise CollectorError(f"{what}: access token refused (401)") from exc
                if failure.kind == UNAVAILABLE:
                    hint = self.limiter.wait_hint(rate_limited=False)
                    status = failure.status or "bad answer"
                    raise Transient(f"{what}: server error {status}", retry_after=hint) from exc
                raise CollectorError(f"{what}: HTTP {failure.status}: {exc}") from exc

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
        # `min_id=cursor` returns the statuses just newer than the cursor, `fetch_previous`
        # (the Link header's rel="prev") walks on towards the present. Each page carries a
        # cursor covering it and the earlier ones: an error part-way never skips a status.
        # First run (no cursor): the newest page only (or `first_run_pages`, or `backfill`).
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
        """The newest page again, keeping what sorts at or before the cursor (late statuses).

        A status the instance fetched late (thread resolution, search) gets an id backdated to
        its `created_at`, which may sort before the cursor, where `min_id` never looks.
        """
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
        # For the `max_cases` most recent cases: the status itself (its edits; a 404 means
        # deleted, reported by recheck) and its context (descendants reply to the case).
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

    @property
    def streams(self) -> bool:
        return self.stream_url is not None

    def stream(
        self, on_page: Callable[[Page], None], stop: threading.Event, cursor: str | None = None
    ) -> str | None:
        """Hashtag streams plus catch-up polling until `stop` is set; the last polled cursor."""
        return stream_source(
            self,
            cursor,
            on_page,
            stop=stop,
            heartbeat=self.heartbeat,
            reconnect_wait=self.reconnect_wait,
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
