"""One `doctoctoc run` per SQLite file: a second one refuses to start with a clear message.

SQLite takes one writer at a time and has no locks that outlive a process cleanly, so the
bot locks a file beside the database (`flock`: released by the kernel when the process
dies, even by kill -9). PostgreSQL needs no such lock: processes share the work there.
"""

from __future__ import annotations

import fcntl
import os
from typing import IO

from bot.core.errors import DocTocTocError
from bot.storage.db import sqlite_file


class AlreadyRunning(DocTocTocError):
    """Another bot process uses this SQLite database."""


def lock_run(url: str) -> IO[str] | None:
    """Hold the run lock of a SQLite database for the life of this process."""
    path = sqlite_file(url)
    if path is None:
        return None
    lock_path = path.with_name(path.name + ".run-lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    handle = os.fdopen(fd, "r+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        other = handle.read().strip() or "?"
        handle.close()
        raise AlreadyRunning(
            f"another doctoctoc run (pid {other}) is using {path}; stop it first. "
            "To run several processes, use PostgreSQL (database.url)"
        ) from exc
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle
