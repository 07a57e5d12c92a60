"""The channel interface: one `send` per digest, returning why it failed instead of a bool."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from bot.core.config_models import SubscriberConfig
from digests.render import Digest


@dataclass
class SendResult:
    ok: bool
    error: str | None = None
    retryable: bool = True  # False: retrying cannot help (bad address, rejected recipient)
    detail: str | None = None  # e.g. the file written, the remote id

    @classmethod
    def success(cls, detail: str | None = None) -> SendResult:
        return cls(ok=True, detail=detail)

    @classmethod
    def failure(cls, error: str, *, retryable: bool = True) -> SendResult:
        return cls(ok=False, error=error, retryable=retryable)


class Channel(ABC):
    """A delivery service. Subclasses declare their name, length limit and crash policy."""

    name: str = ""
    max_length: int | None = None  # characters a message may hold (None: no limit)
    # After a crash between "sending" and "sent", may the message be sent again?
    # Email: yes, with the same Message-ID (clients recognise the resend).
    # DMs: no — at most once, the delivery is marked failed ("outcome unknown").
    resend_after_crash: bool = True
    # Sends the e-mail of a digest: the delivery loop renders it beforehand, each distinct
    # content once (digest.rendered), instead of the channel rendering every message.
    sends_email: bool = False
    # Can a forked process send through a copy of this channel (it holds no connection or
    # session between sends)? Then a large flush shares its messages between processes
    # (delivery.workers); only channels that also resend after a crash, as a worker that
    # dies leaves its claimed messages `sending` until reconciled.
    fork_safe: bool = False

    @abstractmethod
    def send(self, digest: Digest, subscriber: SubscriberConfig) -> SendResult:
        """Deliver one rendered digest to one subscriber. Never raises for delivery errors."""

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Around the sends of one batch (the delivery loop's): a channel may hold something
        open for them (the outbox its folder). `send` works outside a batch too."""
        yield

    def close(self) -> None:
        """Release connections."""
