"""Issue 12, retention: raw payloads and the delivery log are purged after their ages; a post
deleted at its source keeps no content at all."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from bot.retention import purge
from bot.storage.models import ClassificationRow, DeliveryRow, MessageRow, PostRow
from digests.routing import sync_subscribers
from tests.digests.helpers import T0, add_request, make_config


def test_purge_drops_old_raw_payloads_and_delivery_log_and_deleted_content(tmp_path, any_db):
    db = any_db
    loaded = make_config(
        tmp_path,
        "- {name: Dr A, id: a}\n",
        extra="retention: {raw_payloads: 30d, delivery_log: 90d}\n",
    )
    old = add_request(db, "1", "Ancien cas #DocTocToc", "dermatology", "soon", cues=["x"])
    new = add_request(db, "2", "Cas récent #DocTocToc", "dermatology", "soon")
    gone = add_request(db, "3", "Supprimé, il est devant moi", "dermatology", "urgent",
                       cues=["il est devant moi"])  # fmt: skip
    now = T0 + timedelta(days=100)
    with db.session() as s:
        sync_subscribers(s, loaded, T0)
        for pid, collected in ((old, T0), (new, now - timedelta(days=1)), (gone, T0)):
            row = s.get(PostRow, pid)
            row.raw, row.collected_at = {"id": str(pid), "content": row.text}, collected
        deleted = s.get(PostRow, gone)
        deleted.deleted = True  # as an older version of the bot left it: hidden, not erased
        for pid, status, updated in (
            (old, "sent", T0),
            (new, "sent", now - timedelta(days=1)),
            (old, "pending", T0),
        ):
            channel = "outbox" if status == "sent" else "smtp"
            message = MessageRow(
                subscriber_id="a", channel=channel, kind="digest", status=status, attempts=0,
                due_at=updated, created_at=updated, updated_at=updated,
            )  # fmt: skip
            s.add(DeliveryRow(
                subscriber_id="a", post_id=pid, channel=channel, kind="digest",
                reason="specialty", message=message, created_at=updated,
            ))  # fmt: skip
    result = purge(db, loaded, now)
    assert (result.raw_payloads, result.deliveries, result.deleted_posts) == (2, 1, 1)
    with db.session() as s:
        raw = {p.id: p.raw for p in s.scalars(select(PostRow))}
        assert raw[old] is None and raw[new] is not None and raw[gone] is None
        left = {(d.post_id, d.status) for d in s.scalars(select(DeliveryRow))}
        assert left == {(new, "sent"), (old, "pending")}  # pending is never purged
        erased = s.get(PostRow, gone)
        assert erased.text == "" and erased.media == []
        cues = s.scalar(select(ClassificationRow.cues).where(ClassificationRow.post_id == gone))
        assert cues == []
    assert purge(db, loaded, now).line().startswith("purged: 0 raw payloads, 0 delivery")
