"""DM channels with their real client libraries against the local fake servers.

Mastodon.py talks to `FakeMastodonDM` (`POST /api/v1/statuses`), atproto's Client to
`FakeBluesky` (createSession, resolveHandle, chat.bsky.convo.*), tweepy's Client to
`FakeXServer` (user lookup, DMs with OAuth 1.0a user context) through its session adapter.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
import tweepy
from atproto import Client
from atproto_client.request import Request
from mastodon import Mastodon
from sqlalchemy import select

from bot.core.config import load_config
from bot.core.config_models import (
    BlueskyChannelConfig,
    MastodonChannelConfig,
    SubscriberConfig,
    XChannelConfig,
)
from bot.pipeline import Pipeline
from bot.storage.models import DeliveryRow
from digests.channels import build_channels
from digests.channels.base import Channel
from digests.channels.bluesky import BlueskyChannel
from digests.channels.mastodon import MastodonChannel
from digests.channels.x import XChannel
from digests.i18n import strings
from digests.render import Digest, DigestItem
from tests.fakes.bluesky_chat import CHAT_PROXY
from tests.fakes.bluesky_server import FakeBluesky
from tests.fakes.mastodon_dm import FakeMastodonDM
from tests.fakes.x_server import FakeXServer

from . import helpers
from .helpers import T0, add_request, make_config

TIMEOUT = 1.0
X_KEYS = {
    "consumer_key": "ck-test",
    "consumer_secret": "cs-test",
    "access_token": "at-test",
    "access_token_secret": "ats-test",
}
DERM_MASTODON = "derm@other.example"
DERM_BLUESKY = "derm.example.test"
DERM_X = "dr_derm"
MORE_URL = "https://bot.example.org/cases?specialty=dermatology"


# --- fakes and channels built on the real client libraries -------------------------------


@pytest.fixture
def mastodon() -> Iterator[FakeMastodonDM]:
    with FakeMastodonDM("med.example") as fake:
        yield fake


@pytest.fixture
def bluesky() -> Iterator[FakeBluesky]:
    fake = FakeBluesky()
    yield fake
    fake.close()


@pytest.fixture
def x() -> Iterator[FakeXServer]:
    fake = FakeXServer().start()
    yield fake
    fake.stop()


def mastodon_channel(fake: FakeMastodonDM) -> MastodonChannel:
    api = Mastodon(
        access_token=fake.token,
        api_base_url=fake.url,
        request_timeout=TIMEOUT,
        ratelimit_method="throw",
    )
    return MastodonChannel(MastodonChannelConfig(url=fake.url), api=api)


def bluesky_channel(fake: FakeBluesky, url: str | None = None) -> BlueskyChannel:
    config = BlueskyChannelConfig(
        url=url or fake.url, handle=fake.handle, app_password=fake.password
    )
    client = Client(base_url=config.url, request=Request(timeout=TIMEOUT))
    return BlueskyChannel(config, client=client)


def x_client(session) -> tweepy.Client:
    client = tweepy.Client(**X_KEYS, wait_on_rate_limit=False)
    client.session.close()
    client.session = session
    return client


def x_channel(fake: FakeXServer) -> XChannel:
    return XChannel(XChannelConfig(**X_KEYS), client=x_client(fake.session()), timeout=TIMEOUT)


def subscriber(**accounts: str) -> SubscriberConfig:
    return SubscriberConfig(name="Dr Derm", id="derm", language="fr", **accounts)


def item(i: int, text: str | None = None, urgency: str = "soon") -> DigestItem:
    return DigestItem(
        post_id=i,
        url=f"https://medecins.example/@dr_a/{i}",
        text=text or f"Demande n°{i}: plaque érythémateuse annulaire du bras #DocTocToc",
        author="Dr A (@dr_a@medecins.example)",
        network="mastodon",
        created_at=T0,
        specialty="dermatology",
        urgency=urgency,
    )


def digest(items: list[DigestItem], kind: str = "digest") -> Digest:
    return Digest(
        subscriber_id="derm",
        subscriber_name="Dr Derm",
        language="fr",
        kind=kind,
        items=items,
        more_url=MORE_URL,
        unsubscribe_url="https://bot.example.org/unsubscribe/abc.def",
        specialties="dermatology",
        message_key="derm.dm.digest.1",
        generated_at=T0,
    )


# --- through the pipeline's delivery (routing, outbox rows, flush) --------------------------

SECRETS = {
    "MASTODON_TOKEN": "bot-token",
    "BLUESKY_APP_PASSWORD": "app-pass-1234",
    **{f"X_{k.upper()}": v for k, v in X_KEYS.items()},
}


@pytest.fixture(autouse=True)
def secrets_env(monkeypatch):
    """Secrets are `${ENV}` references in config: give make_config's loader these too."""

    def load(path, env=None):
        return load_config(path, env={**(env or {}), **SECRETS})

    monkeypatch.setattr(helpers, "load_config", load)


SUBSCRIBERS = f"""\
- name: Dr Derm
  id: derm
  language: fr
  mastodon: "{DERM_MASTODON}"
  bluesky: {DERM_BLUESKY}
  x: "@{DERM_X}"
  deliver_by: [mastodon, bluesky, x]
  specialties: [dermatology]
  digest: daily 07:30
  immediate: urgent
"""


def test_pipeline_delivers_each_digest_once_by_every_dm_channel(tmp_path, db, mastodon, bluesky, x):
    # Mastodon and Bluesky channels are built from config by build_channels (production path,
    # their own Mastodon / atproto clients); X needs the fake's session (tweepy's host is fixed).
    x_keys = ", ".join(f'{k}: "${{X_{k.upper()}}}"' for k in X_KEYS)
    channels_yaml = f"""\
mastodon: {{url: "{mastodon.url}", access_token: "${{MASTODON_TOKEN}}"}}
bluesky: {{url: "{bluesky.url}", handle: {bluesky.handle}, app_password: "${{BLUESKY_APP_PASSWORD}}"}}
x: {{{x_keys}}}
"""
    loaded = make_config(tmp_path, SUBSCRIBERS, channels_yaml)
    channels: dict[str, Channel] = build_channels(loaded)
    assert set(channels) == {"mastodon", "bluesky", "x"}
    channels["x"] = x_channel(x)
    derm_did = bluesky.chat.add_account(DERM_BLUESKY)
    derm_x = x.dm.add_recipient(DERM_X)
    add_request(db, "1", "Plaque annulaire du bras, photo ? #DocTocToc", "dermatology", "soon")
    add_request(db, "2", "Lésion pigmentée qui saigne #DocTocToc", "dermatology", "urgent")
    urls = ["https://medecins.example/@dr_a/1", "https://medecins.example/@dr_a/2"]

    def run():
        pipeline = Pipeline(
            loaded, db, classifier=object(), collectors=[], clock=lambda: T0, channels=channels
        )
        return pipeline.cycle(collect=False, force_flush=True)

    first = run()
    # One alert (the urgent request) and one digest, by each of the three channels.
    assert (
        sorted(c for _, c, _, _ in first.flushed.sent)
        == ["bluesky"] * 2 + ["mastodon"] * 2 + ["x"] * 2
    )
    with db.session() as s:
        rows = s.scalars(select(DeliveryRow)).all()
        assert {r.status for r in rows} == {"sent"} and len(rows) == 6

    toots = mastodon.direct_to(DERM_MASTODON)
    assert len(toots) == 2 and len(mastodon.posted) == 2
    for posted in mastodon.posted:
        text = posted["params"]["status"]
        assert text.startswith(f"@{DERM_MASTODON} ") and len(text) <= 500
        assert posted["params"]["visibility"] == "direct" and posted["params"]["language"] == "fr"
        assert posted["status"]["visibility"] == "direct"
    mastodon_text = " ".join(p["params"]["status"] for p in mastodon.posted)

    chats = bluesky.chat.messages_to(derm_did)
    assert len(chats) == 2 and all(len(m["text"]) <= 1000 for m in chats)
    [convo] = bluesky.chat.convos.values()
    assert {m["did"] for m in convo["members"]} == {bluesky.did, derm_did}
    assert all(m["convoId"] == convo["id"] for m in chats)
    chat_calls = [h for nsid, h in bluesky.headers_log if nsid.startswith("chat.bsky.")]
    assert len(chat_calls) == 4 and all(h.get("atproto-proxy") == CHAT_PROXY for h in chat_calls)
    assert bluesky.requests["com.atproto.server.createSession"] == 1  # one login, not one per DM

    dms = x.dm.sent_to(derm_x)
    assert len(dms) == 2 and len(x.dm.sent) == 2
    assert all(d["consumer_key"] == "ck-test" and d["token"] == "at-test" for d in dms)

    for text in (
        mastodon_text,
        " ".join(m["text"] for m in chats),
        " ".join(d["text"] for d in dms),
    ):
        assert all(url in text for url in urls)
        assert "Lésion pigmentée qui saigne" in text

    again = run()  # exactly once: nothing left to send
    assert again.flushed.messages == 0
    assert len(mastodon.posted) == 2 and len(bluesky.chat.messages) == 2 and len(x.dm.sent) == 2


# --- directly through send() ------------------------------------------------------------------


@pytest.mark.parametrize(
    "account", ["derm@other.example", "@derm@other.example", " derm@other.example "]
)
def test_mastodon_dm_is_direct_and_mentions_the_recipient(mastodon, account):
    result = mastodon_channel(mastodon).send(digest([item(1)]), subscriber(mastodon=account))
    assert (
        result.ok and result.detail and result.detail.startswith("https://med.example/@doctoctoc/")
    )
    [posted] = mastodon.posted
    assert posted["params"]["status"].startswith("@derm@other.example ")
    assert posted["params"]["visibility"] == "direct"
    assert [m["acct"] for m in posted["status"]["mentions"]] == ["derm@other.example"]
    assert posted["headers"]["Authorization"] == "Bearer bot-token"


def test_mastodon_dm_resent_after_a_lost_answer_is_posted_once(mastodon):
    """A send retried after its answer was lost carries the same Idempotency-Key."""
    channel = mastodon_channel(mastodon)
    first = channel.send(digest([item(1)]), subscriber(mastodon="derm@other.example"))
    again = channel.send(digest([item(1)]), subscriber(mastodon="derm@other.example"))
    assert first.ok and again.ok and first.detail == again.detail
    assert len({p["status"]["id"] for p in mastodon.posted}) == 1
    keys = {p["headers"].get("Idempotency-Key") for p in mastodon.posted}
    assert len(keys) == 1 and None not in keys
    other = digest([item(2)])
    other.message_key = "derm.dm.digest.2"
    third = channel.send(other, subscriber(mastodon="derm@other.example"))
    assert third.ok and third.detail != first.detail


def test_bluesky_dm_reaches_the_recipients_convo(bluesky):
    derm = bluesky.chat.add_account(DERM_BLUESKY)
    other = bluesky.chat.add_account("other.example.test")
    channel = bluesky_channel(bluesky)
    assert channel.send(digest([item(1)]), subscriber(bluesky=DERM_BLUESKY)).ok
    assert channel.send(digest([item(2)]), subscriber(bluesky="@other.example.test")).ok
    result = channel.send(digest([item(3)]), subscriber(bluesky=DERM_BLUESKY))
    assert result.ok and result.detail == bluesky.chat.messages[-1]["id"]
    assert [m["text"].count("/@dr_a/") for m in bluesky.chat.messages_to(derm)] == [1, 1]
    assert "/@dr_a/2" in bluesky.chat.messages_to(other)[0]["text"]
    assert len(bluesky.chat.convos) == 2
    # One login and one handle resolution per recipient, whatever the number of DMs.
    assert bluesky.requests["com.atproto.server.createSession"] == 1
    assert bluesky.requests["com.atproto.identity.resolveHandle"] == 2


def test_x_dm_reaches_the_right_user_id(x):
    x.add_user("someone_else")
    derm = x.dm.add_recipient(DERM_X)
    channel = x_channel(x)
    first = channel.send(digest([item(1)]), subscriber(x="@dr_derm"))
    second = channel.send(digest([item(2)]), subscriber(x="dr_derm"))
    assert first.ok and second.ok
    assert [d["participant_id"] for d in x.dm.sent] == [derm, derm]
    assert second.detail == x.dm.sent[-1]["dm_event_id"]
    assert x.dm.sent[0]["dm_conversation_id"] == f"{x.dm.me}-{derm}"
    assert x.count(f"/2/users/by/username/{DERM_X}") == 1  # the user id is looked up once


def test_unknown_recipients_fail_for_good(bluesky, x):
    result = x_channel(x).send(digest([item(1)]), subscriber(x="nobody_here"))
    assert not result.ok and not result.retryable and "nobody_here" in result.error
    result = bluesky_channel(bluesky).send(digest([item(1)]), subscriber(bluesky="nobody.test"))
    assert not result.ok and not result.retryable and "Unable to resolve handle" in result.error
    assert x.dm.sent == [] and bluesky.chat.messages == []


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(408, True), (429, True), (500, True), (502, True), (503, True),
     (400, False), (409, False), (413, False), (425, False)],
)  # fmt: skip
def test_bluesky_dm_is_retried_for_the_same_statuses_as_the_collector(bluesky, status, retryable):
    """bot/networks/bluesky.py decides for both: 408, 429 and 5xx later, other 4xx never."""
    derm = bluesky.chat.add_account(DERM_BLUESKY)
    send = "chat.bsky.convo.sendMessage"
    bluesky.fail(send, status, body={"error": "SomeError", "message": f"status {status}"})
    result = bluesky_channel(bluesky).send(digest([item(1)]), subscriber(bluesky=DERM_BLUESKY))
    assert not result.ok and result.retryable is retryable, result
    verb = "unavailable" if retryable else "refused the DM"
    assert result.error and result.error.startswith(f"Bluesky {verb} ({status})")
    assert bluesky.chat.messages_to(derm) == []


def test_subscriber_without_an_account_on_the_network_fails_for_good(mastodon, bluesky, x):
    for channel in (mastodon_channel(mastodon), bluesky_channel(bluesky), x_channel(x)):
        result = channel.send(digest([item(1)]), subscriber(email="derm@example.org"))
        assert not result.ok and not result.retryable, channel.name


# --- long digests: cut at an item boundary, with the link to the rest -------------------------


def long_digest(count: int) -> Digest:
    text = "Plaque érythémateuse annulaire du bras depuis trois semaines, prurigineuse, " * 3
    return digest([item(i, f"Cas {i}: {text}#DocTocToc") for i in range(1, count + 1)])


def shown_items(text: str, count: int) -> list[int]:
    return [
        i for i in range(1, count + 1) if f"https://medecins.example/@dr_a/{i}\n" in text + "\n"
    ]


@pytest.mark.parametrize("network", ["mastodon", "bluesky", "x"])
def test_long_digest_is_cut_at_an_item_boundary_with_a_link_to_the_rest(
    network, mastodon, bluesky, x
):
    count = 60  # about 16,000 characters rendered: too long even for X's 10,000
    full = long_digest(count)
    sub = subscriber(mastodon=DERM_MASTODON, bluesky=DERM_BLUESKY, x=DERM_X)
    if network == "mastodon":
        channel: Channel = mastodon_channel(mastodon)
        result = channel.send(full, sub)
        [posted] = mastodon.posted
        text = posted["params"]["status"]
        assert text.startswith(f"@{DERM_MASTODON} ")
    elif network == "bluesky":
        bluesky.chat.add_account(DERM_BLUESKY)
        channel = bluesky_channel(bluesky)
        result = channel.send(full, sub)
        [message] = bluesky.chat.messages
        text = message["text"]
    else:
        x.dm.add_recipient(DERM_X)
        channel = x_channel(x)
        result = channel.send(full, sub)
        [dm] = x.dm.sent
        text = dm["text"]
    assert result.ok, result.error
    assert channel.max_length is not None and len(text) <= channel.max_length
    shown = shown_items(text, count)
    assert shown == list(range(1, len(shown) + 1)) and 1 <= len(shown) < count  # a prefix
    for i in shown:  # every item shown is whole: its text is cut by the template only, not here
        assert f"Cas {i}:" in text
    assert f"Cas {len(shown) + 1}:" not in text
    more = strings("fr")["more"].format(count=count - len(shown))
    assert text.rstrip().endswith(f"{more}: {MORE_URL}")
    # A longer limit shows more: the cut depends on the channel, never mid-item.
    if network == "x":
        assert len(shown) > 20


def test_retrying_a_failed_dm_later_sends_it_once(tmp_path, db, mastodon):
    """A 503 leaves the delivery pending; the next flush after the backoff sends it once."""
    loaded = make_config(
        tmp_path,
        SUBSCRIBERS.replace("[mastodon, bluesky, x]", "[mastodon]"),
        f'mastodon: {{url: "{mastodon.url}", access_token: "${{MASTODON_TOKEN}}"}}',
    )
    add_request(db, "1", "Plaque annulaire du bras, photo ? #DocTocToc", "dermatology", "soon")
    channels = {"mastodon": mastodon_channel(mastodon)}
    mastodon.fail("/api/v1/statuses", status=503)
    clock = [T0]

    def deliver():
        return Pipeline(
            loaded,
            db,
            classifier=object(),
            collectors=[],
            clock=lambda: clock[0],
            channels=channels,
        ).deliver(force=True)

    pipeline = Pipeline(
        loaded, db, classifier=object(), collectors=[], clock=lambda: T0, channels=channels
    )
    down = pipeline.cycle(collect=False, force_flush=True).flushed
    assert down.messages == 0 and down.retrying == 1 and mastodon.posted == []
    with db.session() as s:
        row = s.scalar(select(DeliveryRow))
        assert row.status == "pending" and "503" in row.last_error
    clock[0] = T0 + timedelta(minutes=2)
    assert deliver().messages == 1 and deliver().messages == 0
    assert len(mastodon.direct_to(DERM_MASTODON)) == 1
