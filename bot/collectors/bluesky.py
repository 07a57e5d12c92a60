"""Bluesky collector: firehose streaming, authenticated search backfill, threads, deletions."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import httpx
from atproto import Client, models
from atproto_client import exceptions as atx
from atproto_core.exceptions import AtProtocolError

from bot.collectors.base import Page, StreamingCollector, Transient, matching_tags
from bot.collectors.bluesky_cursor import BlueskyCursor
from bot.collectors.bluesky_posts import parse_view, post_from_view
from bot.collectors.bluesky_profiles import GET_PROFILES, ProfileResolver
from bot.collectors.bluesky_stream import Decoded, FirehoseStream, batches
from bot.core.errors import CollectorError, SourceDisabled
from bot.core.post import Post, iso, parse_time
from bot.networks import bluesky as bluesky_net
from bot.networks.failure import AUTH, NOT_FOUND, RATE_LIMITED, UNREACHABLE, Failure

log = logging.getLogger(__name__)
DEFAULT_URL = "https://bsky.social"


class BlueskyCollector(StreamingCollector):
    network = "bluesky"

    search_limit = 100  # posts per searchPosts page (the lexicon's maximum)
    max_search_pages = 200  # per hashtag and run
    search_overlap = timedelta(minutes=2)  # re-read this much before the last run (indexing lag)
    max_thread_calls = 20
    thread_depth = 6
    idle_timeout = 2.0  # firehose catch-up in pages(): end after this many quiet seconds
    max_catch_up = 300.0  # ... or after this many seconds
    profile_timeout = 3.0  # per getProfiles call (they run between a batch and its storage)

    def __init__(self, source, hashtags, **kwargs: Any):
        super().__init__(source, hashtags, **kwargs)
        self.url = source.url or DEFAULT_URL
        self.has_credentials = bool(source.handle and source.app_password)
        self.can_search = bool(source.search and self.has_credentials)
        self.stream_url = source.stream_url
        if self.stream_url and not self.stream_url.startswith(("ws://", "wss://")):
            raise SourceDisabled(
                f"bluesky source {self.key}: stream_url must start with ws:// or wss://"
            )
        if not self.can_search and not self.stream_url:
            raise SourceDisabled(
                f"bluesky source {self.key}: needs handle and app_password (search backfill, "
                "set from ${ENV} variables) or a stream_url (firehose)"
            )
        if source.search and not self.has_credentials:
            log.info(
                "bluesky source %s: no credentials, search backfill off (firehose only)", self.key
            )
        self.streaming = False
        self.stream_options: dict[str, float] = {}
        self._client: Client | None = None
        self._appview: Client | None = None
        self._lock = threading.Lock()
        self._login_lock = threading.RLock()
        self.appview_url = source.appview_url
        lookups = self.has_credentials or bool(self.appview_url)
        self.profiles = ProfileResolver(
            self._fetch_profiles if lookups else None, clock=self.clock, name=f"bluesky {self.key}"
        )
        self._committed = BlueskyCursor()
        self.timeout = source.timeout.total_seconds()

    # --- cursor state shared by the stream thread and polling cycles ---------------------

    def _with(self, **part: Any) -> str:
        with self._lock:
            return replace(self._committed, **part).encode()

    def _commit(self, **part: Any) -> None:
        with self._lock:
            self._committed = replace(self._committed, **part)

    def _adopt(self, cursor: str | None) -> BlueskyCursor:
        stored = BlueskyCursor.decode(cursor)
        with self._lock:
            seq = self._committed.seq if self.streaming else stored.seq  # the stream owns seq
            self._committed = BlueskyCursor(seq=seq, since=stored.since)
            return self._committed

    # --- polling cycle --------------------------------------------------------------------

    def pages(self, cursor: str | None) -> Iterator[Page]:
        # Search backfill when `search` is on and credentials exist (Bluesky asks bots not to
        # poll search: streaming is recommended); then, when `stream_url` is set and no
        # stream() runs, the firehose from the saved seq until caught up.
        state = self._adopt(cursor)
        if self.can_search:
            yield from self._search(state.since)
        if self.stream_url and not self.streaming:
            yield from self._catch_up(state.seq)

    def _search(self, since: str | None) -> Iterator[Page]:
        # `app.bsky.feed.searchPosts`, one `q="#Tag"` query per hashtag, newest first, paged
        # until posts older than the last run; the cursor moves in a last page, once all stored.
        client = self._login()
        since_dt = parse_time(since) if since else None
        stop_at = since_dt - self.search_overlap if since_dt else None
        if since_dt is None and self.source.backfill:  # first run: as far back as asked
            stop_at = self.clock() - self.source.backfill
        newest = since_dt
        for tag in self.hashtags:
            page_cursor: str | None = None
            for number in range(self.max_search_pages):
                params = models.AppBskyFeedSearchPosts.Params(
                    q=f"#{tag}", sort="latest", limit=self.search_limit, cursor=page_cursor
                )
                content = self._query(client, "app.bsky.feed.searchPosts", params)
                items = content.get("posts")
                if not isinstance(items, list):
                    raise CollectorError(f"searchPosts #{tag}: malformed answer (no 'posts' list)")
                page, oldest_reached, newest = self._search_page(items, stop_at, newest)
                yield page
                page_cursor = (
                    content.get("cursor") if isinstance(content.get("cursor"), str) else None
                )
                if oldest_reached or not page_cursor or not items:
                    break
                if number == self.max_search_pages - 1:
                    log.warning(
                        "bluesky %s: #%s backfill stopped after %d pages", self.key, tag, number + 1
                    )
        yield Page(cursor=self._with(since=iso(newest) if newest else None), requests=0)
        if newest:
            self._commit(since=iso(newest))

    def _search_page(
        self, items: list[Any], stop_at: datetime | None, newest: datetime | None
    ) -> tuple[Page, bool, datetime | None]:
        page = Page(cursor=None)
        oldest_reached = False
        for item in items:
            try:
                view = parse_view(item)
                post = post_from_view(view)
                # the AppView's "latest" order is by sortAt = min(indexedAt, createdAt)
                when = min(parse_time(view.indexed_at), post.created_at)
            except (ValueError, TypeError, KeyError, AttributeError, AtProtocolError) as exc:
                log.warning("bluesky %s: malformed search item skipped: %s", self.key, exc)
                page.skipped += 1
                continue
            if stop_at is not None and when < stop_at:
                oldest_reached = True
                continue
            newest = max(newest, when) if newest else when
            if matching_tags(post.hashtags, post.text, self.hashtags):
                page.posts.append(post)
        return page, oldest_reached, newest

    def _catch_up(self, seq: int | None) -> Iterator[Page]:
        """Consume the firehose from `seq` until caught up, one committed page at a time.

        Caught up: frames reach the cycle's start time, or none arrive for `idle_timeout` s.
        """
        for batch in batches(
            self._stream_client(),
            cursor=seq,
            idle_timeout=self.idle_timeout,
            max_duration=self.max_catch_up,
            catch_up_to=self.clock(),
            max_failures=self.source.retries,
        ):
            yield self._stream_page(batch)
            if batch.seq is not None:
                self._commit(seq=batch.seq)

    # --- streaming (run by the scheduler in a thread) -----------------------------------

    @property
    def streams(self) -> bool:
        return bool(self.stream_url)

    def stream(
        self, on_page: Callable[[Page], None], stop: threading.Event, cursor: str | None = None
    ) -> str | None:
        """Stream matching posts from `com.atproto.sync.subscribeRepos` until `stop` is set.

        `stream_url`: e.g. `wss://bsky.network/xrpc`, or a PDS's `ws://host:port/xrpc`.

        `on_page` must commit page and cursor; an exception it raises stops the stream and
        propagates: restart it later with the cursor saved in the database. Returns the last
        cursor handed over.
        """
        if not self.stream_url:
            raise SourceDisabled(f"bluesky source {self.key}: no stream_url to stream from")
        stored = BlueskyCursor.decode(cursor)
        with self._lock:
            self._committed = replace(self._committed, seq=stored.seq)
            if stored.since and not self._committed.since:
                self._committed = replace(self._committed, since=stored.since)
        self.streaming = True

        def deliver(batch: Decoded) -> None:
            on_page(self._stream_page(batch))
            if batch.seq is not None:
                self._commit(seq=batch.seq)

        try:
            self._stream_client().run(deliver, cursor=stored.seq, stop=stop)
            return self._with()
        finally:
            self.streaming = False

    def _stream_client(self) -> FirehoseStream:
        assert self.stream_url
        stream = FirehoseStream(self.stream_url, self.hashtags, sleep=self.sleep)
        for name, value in self.stream_options.items():  # batch_size, max_delay, backoff_base...
            setattr(stream, name, value)
        return stream

    def _stream_page(self, batch: Decoded) -> Page:
        # Firehose commits name their author by DID only: getProfiles (bluesky_profiles) fills
        # in handles and names, never holding a post back.
        cursor = self._with(seq=batch.seq) if batch.seq is not None else None
        return Page(
            posts=self.profiles.enrich(batch.posts, batch.identities),
            deleted=batch.deletions,
            cursor=cursor,
            requests=0,
            skipped=batch.skipped,
        )

    # --- threads and deletions --------------------------------------------------------------

    def replies(self, cases: list[Post]) -> Iterator[Page]:
        # `getPostThread` of the most recent cases (at most `max_thread_calls`).
        if not self.has_credentials:
            return
        mine = sorted(
            (c for c in cases if c.network == self.network and c.id.startswith("at://")),
            key=lambda c: c.created_at,
            reverse=True,
        )
        client = self._login() if mine else None
        for case in mine[: self.max_thread_calls]:
            params = models.AppBskyFeedGetPostThread.Params(
                uri=case.id, depth=self.thread_depth, parent_height=0
            )
            try:
                content = self._query(client, "app.bsky.feed.getPostThread", params)
            except _NotFound:
                continue  # deleted: recheck() reports it
            page = Page(cursor=None)
            thread = content.get("thread")
            replies = thread.get("replies") if isinstance(thread, dict) else None
            self._walk(replies, page)
            yield page

    def _walk(self, nodes: Any, page: Page) -> None:
        for node in nodes if isinstance(nodes, list) else []:
            if (
                not isinstance(node, dict)
                or node.get("$type") != "app.bsky.feed.defs#threadViewPost"
            ):
                continue  # notFoundPost, blockedPost
            try:
                page.posts.append(post_from_view(parse_view(node.get("post"))))
            except (ValueError, TypeError, KeyError, AttributeError, AtProtocolError) as exc:
                log.warning("bluesky %s: malformed reply skipped: %s", self.key, exc)
                page.skipped += 1
                continue
            self._walk(node.get("replies"), page)

    def recheck(self, posts: list[Post]) -> list[str]:
        # `getPosts` in batches of 25: uris not returned were deleted.
        uris = [p.id for p in posts if p.network == self.network and p.id.startswith("at://")]
        if not uris or not self.has_credentials:
            return []
        client = self._login()
        gone: list[str] = []
        for start in range(0, len(uris), 25):
            batch = uris[start : start + 25]
            content = self._query(
                client, "app.bsky.feed.getPosts", models.AppBskyFeedGetPosts.Params(uris=batch)
            )
            items = content.get("posts")
            if not isinstance(items, list):
                raise CollectorError("getPosts: malformed answer (no 'posts' list)")
            seen = {item.get("uri") for item in items if isinstance(item, dict)}
            gone += [uri for uri in batch if uri not in seen]
        return gone

    # --- HTTP -------------------------------------------------------------------------------

    def _login(self, retry: bool = True) -> Client:
        with self._login_lock:
            if self._client is not None:
                return self._client
            if not self.has_credentials:
                raise SourceDisabled(
                    f"bluesky source {self.key}: handle and app_password are not set"
                )
            client = bluesky_net.make_client(self.url, timeout=self.timeout)

            def login() -> None:
                bluesky_net.login(client, self.source.handle, self.source.app_password)

            try:
                if retry:
                    self.retry.call(lambda: _guard(login, "login"), f"bluesky login at {self.url}")
                else:
                    _guard(login, "login")
            except _NotFound as exc:
                raise CollectorError(f"bluesky login at {self.url} failed: {exc}") from exc
            self._client = client
            return client

    def _fetch_profiles(self, dids: list[str]) -> Any:
        """One `getProfiles` call (no retries: the resolver pauses after a failure).

        Through the logged-in client when the source has credentials, else through the public
        AppView at `appview_url` (null turns these lookups off).
        """
        if self.has_credentials:
            client = self._client
            if client is None:  # stream-only source: log in once here, without retrying
                if not self._login_lock.acquire(timeout=self.profile_timeout):
                    raise Transient("login in progress on another thread")
                try:
                    client = self._login(retry=False)
                finally:
                    self._login_lock.release()
        else:
            if self._appview is None:
                assert self.appview_url
                self._appview = bluesky_net.make_client(
                    self.appview_url, timeout=self.profile_timeout
                )
            client = self._appview
        params = models.AppBskyActorGetProfiles.Params(actors=dids)
        response = client.invoke_query(GET_PROFILES, params=params, timeout=self.profile_timeout)
        return response.content

    def _query(self, client: Client | None, nsid: str, params: Any) -> dict[str, Any]:
        assert client is not None

        def call() -> dict[str, Any]:
            response = client.invoke_query(nsid, params=params)
            if not isinstance(response.content, dict):
                raise Transient(f"{nsid}: answer is not JSON")
            return response.content

        return self.retry.call(lambda: _guard(call, nsid), f"bluesky {nsid}")

    def close(self) -> None:
        if self._client is not None:
            self._client.request.close()
            self._client = None
        if self._appview is not None:
            self._appview.request.close()
            self._appview = None


class _NotFound(CollectorError):
    """A 400 NotFound answer (e.g. the thread of a deleted post)."""


def _guard(fn: Callable[[], Any], what: str) -> Any:
    """Run one XRPC call, turning atproto/httpx errors into Transient or CollectorError."""
    try:
        return fn()
    except (atx.RequestErrorBase, httpx.HTTPError) as exc:
        failure = bluesky_net.classify(exc)
        if failure is None:
            raise
        raise _error(failure, what, exc) from exc


def _error(failure: Failure, what: str, exc: Exception) -> CollectorError:
    if failure.kind == RATE_LIMITED:
        return Transient(f"{what}: rate limited (429)", retry_after=failure.retry_after)
    if failure.kind == UNREACHABLE or (failure.transient and isinstance(exc, atx.NetworkError)):
        return Transient(f"{what}: {type(exc).__name__} {exc}")  # timeouts, transport, 502
    if failure.transient:
        return Transient(f"{what}: server error {exc}")
    if failure.kind == AUTH:
        return CollectorError(f"{what}: not authorized ({exc}); check handle and app_password")
    if failure.kind == NOT_FOUND:
        return _NotFound(f"{what}: not found")
    if failure.status == 400:
        return CollectorError(f"{what}: request refused ({exc})")
    return CollectorError(f"{what}: failed ({exc})")
