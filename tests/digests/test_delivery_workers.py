"""A large flush of e-mail shared with forked worker processes (delivery.workers, issue
14): every message still exactly once and the same message, a worker that dies leaves its
messages to be resent with the same Message-ID, and small flushes stay in one process."""

from __future__ import annotations

import hashlib
import logging
import os
import re
from datetime import timedelta
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.core.config import load_config
from bot.pipeline import Pipeline, delivery_workers
from bot.storage.db import Database
from bot.storage.models import MessageRow
from digests import delivery
from digests.channels.base import Channel, SendResult
from digests.channels.outbox import OutboxChannel
from digests.email_message import email_bytes

from .helpers import T0, add_request, make_config

SUBSCRIBERS = "\n".join(
    f"- {{name: Dr {i}, id: doc{i}, language: [fr, en], specialties: all, immediate: never}}"
    for i in range(12)
)


class Recording(Channel):
    """An e-mail channel that appends "<pid> <subscriber> <Message-ID>" to a log file for
    each message (O_APPEND: lines from several processes never mix), and can make the
    worker processes die at their first send."""

    name = "outbox"
    sends_email = True
    fork_safe = True

    def __init__(self, log: Path, parent: int, child_dies: bool = False):
        self.log, self.parent, self.child_dies = log, parent, child_dies

    def send(self, digest, subscriber) -> SendResult:
        if self.child_dies and os.getpid() != self.parent:
            os._exit(3)  # killed: nothing reported, nothing settled
        data = email_bytes(digest, sender="bot@example.org", to=f"{subscriber.key}@example.org")
        mid = message_from_bytes(data, policy=policy.default)["Message-ID"]
        fd = os.open(self.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, f"{os.getpid()} {subscriber.key} {mid}\n".encode())
        finally:
            os.close(fd)
        return SendResult.success()


def routed(tmp_path, db):
    loaded = make_config(tmp_path, SUBSCRIBERS)
    for n in range(3):
        add_request(db, str(n), f"Cas {n}: question ? #DocTocToc", "cardiology", "soon")
    Pipeline(loaded, db, classifier=object(), collectors=[], clock=lambda: T0).route()
    return loaded


def lines(log: Path) -> list[tuple[int, str, str]]:
    return [(int(p), s, m) for p, s, m in (row.split() for row in log.read_text().splitlines())]


def statuses(db) -> dict[str, int]:
    with db.session() as s:
        rows = s.execute(select(MessageRow.status, func.count()).group_by(MessageRow.status))
        return dict(rows.all())


@pytest.fixture
def parallel_from_4(monkeypatch):
    """Share out flushes from 4 e-mails (the default threshold is for national scale)."""
    monkeypatch.setattr(delivery, "PARALLEL_MIN", 4)


def test_two_processes_send_every_message_once(any_db, tmp_path, parallel_from_4):
    loaded = routed(tmp_path, any_db)
    log = tmp_path / "sent.log"
    channel = Recording(log, os.getpid())
    now = T0 + timedelta(hours=1)

    result = delivery.flush(any_db, loaded, {"outbox": channel}, now, force=True, workers=2)

    sent = lines(log)
    assert sorted(s for _, s, _ in sent) == sorted(f"doc{i}" for i in range(12))
    assert {pid for pid, _, _ in sent} - {os.getpid()}, "no worker process sent anything"
    assert os.getpid() in {pid for pid, _, _ in sent}
    # The child's report reaches the caller: all 12 messages, 3 items each.
    assert sorted(r[0] for r in result.sent) == sorted(f"doc{i}" for i in range(12))
    assert {r[3] for r in result.sent} == {3}
    assert statuses(any_db) == {"sent": 12}
    # Nothing more to send: each message went exactly once.
    again = delivery.flush(any_db, loaded, {"outbox": channel}, now, force=True, workers=2)
    assert again.messages == 0 and len(lines(log)) == 12


def eml_files(folder: Path) -> dict[str, bytes]:
    """The outbox's messages, their MIME boundary (random in every message) made fixed."""
    return {
        f.name: re.sub(rb"===============\d+==", b"=====BOUNDARY==", f.read_bytes())
        for f in sorted(folder.glob("*.eml"))
    }


def test_outbox_files_are_those_of_one_process(db, tmp_path, parallel_from_4):
    """The same files, byte for byte (but the random boundary), as without workers."""
    folders = {}
    for workers in (1, 2):
        case = tmp_path / f"workers{workers}"
        case.mkdir()
        database = Database(f"sqlite:///{case / 'bot.db'}")
        database.upgrade()
        loaded = routed(case, database)
        outbox = OutboxChannel(loaded.config.channels.outbox, base_dir=case)
        result = delivery.flush(
            database, loaded, {"outbox": outbox}, T0, force=True, workers=workers
        )
        assert result.messages == 12
        database.dispose()
        folders[workers] = eml_files(case / "outbox")
    assert len(folders[1]) == 12
    assert folders[2] == folders[1]
    for path in (tmp_path / "workers2" / "outbox").iterdir():
        assert path.stat().st_mode & 0o777 == 0o600


def test_a_dead_worker_s_messages_are_resent_with_their_message_id(
    db, tmp_path, parallel_from_4, caplog
):
    loaded = routed(tmp_path, db)
    log = tmp_path / "sent.log"
    now = T0 + timedelta(hours=1)
    dying = Recording(log, os.getpid(), child_dies=True)

    with caplog.at_level(logging.ERROR, logger="digests.delivery"):
        result = delivery.flush(db, loaded, {"outbox": dying}, now, force=True, workers=2)

    first = lines(log)
    assert {pid for pid, _, _ in first} == {os.getpid()}  # only this process sent
    assert result.messages == len(first) == 6
    assert "ended abnormally (exit status 3)" in caplog.text
    assert "share of 6 messages" in caplog.text
    # The worker had claimed its first message (batches start at one): left `sending`.
    assert statuses(db) == {"sent": 6, "sending": 1, "pending": 5}

    with db.session() as s:
        [(claimed_by, key)] = s.execute(
            select(MessageRow.subscriber_id, MessageRow.message_key).where(
                MessageRow.status == "sending"
            )
        ).all()

    # After the sending timeout the claimed message is resent with the Message-ID of its
    # claim, and the pending ones go too: each subscriber exactly once in all.
    healthy = Recording(log, os.getpid())
    later = now + loaded.config.delivery.sending_timeout + timedelta(minutes=1)
    delivery.flush(db, loaded, {"outbox": healthy}, later, force=True, workers=1)
    everything = lines(log)
    assert sorted(s for _, s, _ in everything) == sorted(f"doc{i}" for i in range(12))
    assert statuses(db) == {"sent": 12}
    [resent] = [mid for _, sub, mid in everything if sub == claimed_by]
    expected = hashlib.sha256(key.encode()).hexdigest()[:24]
    assert resent == f"<{expected}.{claimed_by}@example.org>"


def test_small_flushes_and_in_memory_databases_stay_in_one_process(db, tmp_path):
    loaded = routed(tmp_path, db)
    log = tmp_path / "sent.log"
    channel = Recording(log, os.getpid())
    delivery.flush(db, loaded, {"outbox": channel}, T0, force=True, workers=4)
    assert {pid for pid, _, _ in lines(log)} == {os.getpid()}  # 12 < PARALLEL_MIN

    memory = Database("sqlite://")
    assert not delivery._can_fork(memory)
    memory.dispose()


def test_workers_setting(tmp_path):
    base = make_config(tmp_path, SUBSCRIBERS)
    assert base.config.delivery.workers == "auto"
    assert 1 <= delivery_workers(base) <= 4
    text = (tmp_path / "config.yaml").read_text()
    (tmp_path / "config.yaml").write_text(
        text.replace("  sending_timeout: 10m", "  sending_timeout: 10m\n  workers: 1")
    )
    one = load_config(tmp_path / "config.yaml", env={"TEST_SECRET": "x"})
    assert delivery_workers(one) == 1
    (tmp_path / "config.yaml").write_text(
        text.replace("  sending_timeout: 10m", "  sending_timeout: 10m\n  workers: 0")
    )
    with pytest.raises(Exception, match="workers"):
        load_config(tmp_path / "config.yaml", env={"TEST_SECRET": "x"})
