"""The collector interface, hashtag matching and the shared retry/backoff policy.

A collector turns one configured source into `Page`s of normalized `Post`s. The
pipeline stores each page and only then saves the page's cursor, in one transaction,
so a crash or an error never skips a post and a restart never duplicates one.
"""

from __future__ import annotations

import logging
import random
import re
import threading
import time
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

from bot.core.config_models import SourceConfig
from bot.core.errors import CollectorError
from bot.core.post import Post

log = logging.getLogger(__name__)
T = TypeVar("T")

Sleep = Callable[[float], None]
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Page:
    """Posts from one request, the cursor to save once they are committed, deletions seen."""

    posts: list[Post] = field(default_factory=list)
    cursor: str | None = None
    deleted: list[str] = field(default_factory=list)
    requests: int = 1
    skipped: int = 0
    reads: int | None = None  # posts the network counts as read (default: len(posts))


class Collector(ABC):
    """One configured source. Subclasses implement `pages` (and optionally the rest)."""

    network: str = ""

    def __init__(
        self,
        source: SourceConfig,
        hashtags: list[str],
        *,
        sleep: Sleep = time.sleep,
        clock: Clock = utc_now,
    ):
        self.source = source
        self.hashtags = list(source.hashtags or hashtags)
        self.sleep = sleep
        self.clock = clock
        self.retry = RetryPolicy(retries=source.retries, sleep=sleep)

    @property
    def key(self) -> str:
        """Identity of the source in the cursors table."""
        return self.source.key

    @abstractmethod
    def pages(self, cursor: str | None) -> Iterator[Page]:
        """Yield pages of new matching posts after `cursor`, oldest first where the API allows.

        Raise CollectorError (after the shared retries) when the source fails this cycle.
        """

    def replies(self, cases: list[Post]) -> Iterator[Page]:
        """Yield replies to the given stored cases (thread following). Default: none."""
        return iter(())

    def recheck(self, posts: list[Post]) -> list[str]:
        """Native ids among `posts` that were deleted at the source. Default: none."""
        return []

    def close(self) -> None:
        """Release connections."""


class StreamingCollector(Collector):
    """A collector that can also follow its source live: the scheduler runs `stream` in a thread.

    Polling (`pages`) still runs on its schedule; streaming is on when `streams` is true.
    """

    @property
    @abstractmethod
    def streams(self) -> bool:
        """Whether this source is configured to stream (Mastodon `stream`, Bluesky `stream_url`)."""

    @abstractmethod
    def stream(
        self, on_page: Callable[[Page], None], stop: threading.Event, cursor: str | None = None
    ) -> str | None:
        """Deliver pages to `on_page` until `stop` is set, starting after `cursor`.

        `on_page` commits each page with its cursor; an exception it raises stops the stream
        and propagates. Connection failures are retried inside; what still escapes ends the
        stream (the scheduler restarts it from the stored cursor). Returns the last cursor.
        """


# --- hashtags -------------------------------------------------------------------------

_TAG_IN_TEXT = re.compile(r"(?<![\w&/])#(\w+)", re.UNICODE)


def fold_tag(tag: str) -> str:
    """Case- and accent-insensitive form of a hashtag (without '#')."""
    text = unicodedata.normalize("NFKD", tag.lstrip("#").casefold())
    return "".join(c for c in text if not unicodedata.combining(c))


def tags_in_text(text: str) -> list[str]:
    return _TAG_IN_TEXT.findall(text or "")


def matching_tags(structured: Iterable[str] | None, text: str, wanted: Iterable[str]) -> list[str]:
    """The wanted hashtags a post carries: structured tags first, the text as a fallback.

    Exact tags only: `#DocTocTocs` does not match `DocTocToc`.
    """
    want = {fold_tag(w) for w in wanted}
    tags = [t for t in (structured or []) if t]
    found = [t.lstrip("#") for t in tags if fold_tag(t) in want]
    if not found:
        found = [t for t in tags_in_text(text) if fold_tag(t) in want]
    seen: set[str] = set()
    out = []
    for tag in found:
        if fold_tag(tag) not in seen:
            seen.add(fold_tag(tag))
            out.append(tag)
    return out


# --- retries ----------------------------------------------------------------------------


class Transient(CollectorError):
    """A failure worth retrying: network error, timeout, 429 or 5xx."""


@dataclass
class RetryPolicy:
    """Retry transient failures with exponential backoff, honouring Retry-After.

    Never a hot loop: every retry waits at least `base` seconds; a server's Retry-After
    or reset time is honoured up to `max_wait` (longer waits end the cycle instead).
    """

    retries: int = 3
    base: float = 2.0
    factor: float = 2.0
    max_wait: float = 300.0
    sleep: Sleep = time.sleep
    jitter: Callable[[], float] = field(default=lambda: random.uniform(0.0, 0.25))

    def call(self, fn: Callable[[], T], what: str = "request") -> T:
        attempt = 0
        while True:
            try:
                return fn()
            except Transient as exc:
                if attempt >= self.retries:
                    raise CollectorError(
                        f"{what} failed after {attempt + 1} attempts: {exc}"
                    ) from exc
                wait = self.delay(attempt, exc.retry_after)
                if wait > self.max_wait:
                    raise CollectorError(
                        f"{what}: server asks to wait {wait:.0f}s; giving up for this cycle"
                    ) from exc
                log.warning("%s failed (%s); retrying in %.1fs", what, exc, wait)
                self.sleep(wait)
                attempt += 1

    def delay(self, attempt: int, retry_after: float | None) -> float:
        backoff = self.base * (self.factor**attempt) * (1.0 + self.jitter())
        if retry_after is not None:
            return max(retry_after, self.base)
        return backoff
