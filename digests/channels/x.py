"""X direct messages through tweepy `create_direct_message` (user context: OAuth 1.0a keys)."""

from __future__ import annotations

from typing import Any

import requests
import tweepy

from bot.core.config_models import SubscriberConfig, XChannelConfig
from bot.core.errors import SourceDisabled
from bot.networks import x as x_net
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
        # A stalled X API must not block delivery forever: every request gets the timeout.
        if self._client is None:
            c = self.config
            self._client = x_net.make_client(
                consumer_key=c.consumer_key,
                consumer_secret=c.consumer_secret,
                access_token=c.access_token,
                access_token_secret=c.access_token_secret,
                timeout=self.timeout,
            )
        elif not self._timed:  # a client given to the constructor
            x_net.with_timeout(self._client.session, self.timeout)
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
        except (tweepy.HTTPException, requests.RequestException) as exc:
            failure = x_net.classify(exc)
            if failure is not None and failure.transient:
                return SendResult.failure(f"X unavailable: {exc}")
            return SendResult.failure(f"X refused the DM: {exc}", retryable=False)
        data = getattr(response, "data", None) or {}
        return SendResult.success(
            str(data.get("dm_event_id", "")) if isinstance(data, dict) else None
        )
