"""Faults of issue 12 in delivery and rendering: greylisting, unsafe links, bidi in names,
private outbox files."""

from __future__ import annotations

import errno
import os
import stat
from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.core.config_models import OutboxConfig, SubscriberConfig
from bot.storage.models import DeliveryRow
from digests.channels.outbox import OutboxChannel
from digests.render import render_dm, render_email
from tests.fakes.smtp_server import SmtpServer

from .helpers import T0, add_request, make_config
from .test_render import digest, item
from .test_smtp_delivery import SUBSCRIBERS, Clock, pipeline, smtp_channels


class _Greylisting:
    """RCPT TO answers `code` while `refusing` is set (451: greylisted; 550: no such user)."""

    def __init__(self, server: SmtpServer, code: str):
        self.refusing = True
        self.code = code
        handler = server.handler

        async def handle_RCPT(server_, session, envelope, address, rcpt_options):  # noqa: N802
            if self.refusing:
                return self.code
            envelope.rcpt_tos.append(address)
            return "250 OK"

        handler.handle_RCPT = handle_RCPT


@pytest.fixture
def greylisting_smtp():
    server = SmtpServer()
    grey = _Greylisting(server, "451 4.7.1 Greylisted, try again later")
    server.start()
    yield server, grey
    server.stop()


def test_greylisting_451_at_rcpt_is_retried_and_delivered_after_recovery(
    tmp_path, db, greylisting_smtp
):
    server, grey = greylisting_smtp
    loaded = make_config(tmp_path, SUBSCRIBERS, smtp_channels(server.port))
    add_request(db, "2", "Lésion qui saigne, il est devant moi #DocTocToc", "dermatology", "urgent")
    clock = Clock()
    first = pipeline(loaded, db, clock).cycle(collect=False, force_flush=True)
    assert first.flushed.failed == 0 and first.flushed.retrying == 1
    with db.session() as s:
        row = s.scalar(select(DeliveryRow))
        assert row.status == "pending" and row.attempts == 1 and "451" in row.last_error
    grey.refusing = False
    clock.now = T0 + timedelta(minutes=2)  # past the first backoff (1m)
    again = pipeline(loaded, db, clock).deliver(force=True)
    assert again.messages == 1 and [r.rcpt_tos for r in server.received] == [["derm@example.org"]]


def test_550_at_rcpt_is_permanent(tmp_path, db):
    server = SmtpServer()
    _Greylisting(server, "550 5.1.1 No such user")
    server.start()
    try:
        loaded = make_config(tmp_path, SUBSCRIBERS, smtp_channels(server.port))
        add_request(db, "2", "Lésion qui saigne #DocTocToc", "dermatology", "urgent")
        result = pipeline(loaded, db, Clock()).cycle(collect=False, force_flush=True)
        assert result.flushed.failed == 1 and result.flushed.retrying == 0
    finally:
        server.stop()


def test_javascript_links_are_never_rendered_as_links():
    evil = "javascript:alert(document.cookie)"
    it = item("Plaque ? #DocTocToc", media=[{"url": evil, "alt": "photo"}])
    it.url = evil
    _, text, html = render_email(digest([it]))
    assert "javascript:" not in html
    assert "javascript:" not in text
    assert "javascript:" not in render_dm(digest([it]), 10_000)
    assert "Plaque ?" in html  # the item itself is still there
    good = item("Plaque ? #DocTocToc", media=[{"url": "https://m.example/1.jpg", "alt": "x"}])
    _, _, html = render_email(digest([good]))
    assert 'href="https://medecins.example/@a/1"' in html
    assert 'href="https://m.example/1.jpg"' in html


def test_bidi_override_in_author_name_is_stripped_in_html_and_text():
    it = item("Plaque ? #DocTocToc", author="Dr \u202eliveD\u202c Safe (@a)")
    _, text, html = render_email(digest([it]))
    for out in (text, html):
        assert "\u202e" not in out and "\u202c" not in out
        assert "liveD" in out


def test_outbox_files_and_folder_are_private_under_umask_022(tmp_path):
    sub = SubscriberConfig(name="Dr Derm", id="derm")
    channel = OutboxChannel(OutboxConfig(dir=str(tmp_path / "outbox")))
    old = os.umask(0o022)
    try:
        result = channel.send(digest([item("Plaque ? #DocTocToc")]), sub)
    finally:
        os.umask(old)
    assert result.ok
    assert stat.S_IMODE((tmp_path / "outbox").stat().st_mode) == 0o700
    [eml] = (tmp_path / "outbox").glob("*.eml")
    assert stat.S_IMODE(eml.stat().st_mode) == 0o600


def test_outbox_full_disk_leaves_no_partial_file(tmp_path, monkeypatch):
    sub = SubscriberConfig(name="Dr Derm", id="derm")
    channel = OutboxChannel(OutboxConfig(dir=str(tmp_path / "outbox")))

    def full(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("digests.channels.outbox.os.replace", full)
    result = channel.send(digest([item("Plaque ? #DocTocToc")]), sub)
    assert not result.ok and "No space left" in result.error
    assert list((tmp_path / "outbox").iterdir()) == []
