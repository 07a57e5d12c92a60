"""PostgreSQL advisory locks, so several bot processes on one database divide the work.

On other databases these are no-ops: SQLite allows one writer anyway (and `run` refuses a
second process on the same file).
"""

from __future__ import annotations

import zlib

from sqlalchemy import text
from sqlalchemy.orm import Session

_NAMESPACE = 0x0D0C  # first half of each lock key: "doctoctoc", apart from other apps' locks


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for a lock name."""
    return (_NAMESPACE << 32 | zlib.crc32(name.encode())) - (1 << 63)


def stage_lock(session: Session, name: str) -> None:
    """Wait for the transaction-scoped lock `name` (released at commit or rollback)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": lock_key(name)})
