"""Several bot processes sharing one database never send the same delivery twice."""

from __future__ import annotations

import pytest
from sqlalchemy import event, func, select

from bot.pipeline import Pipeline
from bot.storage.db import Database
from bot.storage.deliveries import claim
from bot.storage.models import DeliveryRow, MessageRow
from digests.channels.base import Channel, SendResult
from digests.delivery import flush

from .helpers import T0, add_request, make_config

SUBSCRIBERS = "\n".join(
    f"""\
- name: Dr {i}
  id: doc{i}
  language: [fr, en]
  email: doc{i}@example.org
  deliver_by: [outbox]
  specialties: all
  immediate: never
"""
    for i in range(6)
)


class Recording(Channel):
    name = "outbox"

    def __init__(self, sent: list[tuple[str, list[int]]], process: str):
        self.sent, self.process = sent, process

    def send(self, digest, subscriber) -> SendResult:
        self.sent.append((digest.subscriber_id, sorted(i.post_id for i in digest.items)))
        return SendResult.success(self.process)


def routed(tmp_path, database: Database):
    loaded = make_config(tmp_path, SUBSCRIBERS)
    for n in range(4):
        add_request(database, str(n), f"Cas {n}: question ? #DocTocToc", "cardiology", "soon")
    Pipeline(loaded, database, classifier=object(), collectors=[], clock=lambda: T0).route()
    return loaded


def test_a_second_process_flushing_meanwhile_sends_each_digest_once(tmp_path, any_db):
    loaded = routed(tmp_path, any_db)
    other = Database(any_db.url)  # another bot process: its own engine and connections
    sent: list[tuple[str, list[int]]] = []
    interleaved = []

    def second_process_runs_now():
        # Process A has claimed its first digest and is about to send it: B flushes
        # everything else in between, and A must then find nothing left to claim.
        if not interleaved:
            interleaved.append(
                flush(other, loaded, {"outbox": Recording(sent, "B")}, T0, force=True)
            )

    first = flush(
        any_db,
        loaded,
        {"outbox": Recording(sent, "A")},
        T0,
        force=True,
        after_claim=second_process_runs_now,
    )
    other.dispose()
    assert first.messages == 1 and interleaved[0].messages == 5
    recipients = sorted(sub for sub, _ in sent)
    assert recipients == [f"doc{i}" for i in range(6)]  # everyone once, nobody twice
    assert all(len(items) == 4 for _, items in sent)
    with any_db.session() as s:
        assert s.scalar(select(func.count(DeliveryRow.id)).where(DeliveryRow.status != "sent")) == 0


@pytest.fixture(params=["update-returning", "lock-then-update"])
def claim_path(request, any_db):
    """Both ways of claiming: UPDATE ... RETURNING, and (databases without it) a locking
    SELECT followed by an UPDATE."""
    if request.param == "lock-then-update":
        dialect = any_db.engine.dialect
        saved = dialect.update_returning
        dialect.update_returning = False
        yield any_db
        dialect.update_returning = saved
    else:
        yield any_db


def test_claim_gives_each_pending_message_to_one_claimant(tmp_path, any_db, claim_path):
    routed(tmp_path, any_db)
    with any_db.session() as s:
        ids = sorted(s.scalars(select(MessageRow.id)))
        items = dict(s.execute(select(DeliveryRow.id, DeliveryRow.message_id)).all())
    other = Database(any_db.url)
    mine, my_items = claim(any_db, ids[: len(ids) // 2 + 1], "key-a", T0)
    theirs, their_items = claim(other, ids, "key-b", T0)
    other.dispose()
    assert len(ids) == 6 and mine == ids[:4] and theirs == ids[4:]
    assert {r[0] for r in my_items} | {r[0] for r in their_items} == set(items)
    assert {items[r[0]] for r in my_items} == set(mine)  # a message's items come with it
    assert claim(any_db, ids, "key-c", T0) == ([], [])  # nothing pending any more
    with any_db.session() as s:
        keys = dict(s.execute(select(DeliveryRow.id, DeliveryRow.message_key)).all())
    assert {keys[r[0]] for r in my_items} == {"key-a"}
    assert {keys[r[0]] for r in their_items} == {"key-b"}


def test_claim_looks_messages_up_by_primary_key_on_sqlite(tmp_path, db):
    # A large backlog of pending messages must not make each claim scan all of them.
    routed(tmp_path, db)
    statements = []
    event.listen(
        db.engine,
        "before_cursor_execute",
        lambda conn, cursor, sql, params, context, many: statements.append((sql, params)),
    )
    with db.session() as s:
        ids = sorted(s.scalars(select(MessageRow.id)))[:3]
    assert len(claim(db, ids, "key", T0)[0]) == 3
    [(sql, params)] = [(q, p) for q, p in statements if q.lstrip().upper().startswith("UPDATE")]
    with db.engine.connect() as conn:
        plan = " ".join(
            str(row) for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", params)
        )
    assert "PRIMARY KEY" in plan, plan
