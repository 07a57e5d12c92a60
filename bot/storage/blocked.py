"""Blocked authors (table `blocked_authors`): their posts are kept but never routed."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.storage.models import BlockedAuthorRow


def block_author(session: Session, handle: str, now: datetime) -> None:
    """Block a normalized handle (idempotent)."""
    if session.get(BlockedAuthorRow, handle) is None:
        session.add(BlockedAuthorRow(handle=handle, created_at=now))


def unblock_author(session: Session, handle: str) -> None:
    """Unblock a normalized handle (idempotent)."""
    row = session.get(BlockedAuthorRow, handle)
    if row is not None:
        session.delete(row)


def stored_blocked_handles(session: Session) -> set[str]:
    """The handles blocked with `doctoctoc block` (the config's `blocked_authors` are apart)."""
    return set(session.scalars(select(BlockedAuthorRow.handle)))
