"""X direct messages through tweepy `create_direct_message` (user context: OAuth 1.0a keys)."""

from __future__ import annotations

from typing import Any

from bot.core.config_models import SubscriberConfig, XChannelConfig
from bot.core.errors import SourceDisabled
from digests.channels.base import Channel, SendResult
from digests.render import Digest, render_dm


class UnknownUser(LookupError):
    """No X account has this username."""


class XChannel(Channel):
    name = "x"
    max_length = 10_000  # X DM limit (characters)
    resend_after_crash = False  # a DM is sent at most once

    def __init__(self, config: XChannelConfig, *, client: Any | None = None, timeout: float = 30.0):
        keys = (
            config.consumer_key,
            config.consumer_secret,
            config.access_token,
            config.access_token_secret,
        )
        if client is None and not all(keys):
            raise SourceDisabled(
                "the X channel needs consumer_key, consumer_secret, access_token and access_token_secret"
            )
        self.config = config
        self.timeout = timeout
        self._client = client
        self._timed = False
        self._ids: dict[str, str] = {}

    @property
    def client(self) -> Any:
        if self._client is None:
            import tweepy

            c = self.config
            self._client = tweepy.Client(
                consumer_key=c.consumer_key,
                consumer_secret=c.consumer_secret,
                access_token=c.access_token,
                access_token_secret=c.access_token_secret,
                wait_on_rate_limit=False,
            )
        if not self._timed:
            # tweepy passes no timeout to requests: a stalled X API would block delivery forever.
            _with_timeout(self._client.session, self.timeout)
            self._timed = True
        return self._client

    def _user_id(self, username: str) -> str:
        username = username.strip().lstrip("@")
        if username.isdigit():
            return username
        if username not in self._ids:
            response = self.client.get_user(username=username, user_auth=True)
            if not response.data:
                raise UnknownUser(f"no X user @{username}")
            self._ids[username] = str(response.data.id)
        return self._ids[username]

    def send(self, digest: Digest, subscriber: SubscriberConfig) -> SendResult:
        import requests
        import tweepy

        if not subscriber.x:
            return SendResult.failure("subscriber has no X account", retryable=False)
        text = render_dm(digest, self.max_length)
        try:
            user_id = self._user_id(subscriber.x)
            response = self.client.create_direct_message(
                participant_id=user_id, text=text, user_auth=True
            )
        except UnknownUser as exc:  # not LookupError: a KeyError is no unknown user
            return SendResult.failure(str(exc), retryable=False)
        except (
            tweepy.TooManyRequests,
            tweepy.TwitterServerError,
            requests.RequestException,
        ) as exc:
            return SendResult.failure(f"X unavailable: {exc}")
        except tweepy.HTTPException as exc:
            return SendResult.failure(f"X refused the DM: {exc}", retryable=False)
        data = getattr(response, "data", None) or {}
        return SendResult.success(
            str(data.get("dm_event_id", "")) if isinstance(data, dict) else None
        )


def _with_timeout(session: Any, seconds: float) -> None:
    """Give every request of a requests Session a default timeout."""
    request = session.request

    def with_timeout(method: str, url: str, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", seconds)
        return request(method, url, **kwargs)

    session.request = with_timeout
