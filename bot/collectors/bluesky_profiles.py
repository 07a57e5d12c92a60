"""Authors of firehose posts: DID → handle and display name, cached, never blocking storage."""

from __future__ import annotations

import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bot.collectors.base import Clock, utc_now
from bot.collectors.bluesky_posts import INVALID_HANDLE
from bot.core.post import Author, Post
from bot.networks.failure import retry_after_seconds

log = logging.getLogger(__name__)

GET_PROFILES = "app.bsky.actor.getProfiles"
MAX_ACTORS = 25  # app.bsky.actor.getProfiles: `actors` maxLength

_DID = re.compile(r"did:[a-z]+:[A-Za-z0-9._:%-]{1,2040}")
_HANDLE = re.compile(r"([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z][A-Za-z0-9-]*")

# `fetch(dids)` makes one getProfiles call and returns its JSON answer (or raises).
Fetch = Callable[[list[str]], Any]


@dataclass(frozen=True)
class Profile:
    handle: str | None  # None: unknown or invalid (the DID stands in)
    name: str = ""


def clean_handle(value: Any) -> str | None:
    if not isinstance(value, str) or value == INVALID_HANDLE or len(value) > 253:
        return None
    return value.lower() if _HANDLE.fullmatch(value) else None


class ProfileCache:
    """A thread-safe LRU of DID → Profile whose entries expire."""

    def __init__(
        self,
        size: int = 10_000,
        ttl: timedelta = timedelta(hours=6),
        missing_ttl: timedelta = timedelta(minutes=30),
        clock: Clock = utc_now,
    ):
        self.size, self.ttl, self.missing_ttl, self.clock = size, ttl, missing_ttl, clock
        self._entries: OrderedDict[str, tuple[Profile, datetime]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, did: str) -> Profile | None:
        with self._lock:
            entry = self._entries.get(did)
            if entry is None:
                return None
            if entry[1] <= self.clock():
                del self._entries[did]
                return None
            self._entries.move_to_end(did)
            return entry[0]

    def put(self, did: str, profile: Profile, ttl: timedelta | None = None) -> None:
        expires = self.clock() + (ttl or self.ttl)
        with self._lock:
            self._entries[did] = (profile, expires)
            self._entries.move_to_end(did)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def learn_handle(self, did: str, handle: str | None) -> None:
        """An `#identity` event: refresh a cached author's handle (or forget it if unknown)."""
        with self._lock:
            entry = self._entries.get(did)
            if entry is None:
                return
            if handle is None:
                del self._entries[did]  # handle unknown now: look the author up again
            else:
                self._entries[did] = (Profile(handle, entry[0].name), entry[1])


class ProfileResolver:
    """Batch lookups of post authors through `fetch`, with a cache and a failure backoff.

    `enrich(posts, identities)` runs once per batch (never per frame): it fills in each post's
    `author.handle` and `author.name` from the cache, looking up unknown DIDs with
    `app.bsky.actor.getProfiles` (at most 25 actors a call). Unknown actors, absent from the
    answer, are remembered for `missing_ttl`. The firehose's `#identity` events refresh the
    handle of an author already cached (a handle change) and are ignored otherwise, so the
    cache holds only people who posted with a wanted hashtag.

    A lookup never fails the batch: on any error the posts keep the DID as handle, one warning
    is logged per outage, and lookups pause (`backoff_base` doubling up to `backoff_max`).
    """

    backoff_base = timedelta(minutes=1)
    backoff_max = timedelta(minutes=30)

    def __init__(
        self,
        fetch: Fetch | None,
        *,
        clock: Clock = utc_now,
        cache: ProfileCache | None = None,
        name: str = "bluesky",
    ):
        self.fetch = fetch  # None: lookups off (cache and #identity handles only)
        self.clock = clock
        self.cache = cache if cache is not None else ProfileCache(clock=clock)
        self.name = name
        self.calls = 0
        self.failures = 0
        self.paused_until: datetime | None = None

    def enrich(
        self, posts: list[Post], identities: Iterable[tuple[str, str | None]] = ()
    ) -> list[Post]:
        """Give `posts` their authors' handle and display name where known; never raises.

        Only the author changes. `post.url` keeps the DID built by the decoder on purpose: a
        DID URL is permanent while a handle URL breaks when the author changes handle (or
        points to someone else once the handle is reused); bsky.app accepts both and shows
        the current handle anyway. Stored URLs outlive digests (case lists, answers).
        """
        for did, handle in identities:
            self.cache.learn_handle(did, clean_handle(handle))
        if not posts:
            return posts
        try:
            profiles = self.resolve(p.author.id for p in posts)
        except Exception:  # noqa: BLE001 - enrichment must never cost a post
            log.exception("%s: profile enrichment failed; posts keep the author's DID", self.name)
            return posts
        for post in posts:
            profile = profiles.get(post.author.id)
            if profile is not None and (profile.handle or profile.name):
                did = post.author.id
                post.author = Author(id=did, handle=profile.handle or did, name=profile.name)
        return posts

    def resolve(self, dids: Iterable[str]) -> dict[str, Profile]:
        """Cached profiles of `dids`, plus lookups of the missing ones unless paused."""
        found: dict[str, Profile] = {}
        missing: list[str] = []
        for did in dict.fromkeys(dids):
            profile = self.cache.get(did)
            if profile is not None:
                found[did] = profile
            elif _DID.fullmatch(did):
                missing.append(did)
        if not missing or self.fetch is None or self._paused():
            return found
        for start in range(0, len(missing), MAX_ACTORS):
            chunk = missing[start : start + MAX_ACTORS]
            self.calls += 1
            try:
                found.update(self._lookup(chunk))
            except Exception as exc:  # noqa: BLE001 - any failure: keep DIDs, pause lookups
                self._failed(exc)
                break
            self._succeeded()
        return found

    def _lookup(self, chunk: list[str]) -> dict[str, Profile]:
        assert self.fetch is not None
        content = self.fetch(chunk)
        items = content.get("profiles") if isinstance(content, dict) else None
        if not isinstance(items, list):
            raise ValueError(f"{GET_PROFILES}: malformed answer (no 'profiles' list)")
        wanted = set(chunk)
        out: dict[str, Profile] = {}
        for item in items:
            if not isinstance(item, dict) or item.get("did") not in wanted:
                continue
            name = item.get("displayName")
            name = " ".join(name.split()) if isinstance(name, str) else ""
            out[item["did"]] = profile = Profile(clean_handle(item.get("handle")), name)
            self.cache.put(item["did"], profile)
        for did in wanted - out.keys():  # unknown, deleted or taken-down accounts
            self.cache.put(did, Profile(None), self.cache.missing_ttl)
        return out

    def _paused(self) -> bool:
        return self.paused_until is not None and self.clock() < self.paused_until

    def _failed(self, exc: Exception) -> None:
        self.failures += 1
        pause = self.backoff_base * 2 ** (self.failures - 1)
        response = getattr(exc, "response", None)  # atproto errors: honour a 429's Retry-After
        wait = retry_after_seconds(getattr(response, "headers", None))
        if wait:
            pause = max(pause, timedelta(seconds=wait))
        pause = min(pause, self.backoff_max)
        self.paused_until = self.clock() + pause
        message = "%s: %s failed (%s: %s); posts keep the author's DID, lookups paused %ds"
        args = (self.name, GET_PROFILES, type(exc).__name__, exc, pause.total_seconds())
        if self.failures == 1:
            log.warning(message, *args)  # once per outage
        else:
            log.info(message, *args)

    def _succeeded(self) -> None:
        if self.failures:
            log.info("%s: %s works again", self.name, GET_PROFILES)
        self.failures = 0
        self.paused_until = None
