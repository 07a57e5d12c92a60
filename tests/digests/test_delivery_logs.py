"""Delivery logs at scale (issue 14): one INFO line a batch, each message at DEBUG, and
every failure still a WARNING of its own."""

from __future__ import annotations

import logging

from digests.channels.base import Channel, SendResult
from digests.channels.outbox import OutboxChannel

from .helpers import T0
from .test_delivery_batches import flush_with, routed


class RefusesDoc3(Channel):
    name = "outbox"

    def send(self, digest, subscriber) -> SendResult:
        if subscriber.key == "doc3":
            return SendResult.failure("mailbox full", retryable=True)
        return SendResult.success(f"sent to {subscriber.key}")


def _lines(caplog, level: int) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "digests.delivery" and r.levelno == level
    ]


def test_one_info_line_per_batch_and_each_message_at_debug(tmp_path, db, caplog):
    loaded = routed(tmp_path, db)  # 10 subscribers: batches of 1, 2, 4, 3 messages
    channel = OutboxChannel(loaded.config.channels.outbox, base_dir=tmp_path)
    with caplog.at_level(logging.DEBUG, logger="digests.delivery"):
        assert flush_with(loaded, db, channel, T0).messages == 10
    info = _lines(caplog, logging.INFO)
    assert info == [
        f"sent {n} of {n} messages by outbox ({n * 3} items), 0 failed" for n in (1, 2, 4, 3)
    ]
    debug = _lines(caplog, logging.DEBUG)
    assert len(debug) == 10 and all(".eml" in line for line in debug)


def test_a_failure_is_logged_with_its_reason(tmp_path, db, caplog):
    loaded = routed(tmp_path, db)
    with caplog.at_level(logging.INFO, logger="digests.delivery"):
        result = flush_with(loaded, db, RefusesDoc3(), T0)
    assert result.messages == 9 and result.retrying == 3
    assert _lines(caplog, logging.WARNING) == [
        "delivery to doc3 by outbox failed, will retry: mailbox full"
    ]
    assert "sent 3 of 4 messages by outbox (9 items), 1 failed" in _lines(caplog, logging.INFO)
