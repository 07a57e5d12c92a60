"""One row per message (migration 0004): an e-mail made of message rows routed in several
cycles is claimed, settled and, after a crash, resent as one, with one Message-ID; direct
messages are never resent; sending writes message rows only, never the deliveries."""

from __future__ import annotations

from datetime import timedelta
from email import message_from_bytes, policy

import pytest
from sqlalchemy import event, select

from bot.pipeline import Pipeline
from bot.storage.models import DeliveryRow, MessageRow, PostRow, SubscriberRow
from digests.channels.outbox import OutboxChannel

from .helpers import T0, add_request, make_config
from .test_delivery_batches import (  # noqa: F401 - killed_before_settling is a fixture
    KILLED,
    SUBSCRIBERS,
    DiesOnThird,
    Killed,
    flush_with,
    killed_before_settling,
)


def routed_twice(tmp_path, db):
    """Two routing cycles an hour apart: each subscriber's digest spans two message rows."""
    loaded = make_config(tmp_path, SUBSCRIBERS)
    for cycle, when in enumerate((T0, T0 + timedelta(hours=1))):
        add_request(db, str(cycle), f"Cas {cycle} ? #DocTocToc", "cardiology", "soon")
        Pipeline(loaded, db, classifier=object(), collectors=[], clock=lambda w=when: w).route()
    with db.session() as s:
        per_sub = {}
        for m in s.scalars(select(MessageRow)):
            per_sub.setdefault(m.subscriber_id, []).append(m.id)
    assert all(len(ids) == 2 for ids in per_sub.values()) and len(per_sub) == 10
    return loaded


def _mails(folder) -> dict[str, list[tuple[str, int]]]:
    """{recipient: [(Message-ID, cases in it)]}"""
    out: dict[str, list[tuple[str, int]]] = {}
    for path in sorted(folder.glob("*.eml")):
        msg = message_from_bytes(path.read_bytes(), policy=policy.default)
        body = msg.get_body(("plain",)).get_content()
        cases = sum(f"Cas {n} ?" in body for n in range(2))
        out.setdefault(msg["To"].addresses[0].display_name, []).append((msg["Message-ID"], cases))
    return out


@pytest.mark.usefixtures("killed_before_settling")
def test_an_email_of_two_message_rows_killed_midway_is_resent_whole_with_its_message_id(
    tmp_path, db
):
    loaded = routed_twice(tmp_path, db)
    outbox = OutboxChannel(loaded.config.channels.outbox, base_dir=tmp_path)
    later = T0 + timedelta(hours=2)
    with pytest.raises(Killed):
        flush_with(loaded, db, DiesOnThird(outbox, resend=True), later)
    before = _mails(tmp_path / "outbox")
    with db.session() as s:
        keys = {(m.subscriber_id, m.message_key) for m in s.scalars(select(MessageRow))}
        statuses = sorted(m.status for m in s.scalars(select(MessageRow)))
    assert statuses == ["pending"] * 14 + ["sending"] * 4 + ["sent"] * 2
    KILLED.clear()  # restarted after the sending timeout
    resent = flush_with(loaded, db, outbox, later + timedelta(minutes=11))
    assert resent.messages == 9 and resent.sent[0][3] == 2  # doc1 and doc2: two items each
    after = _mails(tmp_path / "outbox")
    assert all(cases == 2 for mails in after.values() for _, cases in mails)
    assert after["Dr 1"] == before["Dr 1"] * 2  # resent once, whole, same Message-ID
    assert len([key for sub, key in keys if sub == "doc1"]) == 1  # both rows: one key
    assert all(len(mails) == 1 for name, mails in after.items() if name != "Dr 1")
    with db.session() as s:
        assert {m.status for m in s.scalars(select(MessageRow))} == {"sent"}
    assert flush_with(loaded, db, outbox, later + timedelta(hours=1)).messages == 0


@pytest.mark.usefixtures("killed_before_settling")
def test_direct_messages_of_two_rows_killed_midway_are_never_resent(tmp_path, db):
    loaded = routed_twice(tmp_path, db)
    later = T0 + timedelta(hours=2)
    with pytest.raises(Killed):
        flush_with(loaded, db, DiesOnThird(None, resend=False), later)
    KILLED.clear()
    again = DiesOnThird(None, resend=False, dies=False)
    flush_with(loaded, db, again, later + timedelta(minutes=11))
    assert {s for s, _ in again.sent} == {f"doc{i}" for i in range(3, 10)}
    with db.session() as s:
        rows = s.execute(select(DeliveryRow.subscriber_id, DeliveryRow.status)).all()
    status = {}
    for sub, state in rows:
        status.setdefault(sub, set()).add(state)
    assert status["doc0"] == {"sent"} and status["doc1"] == status["doc2"] == {"failed"}


def test_a_deleted_post_leaves_its_message_and_the_rest_goes_out(tmp_path, db):
    loaded = routed_twice(tmp_path, db)
    with db.session() as s:
        s.get(PostRow, 1).deleted = True  # the first cycle's case, deleted at its source
    outbox = OutboxChannel(loaded.config.channels.outbox, base_dir=tmp_path)
    result = flush_with(loaded, db, outbox, T0 + timedelta(hours=2))
    assert result.messages == 10 and result.dropped == 10
    assert all(m == [(m[0][0], 1)] for m in _mails(tmp_path / "outbox").values())
    with db.session() as s:
        state = dict(s.execute(select(DeliveryRow.post_id, DeliveryRow.status)).all())
        dropped = s.scalars(select(MessageRow).where(MessageRow.status == "dropped")).all()
    assert state == {1: "dropped", 2: "sent"}
    assert len(dropped) == 10 and {m.last_error for m in dropped} == {"post deleted at its source"}


def test_sending_writes_message_rows_never_deliveries(tmp_path, db):
    loaded = routed_twice(tmp_path, db)
    writes: list[str] = []
    event.listen(
        db.engine,
        "before_cursor_execute",
        lambda conn, cursor, sql, params, context, many: writes.append(sql.split()[0:3]),
    )
    outbox = OutboxChannel(loaded.config.channels.outbox, base_dir=tmp_path)
    assert flush_with(loaded, db, outbox, T0 + timedelta(hours=2)).messages == 10
    updated = {" ".join(w[:2]).upper() for w in writes if w[0].upper() in ("UPDATE", "DELETE")}
    assert updated == {"UPDATE MESSAGES"}, updated


def test_items_of_deleted_posts_and_of_gone_subscribers_are_dropped_each_with_its_reason(
    tmp_path, db
):
    """One message row of three items per subscriber: the first post deleted, doc9 gone."""
    loaded = make_config(tmp_path, SUBSCRIBERS)
    for n in range(3):
        add_request(db, str(n), f"Cas {n} ? #DocTocToc", "cardiology", "soon")
    Pipeline(loaded, db, classifier=object(), collectors=[], clock=lambda: T0).route()
    with db.session() as s:
        s.get(PostRow, 1).deleted = True
        s.get(SubscriberRow, "doc9").unsubscribed_at = T0
    outbox = OutboxChannel(loaded.config.channels.outbox, base_dir=tmp_path)
    result = flush_with(loaded, db, outbox, T0 + timedelta(hours=2))
    assert result.messages == 9 and result.dropped == 9 + 3
    with db.session() as s:
        items = s.execute(select(DeliveryRow.subscriber_id, DeliveryRow.post_id, DeliveryRow.id,
                                 DeliveryRow.status, MessageRow.last_error, MessageRow.message_key)
                          .join(MessageRow, MessageRow.id == DeliveryRow.message_id)).all()  # fmt: skip
    for sub, post, _row_id, status, error, key in items:
        if post == 1:
            assert (status, error) == ("dropped", "post deleted at its source")
        elif sub == "doc9":
            assert (status, error) == ("dropped", "unsubscribed or removed from config")
        else:
            assert status == "sent"
            # the new message key names the message's first item still there (post 2's)
            first = min(i for s_, p, i, *_ in items if s_ == sub and p != 1)
            assert key.endswith(f".{first}")
