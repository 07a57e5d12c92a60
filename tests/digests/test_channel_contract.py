"""One contract for every delivery channel, with failures injected at the server.

Each channel runs with its real client library against a real local server: SMTP (aiosmtpd),
Mastodon (Mastodon.py -> FakeMastodonDM), Bluesky (atproto -> FakeBluesky), X (tweepy ->
FakeXServer), and the outbox (files). Whatever fails, `send` returns a SendResult and never
raises: a timeout, a rate limit, a server error or a refused connection is retryable, a
permanent refusal (bad recipient, validation error, DMs closed) is not; the error says which.
DMs are sent at most once (no resend after a crash), email may be resent (same Message-ID).

SMTP has no 429 or 5xx-as-transient: its transient replies are 4xx (421, 451) and its
permanent ones 5xx (550), so the scenarios map onto those codes.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import tweepy
from aiosmtpd.controller import Controller
from atproto import Client
from atproto_client.request import Request

from bot.core.config_models import (
    BlueskyChannelConfig,
    MastodonChannelConfig,
    OutboxConfig,
    SmtpConfig,
    SubscriberConfig,
    XChannelConfig,
)
from digests.channels.base import Channel, SendResult
from digests.channels.bluesky import BlueskyChannel
from digests.channels.mastodon import MastodonChannel
from digests.channels.outbox import OutboxChannel
from digests.channels.smtp import SmtpChannel
from digests.channels.x import XChannel
from digests.render import Digest, DigestItem
from tests.fakes.bluesky_server import FakeBluesky
from tests.fakes.mastodon_dm import FakeMastodonDM
from tests.fakes.smtp_server import Received, free_port
from tests.fakes.x_server import FakeXServer, RewriteAdapter

from .helpers import T0

TIMEOUT = 0.5  # seconds: every client's timeout, so a stalled server costs half a second
STALL = 3.0  # how long a "timeout" server holds its answer (far beyond TIMEOUT)

# What the error must mention, per scenario (case-insensitive).
WHY = {
    "timeout": r"timed? ?out",
    "rate_limited": r"429|rate.?limit",
    "server_error": r"500|451|server error|local error|cannot write",
    "unavailable": r"50[23]|421|unavailable",
    "connection_refused": r"refused",
    "refused_permanently": r"40[03]|422|550|MessagesDisabled|not permitted",
}
SCENARIOS = ["success", *WHY]
SUBSCRIBER = SubscriberConfig(
    name="Dr Derm",
    id="derm",
    language="fr",
    email="derm@example.org",
    mastodon="derm@other.example",
    bluesky="derm.example.test",
    x="dr_derm",
)


def make_digest() -> Digest:
    return Digest(
        subscriber_id="derm",
        subscriber_name="Dr Derm",
        language="fr",
        kind="digest",
        items=[
            DigestItem(
                post_id=i,
                url=f"https://medecins.example/@dr_a/{i}",
                text=f"Demande n°{i}: plaque annulaire du bras, photo ? #DocTocToc",
                author="Dr A (@dr_a@medecins.example)",
                network="mastodon",
                created_at=T0,
                specialty="dermatology",
                urgency="soon",
            )
            for i in (1, 2)
        ],
        more_url="https://bot.example.org/cases?specialty=dermatology",
        unsubscribe_url="https://bot.example.org/unsubscribe/abc.def",
        specialties="dermatology",
        message_key="derm.contract.digest.1",
        generated_at=T0,
    )


# --- one harness per channel: build it, break its server, see what arrived --------------------


@dataclass
class Harness:
    name: str
    email: bool  # an email channel (may be resent after a crash) or a DM channel
    build: Callable[[str], Channel]  # scenario -> channel, its server prepared for it
    delivered: Callable[[], int]  # messages the recipient got
    cleanup: list[Callable[[], None]] = field(default_factory=list)


class _SmtpHandler:
    """aiosmtpd handler with scripted replies to RCPT and DATA."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.rcpt_reply: str | None = None
        self.data_reply: str | None = None

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        if self.data_reply:
            return self.data_reply
        self.received.append(
            Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.content)
        )
        return "250 Message accepted for delivery"


def _silent_port(cleanup: list[Callable[[], None]]) -> int:
    """A port that accepts TCP connections and never says a word (no SMTP greeting)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    cleanup.append(sock.close)
    return sock.getsockname()[1]


def smtp_harness(tmp_path: Path) -> Harness:
    handler = _SmtpHandler()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    cleanup: list[Callable[[], None]] = [controller.stop]

    def build(scenario: str) -> Channel:
        target = port
        if scenario == "timeout":
            target = _silent_port(cleanup)
        elif scenario == "connection_refused":
            target = free_port()
        elif scenario == "rate_limited":
            handler.data_reply = "451 4.7.1 Rate limit exceeded, try again later"
        elif scenario == "server_error":
            handler.data_reply = "451 4.3.0 Local error in processing"
        elif scenario == "unavailable":
            handler.data_reply = "421 4.3.2 Service not available, closing transmission channel"
        elif scenario == "refused_permanently":
            handler.rcpt_reply = "550 5.1.1 <derm@example.org>: Recipient address rejected"
        config = SmtpConfig(
            host="127.0.0.1",
            port=target,
            security="none",
            sender="DocTocToc bot <bot@doctoctoc.example>",
            timeout=timedelta(seconds=TIMEOUT),
        )
        return SmtpChannel(config)

    return Harness("smtp", True, build, lambda: len(handler.received), cleanup)


def outbox_harness(tmp_path: Path) -> Harness:
    folder = tmp_path / "outbox"

    def build(scenario: str) -> Channel:
        if scenario == "server_error":  # the outbox cannot be written: a file is in the way
            folder.write_text("not a directory")
        return OutboxChannel(OutboxConfig(dir=str(folder)))

    def delivered() -> int:
        return len(list(folder.glob("*.eml"))) if folder.is_dir() else 0

    return Harness("outbox", True, build, delivered)


def mastodon_harness(tmp_path: Path) -> Harness:
    fake = FakeMastodonDM("med.example").start()
    path = "/api/v1/statuses"

    def build(scenario: str) -> Channel:
        url = fake.url
        if scenario == "timeout":
            fake.fail(path, status=None, delay=STALL)  # answers, but too late
        elif scenario == "rate_limited":
            fake.fail(path, status=429, body=b'{"error": "Too many requests"}')
        elif scenario == "server_error":
            fake.fail(path, status=500)
        elif scenario == "unavailable":
            fake.fail(path, status=503)
        elif scenario == "connection_refused":
            url = f"http://127.0.0.1:{free_port()}"
        elif scenario == "refused_permanently":
            body = b'{"error": "Validation failed: Text character limit of 500 exceeded"}'
            fake.fail(path, status=422, body=body)
        # The channel builds its own Mastodon.py client (ratelimit "throw", request_timeout).
        config = MastodonChannelConfig(url=url, access_token=fake.token)
        return MastodonChannel(config, timeout=TIMEOUT)

    def delivered() -> int:
        return len(fake.direct_to(SUBSCRIBER.mastodon or ""))

    return Harness("mastodon", False, build, delivered, [fake.close])


def bluesky_harness(tmp_path: Path) -> Harness:
    fake = FakeBluesky()
    send = "chat.bsky.convo.sendMessage"
    did = fake.chat.add_account("derm.example.test")

    def build(scenario: str) -> Channel:
        url = fake.url
        if scenario == "timeout":
            fake.fail(send, 500, delay=STALL)
        elif scenario == "rate_limited":
            fake.fail(
                send,
                429,
                headers={"ratelimit-limit": "100", "ratelimit-remaining": "0"},
                body={"error": "RateLimitExceeded", "message": "Rate Limit Exceeded"},
            )
        elif scenario == "server_error":
            fake.fail(send, 500)
        elif scenario == "unavailable":  # atproto raises 502 as a NetworkError with a response
            fake.fail(send, 502, body={"error": "UpstreamFailure", "message": "Bad Gateway"})
        elif scenario == "connection_refused":
            url = f"http://127.0.0.1:{free_port()}"
        elif scenario == "refused_permanently":
            fake.chat.disabled.add(did)  # getConvoForMembers: 400 MessagesDisabled
        config = BlueskyChannelConfig(url=url, handle=fake.handle, app_password=fake.password)
        return BlueskyChannel(config, client=Client(base_url=url, request=Request(timeout=TIMEOUT)))

    return Harness("bluesky", False, build, lambda: len(fake.chat.messages_to(did)), [fake.close])


def x_harness(tmp_path: Path) -> Harness:
    fake = FakeXServer().start()
    keys: dict[str, Any] = {
        "consumer_key": "ck",
        "consumer_secret": "cs",
        "access_token": "at",
        "access_token_secret": "ats",
    }
    uid = fake.dm.add_recipient("dr_derm")
    path = f"/2/dm_conversations/with/{uid}/messages"

    def build(scenario: str) -> Channel:
        session = fake.session()
        if scenario == "timeout":
            fake.fail("slow", path=path, delay=STALL)
        elif scenario == "rate_limited":
            fake.fail("429", path=path)
        elif scenario == "server_error":
            fake.fail("500", path=path)
        elif scenario == "unavailable":
            fake.fail("503", path=path)
        elif scenario == "connection_refused":
            session.mount(
                "https://api.twitter.com", RewriteAdapter(f"http://127.0.0.1:{free_port()}")
            )
        elif scenario == "refused_permanently":
            fake.dm.refusing.add(uid)  # 403: not permitted to send DMs to this user
        client = tweepy.Client(**keys, wait_on_rate_limit=False)
        client.session.close()
        client.session = session
        return XChannel(XChannelConfig(**keys), client=client, timeout=TIMEOUT)

    return Harness("x", False, build, lambda: len(fake.dm.sent_to(uid)), [fake.stop])


HARNESSES: dict[str, Callable[[Path], Harness]] = {
    "smtp": smtp_harness,
    "outbox": outbox_harness,
    "mastodon": mastodon_harness,
    "bluesky": bluesky_harness,
    "x": x_harness,
}
# The outbox only writes files: a full or unwritable disk is its one failure.
APPLICABLE = {name: SCENARIOS for name in HARNESSES} | {"outbox": ["success", "server_error"]}
CASES = [(name, scenario) for name in HARNESSES for scenario in APPLICABLE[name]]


@pytest.fixture
def harness(request, tmp_path) -> Iterator[Harness]:
    made = HARNESSES[request.param](tmp_path)
    yield made
    for close in reversed(made.cleanup):
        close()


@pytest.mark.parametrize(
    ("harness", "scenario"), CASES, indirect=["harness"], ids=[f"{n}-{s}" for n, s in CASES]
)
def test_channel_contract(harness: Harness, scenario: str):
    channel = harness.build(scenario)
    assert channel.name == harness.name
    # Crash policy: email may be resent (same Message-ID), a DM never (at most once).
    assert channel.resend_after_crash is harness.email
    if not harness.email:
        assert channel.max_length is not None and channel.max_length > 0

    result = channel.send(make_digest(), SUBSCRIBER)  # must not raise, whatever happens

    assert isinstance(result, SendResult)
    if scenario == "success":
        assert result.ok and result.error is None, result.error
        assert result.detail
        assert harness.delivered() == 1
        return
    assert not result.ok and result.error, result
    assert re.search(WHY[scenario], result.error, re.IGNORECASE), result.error
    assert result.retryable is (scenario != "refused_permanently"), result
    if scenario != "timeout":  # after a timeout the outcome is unknown; otherwise nothing arrived
        assert harness.delivered() == 0
