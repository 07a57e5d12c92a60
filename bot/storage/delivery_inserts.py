"""New pending deliveries in bulk: a routing cycle creates a row per (subscriber, post,
channel), hundreds of thousands at national scale, without the ORM's per-row work."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, insert, text

from bot.storage.models import DeliveryRow, UtcDateTime

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

ROWS_PER_STATEMENT = 10_000  # PostgreSQL: rows per INSERT ... SELECT FROM unnest(...)

_NEW_COLUMNS = ("subscriber_id", "post_id", "channel", "kind", "reason", "due_at")
_INSERT = (
    "INSERT INTO deliveries (subscriber_id, post_id, channel, kind, reason, due_at, "
    "status, attempts, created_at, updated_at) "
)
# PostgreSQL: the rows as arrays, one statement (and one round trip) for thousands of rows.
_PG_INSERT = text(
    _INSERT + "SELECT v.*, 'pending', 0, :now, :now FROM unnest(CAST(:subs AS varchar[]), "
    "CAST(:posts AS integer[]), CAST(:channels AS varchar[]), CAST(:kinds AS varchar[]), "
    "CAST(:reasons AS varchar[]), CAST(:dues AS timestamptz[])) AS v"
).bindparams(bindparam("now", type_=UtcDateTime()))


def insert_many(session: Session, rows: list[dict]) -> None:
    """Insert new pending deliveries (each row: _NEW_COLUMNS, and `created_at` = `updated_at`,
    the same for all). SQLite: the driver's executemany; PostgreSQL: arrays through unnest."""
    if not rows:
        return
    conn = session.connection()
    now = rows[0]["created_at"]
    if conn.dialect.name not in ("sqlite", "postgresql") or any(
        r["created_at"] != now or r["updated_at"] != now or r.get("status", "pending") != "pending"
        for r in rows
    ):
        session.execute(insert(DeliveryRow.__table__), rows)
        return
    if conn.dialect.name == "postgresql":
        for first in range(0, len(rows), ROWS_PER_STATEMENT):
            batch = rows[first : first + ROWS_PER_STATEMENT]
            subs, posts, channels, kinds, reasons, dues = (
                [r[c] for r in batch] for c in _NEW_COLUMNS
            )
            dues = [d if d.tzinfo else d.replace(tzinfo=UTC) for d in dues]
            conn.execute(
                _PG_INSERT.bindparams(
                    now=now, subs=subs, posts=posts, channels=channels,
                    kinds=kinds, reasons=reasons, dues=dues,
                )
            )  # fmt: skip
        return
    stamp = _stamper(conn.dialect)
    created = stamp(now)
    params = [
        (r["subscriber_id"], r["post_id"], r["channel"], r["kind"], r["reason"],
         stamp(r["due_at"]), created, created)
        for r in rows
    ]  # fmt: skip
    conn.exec_driver_sql(_INSERT + "VALUES (?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?)", params)


def _stamper(dialect: Any) -> Callable[[datetime], Any]:
    """A datetime as SQLite stores it (UtcDateTime's bind processing), once per value."""
    process = DeliveryRow.__table__.c.updated_at.type._cached_bind_processor(dialect)
    seen: dict[datetime, Any] = {}

    def stamp(value: datetime) -> Any:
        found = seen.get(value)
        if found is None:
            found = seen[value] = process(value) if process else value
        return found

    return stamp
