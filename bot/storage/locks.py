"""PostgreSQL advisory locks, so several bot processes on one database divide the work.

On other databases these are no-ops: SQLite allows one writer anyway (and `run` refuses a
second process on the same file).
"""

from __future__ import annotations

import threading
import zlib

from sqlalchemy import Connection, Engine, text
from sqlalchemy.orm import Session

_NAMESPACE = 0x0D0C  # first half of each lock key: "doctoctoc", apart from other apps' locks


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for a lock name."""
    return (_NAMESPACE << 32 | zlib.crc32(name.encode())) - (1 << 63)


def stage_lock(session: Session, name: str) -> None:
    """Wait for the transaction-scoped lock `name` (released at commit or rollback)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": lock_key(name)})


class SourceLocks:
    """One PostgreSQL session lock per source, so one process at a time polls it.

    Each lock lives on its own connection, kept while this process runs: when the process
    dies, PostgreSQL drops the connection and the lock, and another process takes the
    source over at its next poll. Elsewhere (SQLite) every source is always ours.
    """

    def __init__(self, engine: Engine):
        self.engine = engine
        self.enabled = engine.dialect.name == "postgresql"
        self._held: dict[str, Connection] = {}
        self._guard = threading.Lock()

    def hold(self, source: str) -> bool:
        """True when this process may poll `source` now (the lock is taken or already ours)."""
        if not self.enabled:
            return True
        with self._guard:
            conn = self._held.get(source)
            if conn is not None:
                try:
                    conn.execute(text("SELECT 1"))  # still our session, so still our lock
                    conn.commit()
                    return True
                except Exception:  # noqa: BLE001 - the session is gone, and the lock with it
                    self._drop(conn)
                    self._held.pop(source, None)
            conn = self.engine.connect()
            try:
                got = conn.execute(
                    text("SELECT pg_try_advisory_lock(:key)"), {"key": lock_key(f"source:{source}")}
                ).scalar()
                conn.commit()
            except Exception:
                conn.close()
                raise
            if not got:
                conn.close()
                return False
            self._held[source] = conn
            return True

    def release_all(self) -> None:
        with self._guard:
            for conn in self._held.values():
                self._drop(conn)
            self._held.clear()

    @staticmethod
    def _drop(conn: Connection) -> None:
        """End the session for real (a pooled connection would keep its session locks)."""
        try:
            conn.invalidate()
            conn.close()
        except Exception:  # noqa: BLE001 - already gone
            pass
