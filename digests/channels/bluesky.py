"""Bluesky chat DMs through atproto: `with_bsky_chat_proxy()`, getConvoForMembers, sendMessage."""

from __future__ import annotations

from typing import Any

import httpx
from atproto_client.exceptions import RequestErrorBase

from bot.core.config_models import BlueskyChannelConfig, SubscriberConfig
from bot.core.errors import SourceDisabled
from bot.networks import bluesky as bluesky_net
from digests.channels.base import Channel, SendResult
from digests.render import Digest, render_dm


class BlueskyChannel(Channel):
    name = "bluesky"
    max_length = 1000  # Bluesky chat message limit (characters)
    resend_after_crash = False  # a DM is sent at most once

    def __init__(self, config: BlueskyChannelConfig, *, client: Any | None = None):
        if client is None and not (config.handle and config.app_password):
            raise SourceDisabled("the Bluesky channel needs handle and app_password")
        self.config = config
        self._client = client
        self._chat: Any | None = None
        self._logged_in = False
        self._dids: dict[str, str] = {}

    def _connect(self) -> tuple[Any, Any]:
        if self._client is None:
            self._client = bluesky_net.make_client(self.config.url)
        # Log in once per channel (atproto refreshes the session itself). `me` is no sign of a
        # session: it stays None when the profile is not fetched, and logging in on every send
        # would run into createSession's rate limit.
        if not self._logged_in and self.config.handle and self.config.app_password:
            bluesky_net.login(self._client, self.config.handle, self.config.app_password)
        self._logged_in = True
        if self._chat is None:
            self._chat = self._client.with_bsky_chat_proxy()
        return self._client, self._chat

    def _did(self, client: Any, handle: str) -> str:
        handle = handle.strip().lstrip("@")
        if handle.startswith("did:"):
            return handle
        if handle not in self._dids:
            self._dids[handle] = client.com.atproto.identity.resolve_handle({"handle": handle}).did
        return self._dids[handle]

    def send(self, digest: Digest, subscriber: SubscriberConfig) -> SendResult:
        if not subscriber.bluesky:
            return SendResult.failure("subscriber has no Bluesky handle", retryable=False)
        text = render_dm(digest, self.max_length)
        try:
            client, chat = self._connect()
            did = self._did(client, subscriber.bluesky)
            convo = chat.chat.bsky.convo.get_convo_for_members({"members": [did]}).convo
            sent = chat.chat.bsky.convo.send_message(
                {"convo_id": convo.id, "message": {"text": text}}
            )
        except httpx.HTTPError as exc:  # transport errors atproto does not wrap
            return SendResult.failure(f"Bluesky unreachable: {_describe(exc)}")
        except RequestErrorBase as exc:
            code = bluesky_net.status_code(exc)
            failure = bluesky_net.classify(exc)
            if code is None or failure is None:  # transport error, no answer
                return SendResult.failure(f"Bluesky unreachable: {_describe(exc)}")
            retryable = failure.transient  # by the HTTP status, whatever atproto's class
            verb = "unavailable" if retryable else "refused the DM"
            return SendResult.failure(
                f"Bluesky {verb} ({code}): {_describe(exc)}", retryable=retryable
            )
        return SendResult.success(getattr(sent, "id", None))


def _describe(exc: BaseException) -> str:
    """The error and its cause: atproto's transport errors carry no message of their own."""
    text = str(exc).strip()
    cause = exc.__cause__ or (None if text else exc.__context__)
    text = text or type(exc).__name__
    if cause is not None and cause is not exc:
        text = f"{text} ({type(cause).__name__}: {cause})"
    return text
