"""Mastodon through Mastodon.py: the client, and which failures are worth retrying."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import deque
from collections.abc import Callable
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import requests
from mastodon import (
    Mastodon,
    MastodonAPIError,
    MastodonNetworkError,
    MastodonNotFoundError,
    MastodonRatelimitError,
    MastodonUnauthorizedError,
)

from bot.networks.failure import (
    AUTH,
    NOT_FOUND,
    RATE_LIMITED,
    REFUSED,
    UNAVAILABLE,
    UNREACHABLE,
    Failure,
    retry_after_seconds,
)

log = logging.getLogger(__name__)
RATE_LIMIT = 300  # requests ...
RATE_WINDOW = 300.0  # ... per 5 minutes


class _Mastodon(Mastodon):
    """Mastodon.py without its availability probe before every timeline call.

    `timeline()` first asks `timeline_is_available`, which fetches `GET /api/v2/instance/`
    (once per client, again after every failure) only to emit a warning. Callers report a
    refused or missing timeline from the timeline's own answer (401/403/404), so the probe
    would be one wasted request per process and cycle.
    """

    def timeline_is_available(self, *args: Any, **kwargs: Any) -> bool:
        return True


def make_api(
    base_url: str,
    *,
    access_token: str | None,
    timeout: float,
    session: requests.Session | None = None,
    user_agent: str | None = None,
) -> Mastodon:
    """A Mastodon.py client that never sleeps by itself (`ratelimit_method="throw"`).

    Rate limits and server errors come back as exceptions for `classify`.
    """
    options: dict[str, Any] = {}
    if session is not None:
        options["session"] = session
    if user_agent is not None:
        options["user_agent"] = user_agent
    return _Mastodon(
        api_base_url=base_url,
        access_token=access_token,
        ratelimit_method="throw",
        request_timeout=timeout,
        **options,
    )


def status_code(exc: BaseException) -> int | None:
    """The HTTP status of a Mastodon.py error (`MastodonAPIError(message, status, ...)`)."""
    for arg in getattr(exc, "args", ()):
        if isinstance(arg, int):
            return arg
    return None


def classify(exc: BaseException) -> Failure | None:
    """What a Mastodon.py error means; None for anything else (a bug, not the network).

    429 and 5xx are transient, and so is an error without a status (an unreadable answer);
    other statuses are refused for good.
    """
    if isinstance(exc, MastodonNotFoundError):
        return Failure(NOT_FOUND, 404)
    if isinstance(exc, MastodonRatelimitError):
        return Failure(RATE_LIMITED)
    if isinstance(exc, MastodonNetworkError):  # connection errors, timeouts
        return Failure(UNREACHABLE)
    if isinstance(exc, MastodonUnauthorizedError):
        return Failure(AUTH, 401)
    if isinstance(exc, MastodonAPIError):
        status = status_code(exc)
        if status == 429:
            return Failure(RATE_LIMITED, status)
        if status is None or status >= 500:
            return Failure(UNAVAILABLE, status)
        return Failure(REFUSED, status)
    return None


class ReportingSession(requests.Session):
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


class RateLimiter:
    """Keeps one client under Mastodon's rate limit (300 requests per 5 minutes by default).

    Before every request it waits (with the injected `sleep`) while the sliding window of this
    client's own requests is full, and, after an answer with `X-RateLimit-Remaining: 0`, until
    the server's reset time. Thread-safe: stream connections send from their own threads.
    """

    def __init__(
        self,
        *,
        limit: int = RATE_LIMIT,
        window: float = RATE_WINDOW,
        clock: Callable[[], datetime],
        sleep: Callable[[float], None],
        name: str,
    ):
        self.limit, self.window = limit, window
        self.clock, self.sleep, self.name = clock, sleep, name
        self.requests = 0  # HTTP requests sent
        self._sent: deque[datetime] = deque()
        self._lock = threading.Lock()
        self._headers: Any = {}
        self._server_wait = 0.0

    def session(self) -> ReportingSession:
        """A requests session whose every request goes through this limiter."""
        return ReportingSession(self.before, self.after)

    def before(self) -> None:
        with self._lock:
            self._wait_for_budget()
            self._sent.append(self.clock())
            self.requests += 1
            self._headers = {}

    def _wait_for_budget(self) -> None:
        if self._server_wait > 0:
            wait, self._server_wait = min(self._server_wait, self.window), 0.0
            log.info("%s: server rate limit exhausted; waiting %.0fs", self.name, wait)
            self.sleep(wait)
        window = timedelta(seconds=self.window)
        while True:
            now = self.clock()
            while self._sent and self._sent[0] <= now - window:
                self._sent.popleft()
            if len(self._sent) < self.limit:
                break
            wait = (self._sent[0] + window - now).total_seconds()
            log.info(
                "%s: %d requests in %.0fs; waiting %.1fs",
                self.name,
                len(self._sent),
                self.window,
                wait,
            )
            self.sleep(max(wait, 0.01))

    def after(self, response: requests.Response) -> None:
        self._headers = response.headers
        if response.status_code != 429 and response.headers.get("X-RateLimit-Remaining") == "0":
            self._server_wait = self.wait_hint(rate_limited=True) or 0.0

    def wait_hint(self, *, rate_limited: bool) -> float | None:
        """Seconds the last answer asks us to wait (Retry-After; reset time only for 429s).

        Measured against the server's `Date` header when it sent one.
        """
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
