"""The deliveries table as an exactly-once queue: add, find due, claim, settle, reconcile.

A delivery is claimed (`sending`, committed) before the network call and settled (`sent`,
back to `pending` with a backoff, or `failed`) after it. Claims and settlements go in
batches: one transaction for many messages, each row re-checked `pending` when claimed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, func, or_, select, text, update

from bot.storage.classifications import latest_classifications
from bot.storage.models import ClassificationRow, DeliveryRow, PostRow, UtcDateTime

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from bot.storage.db import Database

CHUNK = 500  # ids per IN (...) list

Claimed = list[tuple[int, int, str]]  # (delivery id, post id, routing reason)
PostCache = dict[int, tuple[PostRow, "ClassificationRow | None"]]


@dataclass(frozen=True)
class DueDelivery:
    id: int
    subscriber_id: str
    post_id: int
    channel: str
    kind: str
    message_key: str | None
    post_deleted: bool  # also True when the post is gone from the database


def _chunks(ids: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(ids), CHUNK):
        yield ids[start : start + CHUNK]


def reconcile(
    session: Session,
    now: datetime,
    timeout: timedelta,
    resend: Callable[[str], bool],
    only_channel: str | None = None,
) -> int:
    """Settle deliveries left `sending` longer than `timeout` by a crash.

    `resend(channel)` says whether that channel's messages may go again (e-mail: yes, with
    the same Message-ID, the key is kept; direct messages: no, marked failed)."""
    query = select(DeliveryRow).where(
        DeliveryRow.status == "sending", DeliveryRow.updated_at <= now - timeout
    )
    if only_channel is not None:
        query = query.where(DeliveryRow.channel == only_channel)
    rows = session.scalars(query).all()
    for row in rows:
        if resend(row.channel):
            row.status = "pending"  # message_key kept: same Message-ID on the resend
            row.due_at = now
            row.last_error = "interrupted while sending; resent with the same Message-ID"
        else:
            row.status = "failed"
            row.last_error = "interrupted while sending; outcome unknown, not resent (at most once)"
        row.updated_at = now
    return len(rows)


def due(
    session: Session, now: datetime, *, force: bool = False, only_channel: str | None = None
) -> list[DueDelivery]:
    """Pending deliveries due now, in id order (`force`: all pending never tried yet, too)."""
    conditions = [DeliveryRow.status == "pending"]
    if force:
        # --now flushes everything pending, but a failed send still waits for its backoff.
        conditions.append(or_(DeliveryRow.attempts == 0, DeliveryRow.due_at <= now))
    else:
        conditions.append(DeliveryRow.due_at <= now)
    if only_channel is not None:
        conditions.append(DeliveryRow.channel == only_channel)
    rows = session.execute(
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
    return [
        DueDelivery(row_id, sub, post, channel, kind, key, deleted is None or bool(deleted))
        for row_id, sub, post, channel, kind, key, deleted in rows
    ]


def drop(session: Session, ids: list[int], reason: str, now: datetime) -> None:
    """Mark still-pending deliveries `dropped` (post deleted, subscriber gone)."""
    for chunk in _chunks(ids):
        session.execute(
            update(DeliveryRow)
            .where(*_still_pending(session.get_bind().dialect, list(chunk)))
            .values(status="dropped", updated_at=now, last_error=reason)
            .execution_options(synchronize_session=False)
        )


def _still_pending(dialect: Any, ids: list[int]) -> tuple:
    """WHERE terms for "these deliveries, if nobody has claimed them meanwhile"."""
    pending = DeliveryRow.status == "pending"
    if dialect.name == "sqlite":
        # Without this hint SQLite walks the (status, due_at) index over every pending row
        # instead of looking the ids up by primary key: quadratic in the backlog.
        pending = func.likely(pending)
    return DeliveryRow.id.in_(ids), pending


def _claim_on(conn: Any, ids: list[int], key: str, now: datetime) -> Claimed:
    values = {"status": "sending", "message_key": key, "updated_at": now}
    pending = _still_pending(conn.dialect, ids)
    stmt = (
        update(DeliveryRow)
        .where(*pending)
        .values(**values)
        .returning(DeliveryRow.id, DeliveryRow.post_id, DeliveryRow.reason)
    )
    rows = [tuple(r) for r in conn.execute(stmt)]
    return sorted(rows)  # type: ignore[arg-type]


def claim(db: Database, ids: list[int], key: str, now: datetime) -> Claimed:
    """Mark still-pending deliveries `sending` in one short transaction; return what we got.

    Another bot process (PostgreSQL) may claim the same rows at the same moment: the
    `status = 'pending'` condition is re-checked under the row lock, so each row is claimed
    by exactly one process. Returns (delivery id, post id, reason) per claimed row.
    """
    with db.engine.begin() as conn:
        return _claim_on(conn, ids, key, now)


def claim_batch(db: Database, groups: list[tuple[list[int], str]], now: datetime) -> list[Claimed]:
    """Claim several messages' deliveries in one transaction (see `claim`), one list each.

    One UPDATE ... RETURNING per 500 deliveries, each row getting its message's key."""
    with db.engine.begin() as conn:
        key_of = {row_id: key for ids, key in groups for row_id in ids}
        got: dict[int, tuple[int, int, str]] = {}
        for chunk in _chunks(sorted(key_of)):
            claimed = _claim_keyed(conn, {i: key_of[i] for i in chunk}, now)
            got.update((r[0], (r[0], r[1], r[2])) for r in claimed)
        return [sorted(got[i] for i in ids if i in got) for ids, _ in groups]


# PostgreSQL: the rows joined to two arrays (one compiled statement, whatever the batch).
_PG_CLAIM = text(
    "UPDATE deliveries SET status = 'sending', updated_at = :now, message_key = v.vkey "
    "FROM unnest(CAST(:ids AS integer[]), CAST(:keys AS varchar[])) AS v(vid, vkey) "
    "WHERE deliveries.id = v.vid AND deliveries.status = 'pending' "
    "RETURNING deliveries.id, deliveries.post_id, deliveries.reason"
).bindparams(bindparam("now", type_=UtcDateTime()))


def _claim_keyed(conn: Any, keys: dict[int, str], now: datetime) -> Any:
    """Claim these rows if still pending, each with its own key (UPDATE ... RETURNING):
    joined to arrays of (id, key) on PostgreSQL, to a VALUES list on SQLite."""
    if conn.dialect.name == "postgresql":
        stmt = _PG_CLAIM.bindparams(now=now, ids=list(keys), keys=list(keys.values()))
        return conn.execute(stmt)
    # SQLite (the only other supported database, bot.storage.db.SUPPORTED)
    stamp = DeliveryRow.__table__.c.updated_at.type._cached_bind_processor(conn.dialect)
    rows = ", ".join(["(?, ?)"] * len(keys))
    sql = (
        f"UPDATE deliveries SET status = 'sending', updated_at = ?, message_key = v.column2 "
        f"FROM (VALUES {rows}) AS v WHERE deliveries.id = v.column1 "
        f"AND deliveries.status = 'pending' "
        f"RETURNING deliveries.id, deliveries.post_id, deliveries.reason"
    )
    params = [stamp(now) if stamp else now]
    for pair in keys.items():
        params.extend(pair)
    return conn.exec_driver_sql(sql, tuple(params))


@dataclass
class Failure:
    ids: list[int]
    error: str
    retryable: bool


def settle(
    db: Database,
    sent: list[int],
    failures: list[Failure],
    now: datetime,
    *,
    max_attempts: int,
    backoff: Callable[[int], timedelta],
) -> None:
    """Record a batch of outcomes in one transaction: sent rows, and failed attempts (back
    to `pending` after `backoff(attempts)`, or `failed` when not retryable or out of tries)."""
    if not sent and not failures:
        return
    with db.engine.begin() as conn:
        for chunk in _chunks(sent):
            conn.execute(
                update(DeliveryRow)
                .where(DeliveryRow.id.in_(chunk))
                .values(status="sent", sent_at=now, last_error=None, updated_at=now)
            )
        for failure in failures:
            attempts = conn.execute(
                select(DeliveryRow.id, DeliveryRow.attempts).where(DeliveryRow.id.in_(failure.ids))
            ).all()
            for row_id, tried in attempts:
                tried += 1
                values: dict[str, Any] = {
                    "attempts": tried,
                    "last_error": failure.error,
                    "updated_at": now,
                }
                if not failure.retryable or tried >= max_attempts:
                    values["status"] = "failed"
                else:
                    values["status"], values["due_at"] = "pending", now + backoff(tried)
                conn.execute(update(DeliveryRow).where(DeliveryRow.id == row_id).values(**values))


def load_posts(session: Session, post_ids: set[int]) -> PostCache:
    """Posts and their latest classification, loaded once for a whole flush."""
    cache: PostCache = {}
    for chunk in _chunks(sorted(post_ids)):
        chunk = list(chunk)
        posts = {p.id: p for p in session.scalars(select(PostRow).where(PostRow.id.in_(chunk)))}
        latest = latest_classifications(session, chunk)
        for pid, post in posts.items():
            cache[pid] = (post, latest.get(pid))
    return cache


def answer_texts(session: Session, post_id: int, limit: int = 5) -> list[str]:
    """The first answers to a case, oldest first (a student's digest shows them)."""
    return list(
        session.scalars(
            select(PostRow.text)
            .where(PostRow.answer_to_id == post_id, PostRow.deleted.is_(False))
            .order_by(PostRow.created_at)
            .limit(limit)
        )
    )


# --- routing: new deliveries -------------------------------------------------------------


def existing(session: Session, post_ids: list[int]) -> set[tuple[str, int, str]]:
    """(subscriber, post, channel) of the deliveries these posts already have."""
    out: set[tuple[str, int, str]] = set()
    for chunk in _chunks(post_ids):
        out.update(
            tuple(row)  # type: ignore[misc]
            for row in session.execute(
                select(DeliveryRow.subscriber_id, DeliveryRow.post_id, DeliveryRow.channel).where(
                    DeliveryRow.post_id.in_(chunk)
                )
            )
        )
    return out


def unanswered_urgent(session: Session, since: datetime) -> list[tuple[PostRow, ClassificationRow]]:
    """Urgent requests collected since `since`, still unanswered, by their latest classification."""
    rows = session.execute(
        select(PostRow, ClassificationRow)
        .join(ClassificationRow, ClassificationRow.post_id == PostRow.id)
        .where(
            ClassificationRow.urgency == "urgent",
            ClassificationRow.is_request.is_(True),
            PostRow.answer_count == 0,
            PostRow.deleted.is_(False),
            PostRow.answer_to_id.is_(None),
            PostRow.duplicate_of_id.is_(None),
            PostRow.collected_at >= since,
        )
    ).all()
    latest = latest_classifications(session, sorted({post.id for post, _ in rows}))
    return [(post, c) for post, c in rows if latest[post.id].id == c.id]


def release_student_items(
    session: Session, now: datetime, release: Callable[[str], datetime]
) -> int:
    """Student deliveries still waiting whose case has been answered meanwhile go out at
    `release(subscriber id)` when that is earlier than planned. Returns how many were found."""
    rows = session.scalars(
        select(DeliveryRow)
        .join(PostRow, PostRow.id == DeliveryRow.post_id)
        .where(
            DeliveryRow.kind == "student",
            DeliveryRow.status == "pending",
            DeliveryRow.attempts == 0,
            DeliveryRow.due_at > now,
            PostRow.answer_count > 0,
        )
    ).all()
    for row in rows:
        when = release(row.subscriber_id)
        if when < aware(row.due_at):
            row.due_at = when
    return len(rows)


def aware(value: datetime) -> datetime:
    """SQLite returns naive datetimes (stored in UTC)."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)
