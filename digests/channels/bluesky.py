"""Bluesky chat DMs through atproto: `with_bsky_chat_proxy()`, getConvoForMembers, sendMessage."""

from __future__ import annotations

from typing import Any

from bot.config_models import BlueskyChannelConfig, SubscriberConfig
from bot.errors import SourceDisabled
from digests.render import Digest, render_dm

from .base import Channel, SendResult


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
        self._dids: dict[str, str] = {}

    def _connect(self) -> tuple[Any, Any]:
        if self._client is None:
            from atproto import Client

            self._client = Client(base_url=self.config.url)
        if getattr(self._client, "me", None) is None and self.config.handle:
            self._client.login(self.config.handle, self.config.app_password)
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
        from atproto_client.exceptions import NetworkError, RequestException

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
        except NetworkError as exc:
            return SendResult.failure(f"Bluesky unreachable: {exc}")
        except RequestException as exc:
            code = getattr(getattr(exc, "response", None), "status_code", None)
            retryable = code is None or code >= 500 or code == 429
            return SendResult.failure(
                f"Bluesky refused the DM ({code}): {exc}", retryable=retryable
            )
        return SendResult.success(getattr(sent, "id", None))
