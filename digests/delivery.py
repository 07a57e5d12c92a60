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

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from bot.config import LoadedConfig
from bot.config_models import SubscriberConfig
from bot.storage.db import Database
from bot.storage.models import ClassificationRow, DeliveryRow, PostRow

from .channels.base import Channel, SendResult
from .render import Digest, DigestItem
from .routing import active_subscribers, latest_classification
from .tokens import correction_token, resolve_secret, unsubscribe_token

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
    session: Session, loaded: LoadedConfig, channels: dict[str, Channel], now: datetime
) -> int:
    """Settle deliveries left `sending` by a crash (see module docstring)."""
    limit = now - loaded.config.delivery.sending_timeout
    rows = session.scalars(
        select(DeliveryRow).where(DeliveryRow.status == "sending", DeliveryRow.updated_at <= limit)
    ).all()
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


def _due_query(now: datetime, force: bool):
    query = select(DeliveryRow).where(DeliveryRow.status == "pending")
    if force:
        # --now flushes everything pending, but a failed send still waits for its backoff.
        return query.where(or_(DeliveryRow.attempts == 0, DeliveryRow.due_at <= now))
    return query.where(DeliveryRow.due_at <= now)


def flush(
    db: Database,
    loaded: LoadedConfig,
    channels: dict[str, Channel],
    now: datetime,
    *,
    force: bool = False,
    after_claim: Callable[[], None] | None = None,
) -> FlushResult:
    """Send every due delivery, grouped into one message per (subscriber, channel, kind)."""
    result = FlushResult()
    with db.session() as session:
        reconcile(session, loaded, channels, now)
        subs = {s.key: s for s in active_subscribers(session, loaded)}
        groups: dict[tuple[str, str, str, str | None], list[int]] = defaultdict(list)
        for row in session.scalars(_due_query(now, force).order_by(DeliveryRow.id)):
            post = session.get(PostRow, row.post_id)
            if row.subscriber_id not in subs or post is None or post.deleted:
                row.status, row.updated_at = "dropped", now
                row.last_error = (
                    "post deleted at its source"
                    if post is None or post.deleted
                    else "unsubscribed or removed from config"
                )
                result.dropped += 1
                continue
            if row.channel not in channels:
                continue  # channel disabled: the item waits until it works
            kind = "digest" if row.kind == "digest" else row.kind
            groups[(row.subscriber_id, row.channel, kind, row.message_key)].append(row.id)
        secret = resolve_secret(session, loaded.config.web.secret)
        all_ids = [i for ids in groups.values() for i in ids]
        post_ids = (
            set(session.scalars(select(DeliveryRow.post_id).where(DeliveryRow.id.in_(all_ids))))
            if all_ids
            else set()
        )
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
        latest: dict[int, ClassificationRow] = {}
        for c in session.scalars(
            select(ClassificationRow)
            .where(ClassificationRow.post_id.in_(chunk))
            .order_by(ClassificationRow.id)
        ):
            latest[c.post_id] = c
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
    with db.session() as session:  # claim: committed before any network call
        rows = session.scalars(
            select(DeliveryRow)
            .where(DeliveryRow.id.in_(ids), DeliveryRow.status == "pending")
            .with_for_update(skip_locked=True)  # several bot processes on PostgreSQL
        ).all()
        for row in rows:
            row.status, row.message_key, row.updated_at = "sending", key, now
        claimed = [r.id for r in rows]
        if not claimed:
            return
        pairs = [(r.post_id, r.reason) for r in rows]
        digest = build_digest(session, loaded, sub, kind, pairs, key, secret, now, cache)
    if after_claim is not None:
        after_claim()
    try:
        outcome = channel.send(digest, sub)
    except Exception as exc:  # noqa: BLE001 - a channel bug must not lose the delivery
        log.exception("channel %s crashed", channel.name)
        outcome = SendResult.failure(f"channel error: {exc!r}")
    with db.session() as session:
        rows = session.scalars(select(DeliveryRow).where(DeliveryRow.id.in_(claimed))).all()
        for row in rows:
            row.updated_at = now
            if outcome.ok:
                row.status, row.sent_at, row.last_error = "sent", now, None
                continue
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
    items.sort(key=lambda it: (order.get(it.urgency or "routine", 3), -it.created_at.timestamp()))
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
        more_url=f"{public}/cases?specialty={spec}",
        unsubscribe_url=f"{public}/unsubscribe/{unsubscribe_token(secret, sub.key)}",
        specialties=spec.replace(",", ", "),
        message_key=key,
        generated_at=now,
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
        cues=list(c.cues or []) if c else [],
        answer_count=post.answer_count,
        media=list(post.media or []),
        correction_url=f"{public}/correct/{correction_token(secret, post.id, sub.key)}",
        uncertain=bool(c and c.uncertain),
        reason=reason,
        answers=answers,
    )
