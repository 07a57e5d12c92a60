"""Delivery in batches (issue 14): a crash in the middle of a batch, few transactions for
many messages, each distinct content rendered once, subscribers mirrored only on change."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from email import message_from_bytes, policy

import pytest
from sqlalchemy import event, select

from bot.pipeline import Pipeline
from bot.storage import deliveries as queue
from bot.storage.models import DeliveryRow, MessageRow, SubscriberRow
from digests.channels.base import Channel, SendResult
from digests.channels.outbox import OutboxChannel
from digests.email_message import email_bytes
from digests.render import ContentKey, SharedRenderer, render_email

from .golden import _digest, _item
from .helpers import T0, add_request, make_config

SUBSCRIBERS = "\n".join(
    f"- {{name: Dr {i}, id: doc{i}, language: [fr, en], specialties: all, immediate: never}}"
    for i in range(10)
)


def routed(tmp_path, db, subscribers: str = SUBSCRIBERS):
    loaded = make_config(tmp_path, subscribers)
    for n in range(3):
        add_request(db, str(n), f"Cas {n}: question ? #DocTocToc", "cardiology", "soon")
    Pipeline(loaded, db, classifier=object(), collectors=[], clock=lambda: T0).route()
    return loaded


def flush_with(loaded, db, channel: Channel, now):
    p = Pipeline(
        loaded, db, classifier=object(), collectors=[], clock=lambda: now,
        channels={"outbox": channel},
    )  # fmt: skip
    return p.deliver(force=True)


class Killed(BaseException):
    """The process dies (kill -9): nothing after this runs, not even `finally` blocks."""


KILLED: list[bool] = []


class DiesOnThird(Channel):
    """Sends (records) two messages, then the process is killed while sending the third."""

    name = "outbox"

    def __init__(self, inner: Channel | None, resend: bool, dies: bool = True):
        self.inner, self.resend_after_crash, self.sends_email = inner, resend, inner is not None
        self.dies = dies
        self.sent: list[tuple[str, str]] = []

    def send(self, digest, subscriber) -> SendResult:
        if self.dies and len(self.sent) == 2:
            KILLED.append(True)
            raise Killed
        if self.inner is not None:
            self.inner.send(digest, subscriber)
        self.sent.append((digest.subscriber_id, digest.message_key))
        return SendResult.success()


@pytest.fixture
def killed_before_settling(monkeypatch):
    """A kill -9 leaves no chance to record the batch's outcomes."""
    real = queue.settle
    KILLED.clear()

    def settle(*args, **kwargs):
        if KILLED:
            return None
        return real(*args, **kwargs)

    monkeypatch.setattr(queue, "settle", settle)
    yield
    KILLED.clear()


def _message_ids(folder) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for path in sorted(folder.glob("*.eml")):
        msg = message_from_bytes(path.read_bytes(), policy=policy.default)
        out.setdefault(msg["To"].addresses[0].display_name, []).append(msg["Message-ID"])
    return out


def test_emails_of_a_batch_killed_midway_are_resent_once_with_the_same_message_id(
    tmp_path, db, killed_before_settling
):
    loaded = routed(tmp_path, db)
    outbox = OutboxChannel(loaded.config.channels.outbox, base_dir=tmp_path)
    dying = DiesOnThird(outbox, resend=True)
    with pytest.raises(Killed):
        flush_with(loaded, db, dying, T0)  # batches of 1, 2: killed in the second one
    before = _message_ids(tmp_path / "outbox")
    assert sorted(before) == ["Dr 0", "Dr 1"]
    with db.session() as s:
        statuses = [r.status for r in s.scalars(select(DeliveryRow).order_by(DeliveryRow.id))]
    assert statuses.count("sending") == 2 * 3  # doc0's batch settled; doc1's and doc2's not
    KILLED.clear()  # restarted too early: doc1 and doc2 are still in flight
    assert flush_with(loaded, db, outbox, T0 + timedelta(minutes=1)).messages == 7
    KILLED.clear()  # restarted
    later = flush_with(loaded, db, outbox, T0 + timedelta(minutes=11))  # past sending_timeout
    assert (
        later.messages == 2
        and flush_with(loaded, db, outbox, T0 + timedelta(hours=1)).messages == 0
    )
    after = _message_ids(tmp_path / "outbox")
    assert sorted(after) == [f"Dr {i}" for i in range(10)]  # everyone
    assert after["Dr 1"] == before["Dr 1"] * 2  # resent once, same Message-ID
    assert len(after["Dr 2"]) == 1  # never sent before the kill: sent once
    assert all(len(ids) == 1 for name, ids in after.items() if name != "Dr 1")


def test_direct_messages_of_a_batch_killed_midway_are_never_resent(
    tmp_path, db, killed_before_settling
):
    loaded = routed(tmp_path, db)
    dying = DiesOnThird(None, resend=False)
    with pytest.raises(Killed):
        flush_with(loaded, db, dying, T0)
    assert [s for s, _ in dying.sent] == ["doc0", "doc1"]
    KILLED.clear()  # restarted
    again = DiesOnThird(None, resend=False, dies=False)
    flush_with(loaded, db, again, T0 + timedelta(minutes=11))
    resent = {s for s, _ in again.sent}
    assert "doc1" not in resent and "doc2" not in resent and "doc0" not in resent
    assert resent == {f"doc{i}" for i in range(3, 10)}
    with db.session() as s:
        rows = {r.subscriber_id: r for r in s.scalars(select(DeliveryRow))}
    assert rows["doc1"].status == "failed" and "at most once" in rows["doc1"].last_error
    assert rows["doc0"].status == "sent"


def test_a_killed_channel_still_records_what_went_out_before_it(tmp_path, db):
    loaded = routed(tmp_path, db)

    class Interrupted(DiesOnThird):
        def send(self, digest, subscriber):
            if len(self.sent) == 2:
                raise KeyboardInterrupt  # Ctrl-C: the batch's outcomes are still recorded
            return super().send(digest, subscriber)

    with pytest.raises(KeyboardInterrupt):
        flush_with(loaded, db, Interrupted(None, resend=False), T0)
    with db.session() as s:
        status = {r.subscriber_id: r.status for r in s.scalars(select(DeliveryRow))}
    assert status["doc0"] == status["doc1"] == "sent" and status["doc2"] == "sending"


def test_many_messages_are_claimed_and_settled_in_few_transactions(tmp_path, db):
    subs = "\n".join(
        f"- {{name: Dr {i}, id: doc{i}, specialties: all, immediate: never}}" for i in range(40)
    )
    loaded = routed(tmp_path, db, subs)
    begins = []
    event.listen(db.engine, "begin", lambda conn: begins.append(1))
    sent = flush_with(
        loaded, db, OutboxChannel(loaded.config.channels.outbox, base_dir=tmp_path), T0
    )
    assert sent.messages == 40 and len(list((tmp_path / "outbox").glob("*.eml"))) == 40
    # batches of 1, 2, 4, 8, 16, 9: a claim and a settlement each, plus the initial read
    assert len(begins) <= 2 * 6 + 2, len(begins)


def test_each_distinct_content_is_rendered_once_and_personalised_exactly():
    renderer = SharedRenderer()
    shared = [
        _item(1, "Plaque ? #DocTocToc", "soon"),
        _item(2, "Lésion qui saigne <b>x</b> & co #DocTocToc"),
    ]
    names = ["Dr A", 'Dr "B" <b> & Co', "Dr \u202eC\r\nBcc: x", "Élodie " * 12]
    for n, name in enumerate(names):
        d = _digest(list(shared), name=name, subscriber_id=f"s{n}")
        d.unsubscribe_url = f"https://bot.example.org/unsubscribe/tok{n}&x=<{n}>"
        d.more_url = f"https://bot.example.org/cases?specialty=all&v=v{n}"
        d.more = 3
        d.specialties = ["cardiology", "dermatology, <pédiatrie> & co", "x\u202e"][n % 3]
        d.items = [
            _item(it.post_id, it.text, it.urgency, correction_url=f"https://b.example/c/{n}.{i}")
            for i, it in enumerate(shared)
        ]
        assert renderer.render(d, "same content") == render_email(d), name
    assert renderer.renders == 1


def test_item_blocks_are_rendered_once_and_assembled_into_exactly_the_same_digests():
    renderer = SharedRenderer()
    shared = [
        _item(1, "Plaque ? #DocTocToc", "soon"),
        _item(2, "Lésion qui saigne <b>x</b> & co #DocTocToc", answer_count=2),
        _item(3, "Fièvre \u202e et toux #DocTocToc", "routine", cues=["fièvre"]),
    ]
    combos = [[0, 1, 2], [2, 0], [1], [0, 2], [2, 1, 0]]
    for n, combo in enumerate(combos):
        for lang, kind in (("fr", "digest"), ("en", "digest"), ("fr", "alert")):
            chosen = [shared[i] for i in combo]
            d = _digest([], name=f"Dr {n}", subscriber_id=f"s{n}", kind=kind, lang=lang)
            d.items = [replace(it, correction_url=f"https://b.example/c/{n}.{it.post_id}")
                       for it in chosen[:-1]]  # fmt: skip
            d.answered = [replace(chosen[-1], correction_url=f"https://b.example/a/{n}")]
            key = ContentKey(lang, kind, 0, tuple(id(it) for it in chosen[:-1]), (id(chosen[-1]),))
            assert renderer.render(d, key) == render_email(d), (n, lang, kind)
    assert renderer.renders == len(combos) * 3
    assert len(renderer._parts) <= 3 * 2 * 2 * 2  # items x languages x sections x formats


def test_the_subscriber_mirror_is_rewritten_only_when_the_config_changes(tmp_path, db):
    loaded = routed(tmp_path, db)
    writes = []
    event.listen(
        db.engine,
        "before_cursor_execute",
        lambda conn, cursor, sql, params, context, many: (
            writes.append(sql)
            if "subscribers" in sql and not sql.lstrip().upper().startswith("SELECT")
            else None
        ),
    )
    Pipeline(loaded, db, classifier=object(), collectors=[], clock=lambda: T0).route()
    assert writes == []
    changed = make_config(tmp_path, SUBSCRIBERS.replace("Dr 3,", "Dr Trois,"))
    Pipeline(changed, db, classifier=object(), collectors=[], clock=lambda: T0).route()
    with db.session() as s:
        assert s.get(SubscriberRow, "doc3").name == "Dr Trois"
    again = make_config(tmp_path, SUBSCRIBERS)  # back to the first config: mirrored again
    Pipeline(again, db, classifier=object(), collectors=[], clock=lambda: T0).route()
    with db.session() as s:
        assert s.get(SubscriberRow, "doc3").name == "Dr 3"


def test_direct_bytes_equal_the_library_for_odd_names_senders_and_addresses():
    import random

    from digests.email_message import build_email

    senders = ["DocTocToc bot <bot@doctoctoc.example>", "O'Neil <o@x.org>", "Bot, Inc <b@x.org>"]
    names = ["", "Dr O'Brien", "Dr J. Doe", "Dr  Two  Spaces", "=?utf-8?q?x?=", "王", "A" * 90]
    for i, (name, sender) in enumerate((n, s) for n in names for s in senders):
        for to in ("derm@example.org", " a.b+c@ex-ample.org "):
            d = _digest([_item(1, "Plaque ? #DocTocToc")], name=name)
            random.seed(i)
            expected = bytes(build_email(d, sender=sender, to=to))
            random.seed(i)
            assert email_bytes(d, sender=sender, to=to) == expected, (name, sender, to)


def test_a_batch_claim_gives_each_row_once_with_its_message_key(tmp_path, any_db):
    from bot.storage.db import Database

    routed(tmp_path, any_db)
    loaded = make_config(tmp_path, SUBSCRIBERS)  # a second routing cycle: more message rows
    add_request(any_db, "9", "Cas 9: question ? #DocTocToc", "cardiology", "soon")
    Pipeline(loaded, any_db, classifier=object(), collectors=[], clock=lambda: T0).route()
    with any_db.session() as s:
        rows = s.execute(select(MessageRow.id, MessageRow.subscriber_id)).all()
    groups: dict[str, list[int]] = {}
    for row_id, sub in rows:
        groups.setdefault(sub, []).append(row_id)
    assert all(len(ids) == 2 for ids in groups.values())
    batch = [(ids, f"key-{sub}") for sub, ids in sorted(groups.items())]
    other = Database(any_db.url)
    theirs = queue.claim(other, groups["doc3"][:1], "other", T0)  # another process got one
    mine = queue.claim_batch(any_db, batch, T0)
    again = queue.claim_batch(any_db, batch, T0)
    other.dispose()
    assert [len(items) for _, items in mine] == [4, 4, 4, 1, 4, 4, 4, 4, 4, 4]
    assert [len(ids) for ids, _ in mine] == [2, 2, 2, 1, 2, 2, 2, 2, 2, 2]
    assert theirs[0] == groups["doc3"][:1] and len(theirs[1]) == 3
    assert all(c == ([], []) for c in again)
    with any_db.session() as s:
        keys = dict(s.execute(select(DeliveryRow.id, DeliveryRow.message_key)).all())
    for (_ids, key), (_rows, claimed) in zip(batch, mine, strict=True):
        assert {keys[row_id] for row_id, _, _ in claimed} == {key}
    assert {keys[row_id] for row_id, _, _ in theirs[1]} == {"other"}
