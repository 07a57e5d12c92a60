"""Routing and delivery through a real SMTP server on 127.0.0.1 (aiosmtpd)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.pipeline import Pipeline
from bot.storage.models import DeliveryRow
from digests.channels import build_channels
from digests.channels.base import Channel, SendResult
from tests.fakes.smtp_server import SmtpServer, free_port

from .helpers import T0, add_request, make_config

SUBSCRIBERS = """\
- name: Dr Derm
  id: derm
  language: fr
  email: derm@example.org
  deliver_by: [smtp]
  specialties: [dermatology]
  min_urgency: soon
  digest: daily 07:30
  immediate: urgent
- name: Dr Cardio
  id: cardio
  language: [fr, en]
  email: cardio@example.org
  deliver_by: [smtp]
  specialties: [cardiology]
  digest: daily 07:30
  immediate: never
"""


def smtp_channels(port: int, timeout: str = "5s") -> str:
    return f"""\
smtp:
  host: 127.0.0.1
  port: {port}
  security: none
  sender: "DocTocToc bot <bot@doctoctoc.example>"
  timeout: {timeout}
"""


@pytest.fixture
def smtp():
    server = SmtpServer().start()
    yield server
    server.stop()


class Clock:
    def __init__(self):
        self.now = T0

    def __call__(self):
        return self.now


def pipeline(loaded, db, clock):
    return Pipeline(
        loaded, db, classifier=object(), collectors=[], clock=clock, channels=build_channels(loaded)
    )


def seed(db):
    add_request(
        db, "1", "Plaque érythémateuse annulaire du bras, photo ? #DocTocToc", "dermatology", "soon"
    )
    add_request(
        db,
        "2",
        "Lésion pigmentée qui saigne, il est devant moi #DocTocToc",
        "dermatology",
        "urgent",
        cues=["il est devant moi"],
    )
    add_request(
        db, "3", "Eczéma chronique des mains, pour ma culture #DocTocToc", "dermatology", "routine"
    )
    add_request(db, "4", "ECG: BAV 2 Mobitz 1 ? #DocTocToc", "cardiology", "soon")
    add_request(
        db, "5", "Rash in a returning traveller? #DocTocToc", "dermatology", "soon", lang="en"
    )


def test_each_subscriber_gets_only_their_specialty_and_urgency(tmp_path, db, smtp):
    loaded = make_config(tmp_path, SUBSCRIBERS, smtp_channels(smtp.port))
    seed(db)
    clock = Clock()
    summary = pipeline(loaded, db, clock).cycle(collect=False)
    # The urgent dermatology request is an alert, sent in the cycle itself.
    assert summary.urgent == 1
    [alert] = smtp.received
    assert alert.rcpt_tos == ["derm@example.org"]
    assert alert.message["Subject"].startswith("URGENT #DocTocToc")
    assert "il est devant moi" in alert.message.get_body(("plain",)).get_content()

    clock.now = T0 + timedelta(days=1)  # after 07:30 Paris the next day: digests are due
    pipeline(loaded, db, clock).cycle(collect=False)
    by_rcpt = {r.rcpt_tos[0]: r.message for r in smtp.received[1:]}
    assert set(by_rcpt) == {"derm@example.org", "cardio@example.org"}
    derm = by_rcpt["derm@example.org"].get_body(("plain",)).get_content()
    assert "Plaque érythémateuse" in derm
    assert "Eczéma chronique" not in derm  # routine is below Dr Derm's min_urgency
    assert "returning traveller" not in derm  # English post, French-only subscriber
    assert "ECG" not in derm
    cardio = by_rcpt["cardio@example.org"].get_body(("plain",)).get_content()
    assert "ECG" in cardio and "Plaque" not in cardio


def test_message_is_multipart_with_headers_for_one_click_unsubscribe(tmp_path, db, smtp):
    loaded = make_config(tmp_path, SUBSCRIBERS, smtp_channels(smtp.port))
    seed(db)
    pipeline(loaded, db, Clock()).deliver(force=True)
    pipeline(loaded, db, Clock()).cycle(collect=False, force_flush=True)
    msg = next(r.message for r in smtp.received if r.rcpt_tos == ["cardio@example.org"])
    assert msg.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    assert msg["List-Unsubscribe"].startswith("<https://bot.example.org/unsubscribe/")
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg["List-Id"] and msg["Date"] and msg["Message-ID"].endswith("@doctoctoc.example>")
    assert msg["To"].addresses[0].addr_spec == "cardio@example.org"


def test_digest_run_twice_sends_nothing_the_second_time(tmp_path, db, smtp):
    loaded = make_config(tmp_path, SUBSCRIBERS, smtp_channels(smtp.port))
    seed(db)
    first = pipeline(loaded, db, Clock()).cycle(collect=False, force_flush=True)
    count = len(smtp.received)
    second = pipeline(loaded, db, Clock()).cycle(collect=False, force_flush=True)
    assert first.flushed.messages == count >= 2
    assert second.flushed.messages == 0 and len(smtp.received) == count


def test_smtp_down_then_up_delivers_later_exactly_once(tmp_path, db):
    port = free_port()
    loaded = make_config(tmp_path, SUBSCRIBERS, smtp_channels(port, timeout="2s"))
    seed(db)
    clock = Clock()
    down = pipeline(loaded, db, clock).cycle(collect=False, force_flush=True)
    assert down.flushed.messages == 0 and down.flushed.retrying > 0
    with db.session() as s:
        rows = s.scalars(select(DeliveryRow)).all()
        assert {r.status for r in rows} == {"pending"} and all(r.attempts == 1 for r in rows)
        assert all("unreachable" in r.last_error for r in rows)
    # Before the backoff expires nothing is tried again, even with --now.
    assert pipeline(loaded, db, clock).deliver(force=True).messages == 0
    server = SmtpServer(port).start()
    try:
        clock.now = T0 + timedelta(minutes=2)
        up = pipeline(loaded, db, clock).deliver(force=True)
        again = pipeline(loaded, db, clock).deliver(force=True)
        # Dr Derm: the urgent alert and the digest; Dr Cardio: the digest. Each once.
        assert up.messages == 3 and again.messages == 0
        assert sorted(r.rcpt_tos[0] for r in server.received) == [
            "cardio@example.org",
            "derm@example.org",
            "derm@example.org",
        ]
    finally:
        server.stop()


class DiesAfterSending(Channel):
    """Sends for real, then the process 'dies' before the bot records the send."""

    def __init__(self, inner: Channel, name: str, resend: bool):
        self.inner, self.name, self.resend_after_crash = inner, name, resend

    def send(self, digest, subscriber) -> SendResult:
        self.inner.send(digest, subscriber)
        raise KeyboardInterrupt("killed between send and commit")


def test_killed_between_send_and_commit_email_is_resent_with_same_message_id(tmp_path, db, smtp):
    loaded = make_config(tmp_path, SUBSCRIBERS, smtp_channels(smtp.port))
    add_request(db, "4", "ECG: BAV 2 Mobitz 1 ? #DocTocToc", "cardiology", "soon")
    clock = Clock()
    real = build_channels(loaded)
    dying = Pipeline(
        loaded,
        db,
        classifier=object(),
        collectors=[],
        clock=clock,
        channels={"smtp": DiesAfterSending(real["smtp"], "smtp", True)},
    )
    with pytest.raises(KeyboardInterrupt):
        dying.cycle(collect=False, force_flush=True)
    with db.session() as s:
        assert s.scalar(select(DeliveryRow.status)) == "sending"
    # Restarted too early: the delivery is still in flight, nothing is sent.
    assert pipeline(loaded, db, clock).deliver(force=True).messages == 0
    clock.now = T0 + timedelta(minutes=11)  # past delivery.sending_timeout
    assert pipeline(loaded, db, clock).deliver(force=True).messages == 1
    assert pipeline(loaded, db, clock).deliver(force=True).messages == 0
    first, resent = smtp.received
    assert first.message["Message-ID"] == resent.message["Message-ID"]


def test_killed_between_send_and_commit_dm_is_never_resent(tmp_path, db, smtp):
    loaded = make_config(tmp_path, SUBSCRIBERS, smtp_channels(smtp.port))
    add_request(db, "4", "ECG: BAV 2 Mobitz 1 ? #DocTocToc", "cardiology", "soon")
    clock = Clock()
    real = build_channels(loaded)
    dm_like = DiesAfterSending(real["smtp"], "smtp", resend=False)  # a DM channel's policy
    with pytest.raises(KeyboardInterrupt):
        Pipeline(
            loaded, db, classifier=object(), collectors=[], clock=clock, channels={"smtp": dm_like}
        ).cycle(collect=False, force_flush=True)
    clock.now = T0 + timedelta(minutes=11)
    Pipeline(
        loaded, db, classifier=object(), collectors=[], clock=clock, channels={"smtp": dm_like}
    ).deliver(force=True)
    assert len(smtp.received) == 1
    with db.session() as s:
        row = s.scalar(select(DeliveryRow))
        assert row.status == "failed" and "at most once" in row.last_error


def test_retries_end_in_failed_and_show_the_reason(tmp_path, db):
    loaded = make_config(tmp_path, SUBSCRIBERS, smtp_channels(free_port(), timeout="1s"))
    add_request(db, "4", "ECG: BAV 2 Mobitz 1 ? #DocTocToc", "cardiology", "soon")
    clock = Clock()
    for _ in range(5):
        pipeline(loaded, db, clock).cycle(collect=False, force_flush=True)
        clock.now += timedelta(hours=2)
    with db.session() as s:
        row = s.scalar(select(DeliveryRow))
        assert row.status == "failed" and row.attempts == 5 and "unreachable" in row.last_error
