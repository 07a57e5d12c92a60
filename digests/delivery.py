"""Exactly-once delivery from the deliveries table (an outbox).

A group of due deliveries is claimed and marked `sending` (committed) before the
network call, and `sent` after it. Failures go back to `pending` with exponential
backoff, then `failed`. After a crash, `sending` rows older than
`delivery.sending_timeout` are reconciled per channel: email is resent with the same
Message-ID; DMs are never resent (at most once) and are marked failed.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from bot.core.config import LoadedConfig
from bot.core.config_models import SubscriberConfig
from bot.storage.classifications import latest_classification, latest_classifications
from bot.storage.db import Database
from bot.storage.models import ClassificationRow, DeliveryRow, PostRow
from digests.channels.base import Channel, SendResult
from digests.render import Digest, DigestItem
from digests.routing import active_subscribers
from digests.tokens import correction_token, resolve_secret, unsubscribe_token, viewer_token

log = logging.getLogger(__name__)


@dataclass
class FlushResult:
    sent: list[tuple[str, str, str, int]] = field(
        default_factory=list
    )  # (subscriber, channel, kind, items)
    failed: int = 0
    retrying: int = 0
    dropped: int = 0

    @property
    def messages(self) -> int:
        return len(self.sent)


def backoff(attempts: int, loaded: LoadedConfig) -> timedelta:
    cfg = loaded.config.delivery
    delay = cfg.first_retry * (2 ** max(0, attempts - 1))
    return min(delay, cfg.max_retry)


def reconcile(
    session: Session,
    loaded: LoadedConfig,
    channels: dict[str, Channel],
    now: datetime,
    only_channel: str | None = None,
) -> int:
    """Settle deliveries left `sending` by a crash (see module docstring)."""
    limit = now - loaded.config.delivery.sending_timeout
    query = select(DeliveryRow).where(
        DeliveryRow.status == "sending", DeliveryRow.updated_at <= limit
    )
    if only_channel is not None:
        query = query.where(DeliveryRow.channel == only_channel)
    rows = session.scalars(query).all()
    for row in rows:
        channel = channels.get(row.channel)
        resend = channel.resend_after_crash if channel else row.channel in ("smtp", "outbox")
        if resend:
            row.status = "pending"  # message_key kept: same Message-ID on the resend
            row.due_at = now
            row.last_error = "interrupted while sending; resent with the same Message-ID"
        else:
            row.status = "failed"
            row.last_error = "interrupted while sending; outcome unknown, not resent (at most once)"
        row.updated_at = now
    return len(rows)


def _due_conditions(now: datetime, force: bool) -> list:
    conditions = [DeliveryRow.status == "pending"]
    if force:
        # --now flushes everything pending, but a failed send still waits for its backoff.
        conditions.append(or_(DeliveryRow.attempts == 0, DeliveryRow.due_at <= now))
    else:
        conditions.append(DeliveryRow.due_at <= now)
    return conditions


def flush(
    db: Database,
    loaded: LoadedConfig,
    channels: dict[str, Channel],
    now: datetime,
    *,
    force: bool = False,
    after_claim: Callable[[], None] | None = None,
    only_channel: str | None = None,
) -> FlushResult:
    """Send every due delivery, grouped into one message per (subscriber, channel, kind).

    With `only_channel`, only that channel's deliveries are looked at: each channel's job
    works on its own rows, beside the others.
    """
    result = FlushResult()
    conditions = _due_conditions(now, force)
    if only_channel is not None:
        conditions.append(DeliveryRow.channel == only_channel)
    with db.session() as session:
        reconcile(session, loaded, channels, now, only_channel)
        subs = {s.key: s for s in active_subscribers(session, loaded)}
        groups: dict[tuple[str, str, str, str | None], list[int]] = defaultdict(list)
        dropped: dict[str, list[int]] = defaultdict(list)
        post_ids: set[int] = set()
        due = session.execute(
            select(
                DeliveryRow.id,
                DeliveryRow.subscriber_id,
                DeliveryRow.post_id,
                DeliveryRow.channel,
                DeliveryRow.kind,
                DeliveryRow.message_key,
                PostRow.deleted,
            )
            .outerjoin(PostRow, PostRow.id == DeliveryRow.post_id)
            .where(*conditions)
            .order_by(DeliveryRow.id)
        ).all()
        for row_id, sub_id, post_id, channel_name, kind, message_key, deleted in due:
            if deleted is None or deleted:
                dropped["post deleted at its source"].append(row_id)
                continue
            if sub_id not in subs:
                dropped["unsubscribed or removed from config"].append(row_id)
                continue
            if channel_name not in channels:
                continue  # channel disabled: the item waits until it works
            groups[(sub_id, channel_name, kind, message_key)].append(row_id)
            post_ids.add(post_id)
        for reason, ids in dropped.items():
            for start in range(0, len(ids), 500):
                session.execute(
                    update(DeliveryRow)
                    .where(*_still_pending(session.bind.dialect, ids[start : start + 500]))
                    .values(status="dropped", updated_at=now, last_error=reason)
                    .execution_options(synchronize_session=False)
                )
            result.dropped += len(ids)
        secret = resolve_secret(session, loaded.config.web.secret)
        cache = load_posts(session, post_ids)
    for (sub_id, channel_name, kind, key), ids in groups.items():
        _send_group(
            db,
            loaded,
            subs[sub_id],
            channels[channel_name],
            kind,
            key,
            ids,
            secret,
            now,
            result,
            after_claim,
            cache,
        )
    return result


PostCache = dict[int, tuple[PostRow, "ClassificationRow | None"]]


def load_posts(session: Session, post_ids: set[int]) -> PostCache:
    """Posts and their latest classification, loaded once for a whole flush."""
    cache: PostCache = {}
    ids = sorted(post_ids)
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        posts = {p.id: p for p in session.scalars(select(PostRow).where(PostRow.id.in_(chunk)))}
        latest = latest_classifications(session, chunk)
        for pid, post in posts.items():
            cache[pid] = (post, latest.get(pid))
    return cache


def _send_group(
    db,
    loaded,
    sub: SubscriberConfig,
    channel: Channel,
    kind: str,
    key: str | None,
    ids: list[int],
    secret: bytes,
    now: datetime,
    result: FlushResult,
    after_claim: Callable[[], None] | None,
    cache: PostCache,
) -> None:
    key = key or f"{sub.key}.{channel.name}.{kind}.{now:%Y%m%dT%H%M%S}.{min(ids)}"
    claimed_rows = claim(db, ids, key, now)  # committed before any network call
    if not claimed_rows:
        return
    claimed = [row_id for row_id, _, _ in claimed_rows]
    pairs = [(post_id, reason) for _, post_id, reason in claimed_rows]
    with db.session() as session:
        digest = build_digest(session, loaded, sub, kind, pairs, key, secret, now, cache)
    if after_claim is not None:
        after_claim()
    try:
        outcome = channel.send(digest, sub)
    except Exception as exc:  # noqa: BLE001 - a channel bug must not lose the delivery
        log.exception("channel %s crashed", channel.name)
        outcome = SendResult.failure(f"channel error: {exc!r}")
    if outcome.ok:
        with db.engine.begin() as conn:
            conn.execute(
                update(DeliveryRow)
                .where(DeliveryRow.id.in_(claimed))
                .values(status="sent", sent_at=now, last_error=None, updated_at=now)
            )
    else:
        with db.session() as session:
            rows = session.scalars(select(DeliveryRow).where(DeliveryRow.id.in_(claimed))).all()
            for row in rows:
                row.updated_at = now
                row.attempts += 1
                row.last_error = outcome.error
                if not outcome.retryable or row.attempts >= loaded.config.delivery.max_attempts:
                    row.status = "failed"
                else:
                    row.status, row.due_at = "pending", now + backoff(row.attempts, loaded)
    if outcome.ok:
        result.sent.append((sub.key, channel.name, kind, len(claimed)))
        log.info(
            "sent %s to %s by %s (%d items): %s",
            kind,
            sub.key,
            channel.name,
            len(claimed),
            outcome.detail,
        )
    elif not outcome.retryable:
        result.failed += len(claimed)
        log.warning(
            "delivery to %s by %s failed for good: %s", sub.key, channel.name, outcome.error
        )
    else:
        result.retrying += len(claimed)
        log.warning(
            "delivery to %s by %s failed, will retry: %s", sub.key, channel.name, outcome.error
        )


def _still_pending(dialect: Any, ids: list[int]) -> tuple:
    """WHERE terms for "these deliveries, if nobody has claimed them meanwhile"."""
    pending = DeliveryRow.status == "pending"
    if dialect.name == "sqlite":
        # Without this hint SQLite walks the (status, due_at) index over every pending row
        # instead of looking the ids up by primary key: quadratic in the backlog.
        pending = func.likely(pending)
    return DeliveryRow.id.in_(ids), pending


def claim(db: Database, ids: list[int], key: str, now: datetime) -> list[tuple[int, int, str]]:
    """Mark still-pending deliveries `sending` in one short transaction; return what we got.

    Another bot process (PostgreSQL) may claim the same rows at the same moment: the
    `status = 'pending'` condition is re-checked under the row lock, so each row is claimed
    by exactly one process. Returns (delivery id, post id, reason) per claimed row.
    """
    values = {"status": "sending", "message_key": key, "updated_at": now}
    with db.engine.begin() as conn:
        pending = _still_pending(conn.dialect, ids)
        if conn.dialect.update_returning:
            stmt = (
                update(DeliveryRow)
                .where(*pending)
                .values(**values)
                .returning(DeliveryRow.id, DeliveryRow.post_id, DeliveryRow.reason)
            )
            rows = [tuple(r) for r in conn.execute(stmt)]
        else:  # no UPDATE ... RETURNING (MySQL): lock, then update what was locked
            rows = [
                tuple(r)
                for r in conn.execute(
                    select(DeliveryRow.id, DeliveryRow.post_id, DeliveryRow.reason)
                    .where(*pending)
                    .with_for_update(skip_locked=True)
                )
            ]
            if rows:
                conn.execute(
                    update(DeliveryRow)
                    .where(DeliveryRow.id.in_([r[0] for r in rows]))
                    .values(**values)
                )
    return sorted(rows)


def build_digest(
    session: Session,
    loaded: LoadedConfig,
    sub: SubscriberConfig,
    kind: str,
    pairs: list[tuple[int, str]],
    key: str,
    secret: bytes,
    now: datetime,
    cache: PostCache | None = None,
) -> Digest:
    """The digest of (post id, routing reason) pairs for one subscriber."""
    public = loaded.config.web.public_url.rstrip("/")
    items = []
    for post_id, reason in pairs:
        if cache is not None and post_id in cache:
            post, c = cache[post_id]
        else:
            post, c = session.get(PostRow, post_id), latest_classification(session, post_id)
        items.append(_item(session, post, c, reason, sub, secret, public))
    order = {"urgent": 0, "soon": 1, "routine": 2}
    items.sort(
        key=lambda it: (
            order.get(it.urgency or "routine", 3),
            # Urgent cases by their probability of urgency (the sure ones first), so a
            # borderline form question never leads before a suicidal patient.
            -(it.urgency_score or 0.0) if it.urgency == "urgent" else 0.0,
            -it.created_at.timestamp(),
        )
    )
    answered = [] if kind in ("alert", "student") else [it for it in items if it.answer_count]
    open_items = [it for it in items if it not in answered]
    shown = open_items[: sub.max_items]
    more = len(open_items) - len(shown)
    spec = "all" if sub.specialties == "all" else ",".join(sub.specialties)
    return Digest(
        subscriber_id=sub.key,
        subscriber_name=sub.name,
        language=sub.language[0],
        kind=kind,
        items=shown,
        answered=answered[: max(0, sub.max_items - len(shown))],
        more=more,
        more_url=f"{public}/cases?specialty={spec}"
        + (f"&v={viewer_token(secret, sub.key)}" if sub.hide_authors else ""),
        unsubscribe_url=f"{public}/unsubscribe/{unsubscribe_token(secret, sub.key)}",
        specialties=spec.replace(",", ", "),
        message_key=key,
        generated_at=now,
        stale_after=loaded.config.delivery.stale_alert_after,
    )


def _item(
    session, post: PostRow, c, reason: str, sub: SubscriberConfig, secret: bytes, public: str
) -> DigestItem:
    answers: list[str] = []
    if sub.role == "student" and post.answer_count:
        answers = list(
            session.scalars(
                select(PostRow.text)
                .where(PostRow.answer_to_id == post.id, PostRow.deleted.is_(False))
                .order_by(PostRow.created_at)
                .limit(5)
            )
        )
    hidden = sub.hide_authors
    author = "" if hidden else (post.author_name or post.author_handle)
    if not hidden and post.author_handle and post.author_name:
        author = f"{post.author_name} ({post.author_handle})"
    return DigestItem(
        post_id=post.id,
        url=post.url,
        text=post.text,
        author=author or "—",
        network=post.network,
        created_at=post.created_at,
        specialty=c.specialty if c else None,
        urgency=c.urgency if c else None,
        urgency_score=c.urgency_score if c else None,
        cues=list(c.cues or []) if c else [],
        answer_count=post.answer_count,
        media=list(post.media or []),
        correction_url=f"{public}/correct/{correction_token(secret, post.id, sub.key)}",
        uncertain=bool(c and c.uncertain),
        reason=reason,
        answers=answers,
    )
