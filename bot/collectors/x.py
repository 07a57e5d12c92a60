"""X (Twitter) collector: API v2 recent search, reply search and deletion lookups.

The cursor is the newest tweet id stored (`since_id`); pages of a run carry no cursor and a
last empty page moves it, once every page is stored (X pages from the newest to older ones).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import requests
import tweepy

from bot.collectors.base import Collector, Page, Transient, matching_tags, tags_in_text
from bot.core.config_models import SourceConfig
from bot.core.errors import CollectorError, SourceDisabled
from bot.core.post import Author, Media, Post, parse_time
from bot.networks import x as x_net
from bot.networks.failure import AUTH, BAD_ANSWER, RATE_LIMITED, UNAVAILABLE, Failure

log = logging.getLogger(__name__)

EXPANSIONS = ["author_id", "attachments.media_keys", "referenced_tweets.id"]
TWEET_FIELDS = [
    "created_at", "lang", "conversation_id", "entities", "referenced_tweets",
    "in_reply_to_user_id", "edit_history_tweet_ids", "author_id", "attachments",
]  # fmt: skip
FIELDS: dict[str, Any] = {
    "expansions": EXPANSIONS,
    "tweet_fields": TWEET_FIELDS,
    "user_fields": ["username", "name"],
    "media_fields": ["url", "alt_text", "preview_image_url", "type"],
}
MAX_RESULTS = 100  # search: 10..100 per request; lookup: 1..100 ids
MIN_SEARCH_RESULTS = 10
QUERY_LIMIT = 512  # characters in a search query (Basic/Pro access)
REPLY_CALLS = 10
SEARCH_WINDOW = timedelta(days=7)
GONE = (
    "https://api.twitter.com/2/problems/resource-not-found",
    "https://api.twitter.com/2/problems/not-authorized-for-resource",
)


class _Malformed(ValueError):
    pass


class XCollector(Collector):
    network = "x"

    def __init__(
        self,
        source: SourceConfig,
        hashtags: list[str],
        *,
        reads_used: Callable[[], int] | None = None,
        session: requests.Session | None = None,
        page_size: int = MAX_RESULTS,
        reply_calls: int = REPLY_CALLS,
        **kwargs: Any,
    ):
        super().__init__(source, hashtags, **kwargs)
        if not source.bearer_token:
            raise SourceDisabled(f"X source {source.key} needs 'bearer_token'")
        self.client = x_net.make_client(
            bearer_token=source.bearer_token,
            return_type=dict,
            session=session,
            timeout=source.timeout.total_seconds(),  # every HTTP request of the session
        )
        self.query = "(" + " OR ".join(f"#{t}" for t in self.hashtags) + ") -is:retweet"
        self.page_size = max(MIN_SEARCH_RESULTS, min(MAX_RESULTS, page_size))
        self.reply_calls = reply_calls
        self._reads_used = reads_used
        self._month = ""
        self._baseline: int | None = None
        self._reads = 0  # tweets read since the baseline
        self._attempts = 0  # HTTP requests not yet reported in a page
        self._reply_since: dict[str, int] = {}  # conversation -> newest reply id seen

    # --- the three stages ----------------------------------------------------------------

    def pages(self, cursor: str | None) -> Iterator[Page]:
        self._attempts = 0
        if self._reads_used is not None:
            self._baseline, self._reads = None, 0
        newest = _as_id(cursor)
        since = self._since(newest)
        search = self._searcher("search")
        window: dict[str, str] = {}
        if newest is None and self.source.backfill:  # first run: only as far back as asked
            start = self.clock() - min(self.source.backfill, SEARCH_WINDOW - timedelta(minutes=1))
            window["start_time"] = start.strftime("%Y-%m-%dT%H:%M:%SZ")
        # The cursor moves only in the last page, once every page is stored: a crash mid-run
        # re-reads (duplicates are merged by key), it never skips.
        for response in tweepy.Paginator(search, self.query, since_id=since, **window, **FIELDS):
            page = self._page(response, self._matches)
            newest = max(newest or 0, _newest(response)) or None
            yield page
        if newest is not None and str(newest) != cursor:
            yield Page(cursor=str(newest), requests=0)

    def _matches(self, post: Post) -> bool:
        return bool(matching_tags(post.hashtags, post.text, self.hashtags))

    def replies(self, cases: list[Post]) -> Iterator[Page]:
        # `conversation_id:` searches, several conversations OR-ed in one query, at most
        # `reply_calls` requests a cycle, each counted against the read budget.
        recent = sorted(cases, key=lambda p: p.created_at, reverse=True)
        roots = list(dict.fromkeys(r for r in (p.key or p.id for p in recent) if r.isdigit()))
        calls = self.reply_calls
        search = self._searcher("replies")
        for batch in _batches(roots):
            if calls <= 0:
                log.info("X: reply search limit (%d requests) reached this cycle", self.reply_calls)
                return
            since = self._since(min(self._reply_since.get(root, int(root)) for root in batch))
            query = " OR ".join(f"conversation_id:{root}" for root in batch)
            newest, complete = 0, False
            for response in tweepy.Paginator(search, query, since_id=since, limit=calls, **FIELDS):
                calls -= 1
                complete = not (response.get("meta") or {}).get("next_token")
                newest = max(newest, _newest(response))
                yield self._page(response, lambda post, roots=batch: _is_reply(post, roots))
            if complete and newest:
                for root in batch:
                    self._reply_since[root] = max(newest, self._reply_since.get(root, 0))

    def recheck(self, posts: list[Post]) -> list[str]:
        # `get_tweets` in batches of 100: ids absent from the answer or reported gone
        # (resource-not-found, or no longer visible: protected, suspended) were deleted.
        ids = list(dict.fromkeys(p.id for p in posts if p.id.isdigit()))
        gone: list[str] = []
        start = 0
        while start < len(ids):
            batch = ids[start : start + self._reserve(MAX_RESULTS, 1)]
            start += len(batch)
            response = self._call("lookup", lambda b=batch: self.client.get_tweets(ids=b))
            data, errors = response.get("data"), response.get("errors")
            if not isinstance(data, list) and not isinstance(errors, list):
                raise CollectorError("X lookup returned neither data nor errors")
            found = {t.get("id") for t in data or [] if isinstance(t, dict)}
            self._reads += len(data or [])
            kept = {
                e.get("resource_id")
                for e in errors or []
                if isinstance(e, dict) and e.get("type") not in GONE
            }
            gone += [i for i in batch if i not in found and i not in kept]
        self._attempts = 0
        return gone

    def close(self) -> None:
        self.client.session.close()

    # --- requests --------------------------------------------------------------------------

    def _searcher(self, what: str) -> Callable[..., dict[str, Any]]:
        """`search_recent_tweets` with budget, retries and read counting, for tweepy's Paginator.

        The Paginator reads the method's `__name__` to pick `next_token` over `pagination_token`.
        """
        method = self.client.search_recent_tweets

        def search_recent_tweets(query: str, **params: Any) -> dict[str, Any]:
            params["max_results"] = self._reserve(self.page_size, MIN_SEARCH_RESULTS)
            response = self._call(what, lambda: _well_formed(method(query, **params)))
            data = response.get("data")
            self._reads += len(data) if isinstance(data, list) else 0
            return response

        return search_recent_tweets

    def _call(self, what: str, request: Callable[[], Any]) -> dict[str, Any]:
        # Retries go through the shared RetryPolicy: it honours a 429's reset time, else backs
        # off exponentially, and gives up after `source.retries`.
        def attempt() -> dict[str, Any]:
            self._attempts += 1
            try:
                response = request()
            except (tweepy.TweepyException, requests.RequestException) as exc:
                failure = x_net.classify(exc, now=self.clock().timestamp())
                if failure is None:
                    raise
                raise self._error(failure, what, exc) from exc
            if not isinstance(response, dict):
                raise Transient("X answered with JSON that is not an object")
            return response

        return self.retry.call(attempt, what=f"X {what}")

    def _error(self, failure: Failure, what: str, exc: Exception) -> CollectorError:
        if failure.kind == RATE_LIMITED:
            return Transient("X rate limit reached (429)", retry_after=failure.retry_after)
        if failure.kind == UNAVAILABLE:
            return Transient(f"X server error: {exc}")
        if failure.kind == BAD_ANSWER:
            return Transient("X answered with something that is not JSON")
        if failure.transient:
            return Transient(f"X unreachable: {exc}")
        if failure.kind == AUTH:
            return CollectorError(f"X refused the bearer token of {self.key}: {exc}")
        return CollectorError(f"X {what} request failed: {exc}")

    def _reserve(self, wanted: int, minimum: int) -> int:
        """How many tweets the next request may return without exceeding the monthly budget.

        X bills every tweet returned (matching or not, lookups included): `Page.reads` counts
        them for the pipeline to store. The reads used are the larger of the stored count
        (`reads_used`) and this run's baseline plus what this collector read since.
        """
        budget = self.source.monthly_read_budget
        if budget is None:
            return wanted
        used = self._used()
        if budget - used < minimum:
            raise CollectorError(
                f"monthly read budget of {budget} reached: X stops until next month "
                f"({used} tweets read this month)"
            )
        return min(wanted, budget - used)

    def _used(self) -> int:
        month = self.clock().strftime("%Y-%m")
        if month != self._month:
            self._month, self._baseline, self._reads = month, None, 0
        stored = self._reads_used() if self._reads_used is not None else 0
        if self._baseline is None:
            self._baseline = stored
        return max(stored, self._baseline + self._reads)

    def _since(self, tweet_id: int | None) -> str | None:
        if not tweet_id:
            return None
        when = x_net.snowflake_time(tweet_id)
        if when is not None and when < self.clock() - SEARCH_WINDOW + timedelta(minutes=5):
            # X answers 400 to a since_id older than its 7-day search window: read it all again.
            log.warning(
                "X: cursor %s is older than the 7-day search window; reading it all", tweet_id
            )
            return None
        return str(tweet_id)

    # --- normalization -----------------------------------------------------------------------

    def _page(self, response: dict[str, Any], keep: Callable[[Post], bool]) -> Page:
        data = response.get("data") or []
        if not isinstance(data, list):
            raise CollectorError(f"X returned malformed data ({type(data).__name__}, not a list)")
        includes = response.get("includes")
        includes = includes if isinstance(includes, dict) else {}
        users = _index(includes.get("users"), "id")
        media = _index(includes.get("media"), "media_key")
        page = Page(requests=self._attempts, reads=len(data))
        self._attempts = 0
        for item in reversed(data):  # oldest first
            try:
                post = self._post(item, users, media)
            except (_Malformed, ValueError, TypeError, KeyError, AttributeError) as exc:
                # One bad item never blocks its page, whatever shape it has.
                log.warning("X: skipped malformed tweet: %.200s", exc)
                page.skipped += 1
                continue
            if keep(post):
                page.posts.append(post)
        return page

    def _post(self, item: Any, users: dict[str, dict], media: dict[str, dict]) -> Post:
        if not isinstance(item, dict):
            raise _Malformed(f"not an object: {item!r:.80}")
        tid = _text_id(item.get("id"), "id")
        text = item.get("text")
        if not isinstance(text, str):
            raise _Malformed(f"tweet {tid}: text is {type(text).__name__}")
        try:
            created = parse_time(item.get("created_at"))
        except ValueError as exc:
            raise _Malformed(f"tweet {tid}: bad created_at {item.get('created_at')!r}") from exc
        author_id = _text_id(item.get("author_id"), f"tweet {tid}: author_id")
        # An edit is a new tweet id whose edit history starts with the original id: keyed by
        # that first id, the edit updates the stored post.
        history = item.get("edit_history_tweet_ids") or [tid]
        if not isinstance(history, list) or not history:
            raise _Malformed(f"tweet {tid}: bad edit_history_tweet_ids")
        key = _text_id(history[0], f"tweet {tid}: edit_history_tweet_ids")
        edited_at = created if key != tid else None
        if edited_at is not None:
            created = x_net.snowflake_time(int(key)) or created
        user = users.get(author_id, {})
        username = user.get("username") if isinstance(user.get("username"), str) else ""
        attachments = item.get("attachments")
        keys = attachments.get("media_keys") if isinstance(attachments, dict) else None
        conversation = item.get("conversation_id")
        lang = item.get("lang")
        return Post(
            network="x",
            id=tid,
            key=key,
            url=f"https://x.com/{username or 'i/web'}/status/{tid}",
            author=Author(id=author_id, handle=username, name=str(user.get("name") or "")),
            text=text,
            lang=lang if isinstance(lang, str) and lang != "und" else None,
            created_at=created,
            edited_at=edited_at,
            hashtags=_hashtags(item.get("entities")) or tags_in_text(text),
            media=[m for k in keys or [] if (m := _media(media.get(k))) is not None],
            reply_to=_replied_to(item.get("referenced_tweets")),
            thread_root=(
                conversation
                if isinstance(conversation, str) and conversation not in (tid, key)
                else None
            ),
            raw=item,
        )


# --- helpers -------------------------------------------------------------------------------


def _as_id(value: str | None) -> int | None:
    if value is None:
        return None
    if not value.isdigit():
        log.warning("X: ignoring a cursor that is not a tweet id: %r", value)
        return None
    return int(value)


def _text_id(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.isdigit():
        raise _Malformed(f"{what} is {value!r:.40}, not a numeric string")
    return value


def _well_formed(response: Any) -> Any:
    """A search answer whose `meta` or `data` is broken could hide pages: retry it instead."""
    if isinstance(response, dict) and not (
        isinstance(response.get("meta"), dict) and isinstance(response.get("data", []), list)
    ):
        raise Transient("X returned a malformed search response (data or meta)")
    return response


def _newest(response: dict[str, Any]) -> int:
    meta = response.get("meta")
    newest = meta.get("newest_id") if isinstance(meta, dict) else None
    ids = [t.get("id") for t in response.get("data") or [] if isinstance(t, dict)]
    return max((int(i) for i in [newest, *ids] if isinstance(i, str) and i.isdigit()), default=0)


def _index(items: Any, field: str) -> dict[str, dict]:
    if not isinstance(items, list):
        return {}
    return {i[field]: i for i in items if isinstance(i, dict) and isinstance(i.get(field), str)}


def _media(item: dict | None) -> Media | None:
    if item is None:
        return None
    url = item.get("url") or item.get("preview_image_url")
    if not isinstance(url, str) or not url:
        return None
    alt = item.get("alt_text")
    return Media(url=url, alt=alt if isinstance(alt, str) else "")


def _hashtags(entities: Any) -> list[str]:
    tags = entities.get("hashtags") if isinstance(entities, dict) else None
    return [t["tag"] for t in tags or [] if isinstance(t, dict) and isinstance(t.get("tag"), str)]


def _replied_to(refs: Any) -> str | None:
    for ref in refs if isinstance(refs, list) else []:
        if isinstance(ref, dict) and ref.get("type") == "replied_to" and ref.get("id"):
            return str(ref["id"])
    return None


def _is_reply(post: Post, roots: list[str]) -> bool:
    return post.reply_to is not None and post.key not in roots


def _batches(roots: list[str]) -> Iterator[list[str]]:
    """Conversation ids grouped so that each OR-ed query stays under X's length limit."""
    batch: list[str] = []
    length = 0
    for root in roots:
        term = len(f"conversation_id:{root}") + 4
        if batch and length + term > QUERY_LIMIT:
            yield batch
            batch, length = [], 0
        batch.append(root)
        length += term
    if batch:
        yield batch
