"""X (Twitter) API v2 through tweepy: the client, and which failures are worth retrying."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import requests
import tweepy

from bot.networks.failure import (
    AUTH,
    BAD_ANSWER,
    RATE_LIMITED,
    REFUSED,
    UNAVAILABLE,
    UNREACHABLE,
    Failure,
    retry_after_seconds,
)

TWITTER_EPOCH_MS = 1288834974657


def make_client(
    *,
    timeout: float,
    session: requests.Session | None = None,
    return_type: type = tweepy.Response,
    **credentials: str | None,
) -> tweepy.Client:
    """A tweepy Client (bearer token or OAuth 1.0a keys) that never sleeps by itself.

    tweepy's `wait_on_rate_limit` retries at once when `x-rate-limit-reset` is missing (a hot
    loop), so it is off: callers read a 429 through `classify` and wait as they see fit.
    """
    client = tweepy.Client(**credentials, return_type=return_type, wait_on_rate_limit=False)
    if session is not None:
        client.session.close()
        client.session = session
    with_timeout(client.session, timeout)
    return client


def with_timeout(session: requests.Session, seconds: float) -> requests.Session:
    """tweepy passes no timeout to requests: give every request of its session one."""
    send = session.request

    def request(method: str, url: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", seconds)
        return send(method, url, **kwargs)

    session.request = request  # type: ignore[method-assign]
    return session


def classify(exc: BaseException, *, now: float | None = None) -> Failure | None:
    """What a tweepy/requests error means; None for anything else (a bug, not the network).

    `now` (epoch seconds) measures the wait until `x-rate-limit-reset`.
    """
    if isinstance(exc, tweepy.TooManyRequests):
        return Failure(RATE_LIMITED, 429, retry_after_seconds(exc.response.headers, now=now))
    if isinstance(exc, tweepy.TwitterServerError):
        return Failure(UNAVAILABLE, _status(exc))
    if isinstance(exc, requests.JSONDecodeError):  # a RequestException: test it first
        return Failure(BAD_ANSWER)
    if isinstance(exc, requests.RequestException):  # connection errors, timeouts
        return Failure(UNREACHABLE)
    if isinstance(exc, tweepy.Unauthorized | tweepy.Forbidden):
        return Failure(AUTH, _status(exc))
    if isinstance(exc, tweepy.HTTPException):
        return Failure(REFUSED, _status(exc))
    return None


def _status(exc: tweepy.HTTPException) -> int | None:
    return getattr(exc.response, "status_code", None)


def snowflake_time(tweet_id: int) -> datetime | None:
    """When a tweet id (a snowflake) was made; None for ids from before snowflakes."""
    ms = (tweet_id >> 22) + TWITTER_EPOCH_MS
    return datetime.fromtimestamp(ms / 1000, UTC) if tweet_id >= 1 << 32 else None
