"""New pending deliveries in bulk: a routing cycle creates a row per (subscriber, post,
channel), hundreds of thousands at national scale, without the ORM's per-row work, and a
pending message per (subscriber, channel, kind, due time) for them to hang from."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import text

from bot.storage.models import DeliveryRow

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

_MESSAGE = "id, subscriber_id, channel, kind, status, attempts, due_at, created_at, updated_at"
_DELIVERY = "subscriber_id, post_id, channel, kind, reason, message_id, created_at"
_SQLITE_MESSAGES = f"INSERT INTO messages ({_MESSAGE}) VALUES (?, ?, ?, ?, 'pending', 0, ?, ?, ?)"
_SQLITE_DELIVERIES = f"INSERT INTO deliveries ({_DELIVERY}) VALUES (?, ?, ?, ?, ?, ?, ?)"
_PG_IDS = text(
    "SELECT nextval(pg_get_serial_sequence('messages', 'id')) FROM generate_series(1, :n)"
)

# PostgreSQL: a routing cycle that adds this many deliveries refreshes the planner's
# statistics of both tables before its transaction ends.
ANALYZE_AFTER = 20_000

MessageKey = tuple[str, str, str, datetime]  # (subscriber, channel, kind, due time)
# A new delivery: (subscriber, post id, channel, kind, reason, due time); plain tuples, as a
# routing cycle makes 100,000s of them.
NewDelivery = tuple[str, int, str, str, str, datetime]


def insert_many(session: Session, rows: Sequence[NewDelivery], now: datetime) -> None:
    """Insert new pending deliveries (created `now`) and their messages, one per (subscriber,
    channel, kind, due time). SQLite: the driver's executemany; PostgreSQL: COPY."""
    if not rows:
        return
    conn = session.connection()
    messages: dict[MessageKey, int] = dict.fromkeys(
        (sub, channel, kind, due) for sub, _, channel, kind, _, due in rows
    )  # type: ignore[arg-type]
    ids = _new_ids(conn, len(messages))
    for key, new_id in zip(messages, ids, strict=True):
        messages[key] = new_id
    if conn.dialect.name == "postgresql":
        _copy(conn, rows, messages, now)
        if len(rows) >= ANALYZE_AFTER:
            # The planner's statistics date from before these rows: without fresh ones the
            # claims' `id IN (...)` lookups turned into whole-table scans (100,000
            # subscribers: 81 s of claims instead of a few).
            conn.exec_driver_sql("ANALYZE messages, deliveries")
        return
    # SQLite (the only other supported database, bot.storage.db.SUPPORTED)
    stamp = _stamper(conn.dialect)
    created = stamp(now)
    conn.exec_driver_sql(
        _SQLITE_MESSAGES,
        [(i, s, ch, k, stamp(due), created, created) for (s, ch, k, due), i in messages.items()],
    )
    params = [
        (sub, post_id, channel, kind, reason, messages[(sub, channel, kind, due)], created)
        for sub, post_id, channel, kind, reason, due in rows
    ]
    conn.exec_driver_sql(_SQLITE_DELIVERIES, params)


def _new_ids(conn: Any, n: int) -> list[int]:
    """Ids for n new messages: from the sequence on PostgreSQL; on SQLite after the largest
    (the routing transaction holds the write lock: nobody else inserts meanwhile)."""
    if conn.dialect.name == "postgresql":
        return [row[0] for row in conn.execute(_PG_IDS, {"n": n})]
    top = conn.exec_driver_sql("SELECT coalesce(max(id), 0) FROM messages").scalar()
    return list(range(top + 1, top + 1 + n))


def _copy(
    conn: Any, rows: Sequence[NewDelivery], messages: dict[MessageKey, int], now: datetime
) -> None:
    """PostgreSQL: the messages and the deliveries streamed by COPY, one command each."""
    now = _utc(now)
    with conn.connection.driver_connection.cursor() as cursor:
        with cursor.copy(f"COPY messages ({_MESSAGE}) FROM STDIN") as copy:
            for (sub, channel, kind, due), message_id in messages.items():
                copy.write_row((message_id, sub, channel, kind, "pending", 0, _utc(due), now, now))
        with cursor.copy(f"COPY deliveries ({_DELIVERY}) FROM STDIN") as copy:
            for sub, post_id, channel, kind, reason, due in rows:
                message_id = messages[(sub, channel, kind, due)]
                copy.write_row((sub, post_id, channel, kind, reason, message_id, now))


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _stamper(dialect: Any) -> Callable[[datetime], Any]:
    """A datetime as SQLite stores it (UtcDateTime's bind processing), once per value."""
    process = DeliveryRow.__table__.c.created_at.type._cached_bind_processor(dialect)
    seen: dict[datetime, Any] = {}

    def stamp(value: datetime) -> Any:
        found = seen.get(value)
        if found is None:
            found = seen[value] = process(value) if process else value
        return found

    return stamp
