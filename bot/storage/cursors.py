"""Per-source cursors and health: a cursor moves only after its page is committed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.storage.models import CursorRow
from bot.storage.posts import now_utc


def _row(session: Session, source: str) -> CursorRow:
    row = session.get(CursorRow, source)
    if row is None:
        row = CursorRow(source=source, reads_count=0)
        session.add(row)
    return row


def get_cursor(session: Session, source: str) -> str | None:
    row = session.get(CursorRow, source)
    return row.value if row else None


def set_cursor(
    session: Session, source: str, value: str | None, now: datetime | None = None
) -> None:
    row = _row(session, source)
    row.value = value
    row.updated_at = now or now_utc()


def record_success(session: Session, source: str, now: datetime | None = None) -> None:
    row = _row(session, source)
    row.last_success_at = now or now_utc()
    row.failing_since = None
    row.last_error = None


def record_failure(session: Session, source: str, error: str, now: datetime | None = None) -> None:
    now = now or now_utc()
    row = _row(session, source)
    if row.failing_since is None:
        row.failing_since = now
    row.last_error = error[:2000]


def add_reads(session: Session, source: str, count: int, now: datetime | None = None) -> int:
    """Count reads against a monthly budget; returns the reads used this month."""
    month = (now or now_utc()).strftime("%Y-%m")
    row = _row(session, source)
    if row.reads_month != month:
        row.reads_month, row.reads_count = month, 0
    row.reads_count += count
    return row.reads_count


def reads_this_month(session: Session, source: str, now: datetime | None = None) -> int:
    row = session.get(CursorRow, source)
    month = (now or now_utc()).strftime("%Y-%m")
    return row.reads_count if row and row.reads_month == month else 0


@dataclass
class SourceHealth:
    source: str
    healthy: bool
    last_success_at: datetime | None
    failing_since: datetime | None
    last_error: str | None


def health(
    session: Session, sources: dict[str, timedelta], now: datetime | None = None
) -> list[SourceHealth]:
    """Sources failing for longer than their `unhealthy_after` are unhealthy (a gap detector)."""
    now = now or now_utc()
    rows = {r.source: r for r in session.scalars(select(CursorRow)).all()}
    out = []
    for source, limit in sources.items():
        row = rows.get(source)
        failing = row.failing_since if row else None
        healthy = failing is None or now - failing < limit
        out.append(
            SourceHealth(
                source=source,
                healthy=healthy,
                last_success_at=row.last_success_at if row else None,
                failing_since=failing,
                last_error=row.last_error if row else None,
            )
        )
    return out
