"""The messages and deliveries tables as an exactly-once queue: find due, claim, settle,
reconcile, move items between messages (dropped, released early).

A message row (the items of one subscriber, channel and kind routed together, its
deliveries) is claimed (`sending`, committed) before the network call and settled (`sent`,
back to `pending` with a backoff, or `failed`) after it; one e-mail may carry several rows
(routed in different cycles), which then share its key. Claims and settlements go in
batches: one transaction for many messages, each row re-checked `pending` when claimed.
Deliveries are written only by routing and by the rare moves, never per send.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy import and_, bindparam, case, delete, func, or_, select, text, update

from bot.storage.classifications import latest_classifications
from bot.storage.models import ClassificationRow, DeliveryRow, MessageRow, PostRow, UtcDateTime

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from bot.storage.db import Database

CHUNK = 500  # ids per IN (...) list

Item = tuple[int, int, str]  # (delivery id, post id, routing reason)
ItemState = tuple[int, bool]  # (delivery id, its post is live)
Claimed = tuple[list[int], list[Item]]  # the message rows claimed, and their items
PostCache = dict[int, tuple[PostRow, "ClassificationRow | None"]]
FINISHED = ("sent", "failed", "dropped")


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
    """Settle messages left `sending` longer than `timeout` by a crash.

    `resend(channel)` says whether that channel's messages may go again (e-mail: yes, with
    the same Message-ID, the key is kept; direct messages: no, marked failed)."""
    query = select(MessageRow).where(
        MessageRow.status == "sending", MessageRow.updated_at <= now - timeout
    )
    if only_channel is not None:
        query = query.where(MessageRow.channel == only_channel)
    rows = session.scalars(query.with_for_update()).all()
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


def _due_conditions(now: datetime, force: bool, only_channel: str | None) -> list[Any]:
    conditions = [MessageRow.status == "pending"]
    if force:
        # --now flushes everything pending, but a failed send still waits for its backoff.
        conditions.append(or_(MessageRow.attempts == 0, MessageRow.due_at <= now))
    else:
        conditions.append(MessageRow.due_at <= now)
    if only_channel is not None:
        conditions.append(MessageRow.channel == only_channel)
    return conditions


def _post_live() -> Any:
    """An item's post (outer-joined) is still there and not deleted."""
    return and_(PostRow.id.is_not(None), PostRow.deleted.is_(False))


class DueMessage(NamedTuple):
    """A pending message due now, as the delivery loop groups and sends it."""

    id: int
    subscriber_id: str
    channel: str
    kind: str
    message_key: str | None
    first_live: int | None  # its first item (delivery id) whose post is live; None: none is
    gone: int  # its items whose post is deleted, or no longer in the database


def due_messages(
    session: Session, now: datetime, *, force: bool = False, only_channel: str | None = None
) -> list[DueMessage]:
    """The pending messages due now (`force`: and all those never tried yet), one row each
    (not one per item), in the order of their first live item."""
    live = _post_live()
    first_live = func.min(case((live, DeliveryRow.id)))
    rows = session.execute(
        select(
            MessageRow.id, MessageRow.subscriber_id, MessageRow.channel, MessageRow.kind,
            MessageRow.message_key, first_live, func.count() - func.count(case((live, 1))),
        )
        .join(DeliveryRow, DeliveryRow.message_id == MessageRow.id)
        .outerjoin(PostRow, PostRow.id == DeliveryRow.post_id)
        .where(*_due_conditions(now, force, only_channel))
        .group_by(MessageRow.id)
        .order_by(first_live, MessageRow.id)
    )  # fmt: skip
    return [DueMessage(*row) for row in rows]


def items_by_post_state(session: Session, message_ids: list[int]) -> dict[int, list[ItemState]]:
    """The items of these messages: {message id: [(delivery id, post live?)]}, by id."""
    live = _post_live()
    out: dict[int, list[ItemState]] = {}
    for chunk in _chunks(sorted(message_ids)):
        rows = session.execute(
            select(DeliveryRow.message_id, DeliveryRow.id, case((live, True), else_=False))
            .outerjoin(PostRow, PostRow.id == DeliveryRow.post_id)
            .where(DeliveryRow.message_id.in_(chunk))
            .order_by(DeliveryRow.id)
        )
        for message_id, row_id, is_live in rows:
            out.setdefault(message_id, []).append((row_id, bool(is_live)))
    return out


def drop(session: Session, items: dict[int, list[int]], reason: str, now: datetime) -> int:
    """Take these deliveries ({message id: delivery ids}) out of their messages, if still
    pending, into a `dropped` message each (post deleted, subscriber gone); how many."""
    dropped = {"status": "dropped", "last_error": reason}
    return move_items(session, items, now, lambda _old: dropped, claimed_too=True)


def move_items(
    session: Session,
    items: dict[int, list[int]],
    now: datetime,
    change: Callable[[MessageRow], dict[str, Any]],
    *,
    claimed_too: bool = False,
) -> int:
    """Move deliveries ({message id: delivery ids}) from their messages, if these are still
    pending (and never claimed, unless `claimed_too`), into a new message each: a copy of
    the old one with `change` applied. The old messages are locked first (PostgreSQL), so a
    claim waits and sees the move. A message left without items is deleted. Returns how
    many deliveries moved."""
    moved = 0
    for chunk in _chunks(sorted(items)):
        query = select(MessageRow).where(MessageRow.id.in_(chunk), MessageRow.status == "pending")
        if not claimed_too:
            query = query.where(MessageRow.message_key.is_(None))
        locked = session.scalars(query.with_for_update()).all()
        for old in locked:
            new = MessageRow(
                subscriber_id=old.subscriber_id, channel=old.channel, kind=old.kind,
                status=old.status, attempts=old.attempts, due_at=old.due_at,
                message_key=old.message_key, created_at=old.created_at, updated_at=now,
            )  # fmt: skip
            for name, value in change(old).items():
                setattr(new, name, value)
            session.add(new)
            session.flush()
            ids = items[old.id]
            session.execute(
                update(DeliveryRow)
                .where(DeliveryRow.id.in_(ids), DeliveryRow.message_id == old.id)
                .values(message_id=new.id)
                .execution_options(synchronize_session=False)
            )
            moved += len(ids)
        _delete_empty(session, [m.id for m in locked])
    return moved


def _delete_empty(session: Session, message_ids: list[int]) -> None:
    items = select(DeliveryRow.id).where(DeliveryRow.message_id == MessageRow.id).exists()
    session.execute(
        delete(MessageRow)
        .where(MessageRow.id.in_(message_ids), ~items)
        .execution_options(synchronize_session=False)
    )


def claim(db: Database, message_ids: list[int], key: str, now: datetime) -> Claimed:
    """Claim one message (its rows, if still pending): see `claim_batch`."""
    return claim_batch(db, [(message_ids, key)], now)[0]


def claim_batch(db: Database, groups: list[tuple[list[int], str]], now: datetime) -> list[Claimed]:
    """Mark still-pending message rows `sending` with their message's key, in one short
    transaction; return per message the rows claimed and their items (deliveries).

    Another bot process may claim the same rows at the same moment: `status = 'pending'` is
    re-checked under the row lock (PostgreSQL) or the write lock (SQLite), so each row is
    claimed by exactly one process. One UPDATE ... RETURNING per 500 message rows."""
    with db.engine.begin() as conn:
        key_of = {row_id: key for ids, key in groups for row_id in ids}
        got: set[int] = set()
        for chunk in _chunks(sorted(key_of)):
            got.update(r[0] for r in _claim_keyed(conn, {i: key_of[i] for i in chunk}, now))
        items: dict[int, list[Item]] = {}
        for chunk in _chunks(sorted(got)):
            rows = conn.execute(
                select(DeliveryRow.message_id, DeliveryRow.id, DeliveryRow.post_id, DeliveryRow.reason)
                .where(DeliveryRow.message_id.in_(chunk))
            )  # fmt: skip
            for message_id, row_id, post_id, reason in rows:
                items.setdefault(message_id, []).append((row_id, post_id, reason))
        out: list[Claimed] = []
        for ids, _key in groups:
            mine = sorted(i for i in ids if i in got)
            out.append((mine, sorted(item for i in mine for item in items.get(i, []))))
        return out


# PostgreSQL: the rows joined to two arrays (one compiled statement, whatever the batch).
_PG_CLAIM = text(
    "UPDATE messages SET status = 'sending', updated_at = :now, message_key = v.vkey "
    "FROM unnest(CAST(:ids AS integer[]), CAST(:keys AS varchar[])) AS v(vid, vkey) "
    "WHERE messages.id = v.vid AND messages.status = 'pending' RETURNING messages.id"
).bindparams(bindparam("now", type_=UtcDateTime()))


def _claim_keyed(conn: Any, keys: dict[int, str], now: datetime) -> Any:
    """Claim these message rows if still pending, each with its key (UPDATE ... RETURNING):
    joined to arrays of (id, key) on PostgreSQL, to a VALUES list on SQLite."""
    if conn.dialect.name == "postgresql":
        stmt = _PG_CLAIM.bindparams(now=now, ids=list(keys), keys=list(keys.values()))
        return conn.execute(stmt)
    # SQLite (the only other supported database, bot.storage.db.SUPPORTED)
    stamp = MessageRow.__table__.c.updated_at.type._cached_bind_processor(conn.dialect)
    rows = ", ".join(["(?, ?)"] * len(keys))
    sql = (
        f"UPDATE messages SET status = 'sending', updated_at = ?, message_key = v.column2 "
        f"FROM (VALUES {rows}) AS v WHERE messages.id = v.column1 "
        f"AND messages.status = 'pending' RETURNING messages.id"
    )
    params = [stamp(now) if stamp else now]
    for pair in keys.items():
        params.extend(pair)
    return conn.exec_driver_sql(sql, tuple(params))


@dataclass
class Failure:
    ids: list[int]  # message rows
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
    """Record a batch of outcomes (message rows) in one transaction: sent, and failed
    attempts (back to `pending` after `backoff(attempts)`, or `failed` when not retryable
    or out of tries)."""
    if not sent and not failures:
        return
    with db.engine.begin() as conn:
        for chunk in _chunks(sent):
            conn.execute(
                update(MessageRow)
                .where(MessageRow.id.in_(chunk))
                .values(status="sent", sent_at=now, last_error=None, updated_at=now)
            )
        for failure in failures:
            attempts = conn.execute(
                select(MessageRow.id, MessageRow.attempts).where(MessageRow.id.in_(failure.ids))
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
                conn.execute(update(MessageRow).where(MessageRow.id == row_id).values(**values))


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
    `release(subscriber id)` when that is earlier than planned (moved to a message due
    then). Returns how many were found."""
    rows = session.execute(
        select(DeliveryRow.id, MessageRow.id, MessageRow.subscriber_id, MessageRow.due_at)
        .join(MessageRow, MessageRow.id == DeliveryRow.message_id)
        .join(PostRow, PostRow.id == DeliveryRow.post_id)
        .where(
            MessageRow.kind == "student",
            MessageRow.status == "pending",
            MessageRow.attempts == 0,
            MessageRow.due_at > now,
            PostRow.answer_count > 0,
        )
    ).all()
    earlier: dict[tuple[int, datetime], list[int]] = {}
    for row_id, message_id, sub, due_at in rows:
        when = release(sub)
        if when < aware(due_at):
            earlier.setdefault((message_id, when), []).append(row_id)
    for (message_id, when), ids in earlier.items():
        move_items(session, {message_id: ids}, now, lambda old, when=when: {"due_at": when})
    return len(rows)


def aware(value: datetime) -> datetime:
    """SQLite returns naive datetimes (stored in UTC)."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)
