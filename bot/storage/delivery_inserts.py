"""New pending deliveries in bulk: a routing cycle creates a row per (subscriber, post,
channel), hundreds of thousands at national scale, without the ORM's per-row work."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert

from bot.storage.models import DeliveryRow

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

_COLUMNS = "subscriber_id, post_id, channel, kind, reason, due_at, status, attempts, created_at, updated_at"
_INSERT = f"INSERT INTO deliveries ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?)"
_PG_COPY = f"COPY deliveries ({_COLUMNS}) FROM STDIN"


def insert_many(session: Session, rows: list[dict]) -> None:
    """Insert new pending deliveries (dicts of column values; `created_at` = `updated_at`,
    the same for all). SQLite: the driver's executemany; PostgreSQL: COPY."""
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
    if conn.dialect.name == "postgresql":  # COPY: the rows streamed in one command
        now = now if now.tzinfo else now.replace(tzinfo=UTC)
        with conn.connection.driver_connection.cursor() as cursor, cursor.copy(_PG_COPY) as copy:
            for r in rows:
                due = r["due_at"] if r["due_at"].tzinfo else r["due_at"].replace(tzinfo=UTC)
                copy.write_row(
                    (r["subscriber_id"], r["post_id"], r["channel"], r["kind"], r["reason"],
                     due, "pending", 0, now, now)
                )  # fmt: skip
        return
    stamp = _stamper(conn.dialect)
    created = stamp(now)
    params = [
        (r["subscriber_id"], r["post_id"], r["channel"], r["kind"], r["reason"],
         stamp(r["due_at"]), created, created)
        for r in rows
    ]  # fmt: skip
    conn.exec_driver_sql(_INSERT, params)


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
