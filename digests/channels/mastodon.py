"""Mastodon direct messages: `status_post(..., visibility="direct")` mentioning the recipient."""

from __future__ import annotations

import hashlib
from typing import Any

from mastodon import MastodonAPIError, MastodonNetworkError, MastodonRatelimitError

from bot.core.config_models import MastodonChannelConfig, SubscriberConfig
from bot.core.errors import SourceDisabled
from bot.networks import mastodon as mastodon_net
from digests.channels.base import Channel, SendResult
from digests.render import Digest, render_dm


class MastodonChannel(Channel):
    name = "mastodon"
    max_length = 500  # characters, the recipient's mention included
    resend_after_crash = False  # a DM is sent at most once

    def __init__(
        self, config: MastodonChannelConfig, *, api: Any | None = None, timeout: float = 30.0
    ):
        if not config.access_token and api is None:
            raise SourceDisabled("the Mastodon channel needs access_token")
        self.config = config
        self.timeout = timeout
        self._api = api

    @property
    def api(self) -> Any:
        if self._api is None:
            self._api = mastodon_net.make_api(
                self.config.url, access_token=self.config.access_token, timeout=self.timeout
            )
        return self._api

    def send(self, digest: Digest, subscriber: SubscriberConfig) -> SendResult:
        account = (subscriber.mastodon or "").strip()
        if not account:
            return SendResult.failure("subscriber has no Mastodon account", retryable=False)
        mention = account if account.startswith("@") else f"@{account}"
        text = render_dm(digest, self.max_length, prefix=f"{mention} ")
        try:
            # Idempotency-Key: a retry of a send whose answer was lost (timeout) returns the
            # status already created instead of posting it again (Mastodon keeps keys 1 hour).
            status = self.api.status_post(
                text,
                visibility="direct",
                language=digest.language,
                idempotency_key=_idempotency_key(digest),
            )
        except (MastodonRatelimitError, MastodonNetworkError) as exc:
            return SendResult.failure(f"Mastodon unavailable: {exc}")
        except MastodonAPIError as exc:
            failure = mastodon_net.classify(exc)
            retryable = failure is None or failure.transient
            verb = "unavailable" if retryable else "refused the DM"
            code = mastodon_net.status_code(exc)
            return SendResult.failure(f"Mastodon {verb} ({code}): {exc}", retryable=retryable)
        return SendResult.success(str(_get(status, "url") or _get(status, "id")))


def _idempotency_key(digest: Digest) -> str | None:
    if not digest.message_key:
        return None
    return "doctoctoc-" + hashlib.sha256(digest.message_key.encode()).hexdigest()[:32]


def _get(obj: Any, key: str) -> Any:
    return obj.get(key) if isinstance(obj, dict) else getattr(obj, key, None)
