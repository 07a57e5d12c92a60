"""Engine, sessions and migrations. SQLite (WAL) by default, or PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from bot.core.errors import StorageError

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

# What callers outside bot.storage catch, so that none of them imports SQLAlchemy:
# DatabaseError, any failure of the database (full disk, read-only file, server unreachable);
# ConstraintError, a write refused by a constraint (another process stored the same row).
DatabaseError = SQLAlchemyError
ConstraintError = IntegrityError


def failure_reason(exc: BaseException) -> str:
    """The first line of what the database driver said (one line for the CLI, no traceback)."""
    reason = getattr(exc, "orig", None) or exc
    return str(reason).splitlines()[0]


class Database:
    def __init__(self, url: str, *, read_only: bool = False):
        self.url = url
        try:
            self.engine = make_engine(url, read_only=read_only)
        except (SQLAlchemyError, ValueError, ImportError) as exc:
            raise StorageError(f"cannot open database {safe_url(url)}: {exc}") from exc
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session committed at the end of the block, rolled back on error."""
        with self._sessions() as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def upgrade(self) -> None:
        upgrade(self.engine)

    def dispose(self) -> None:
        self.engine.dispose()

    def ping(self) -> None:
        """Raise (the driver's error) when the database does not answer."""
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))


SUPPORTED = ("sqlite", "postgresql")


def make_engine(url: str, *, read_only: bool = False) -> Engine:
    backend = make_url(url).get_backend_name()
    if backend not in SUPPORTED:  # the queue's claims use SQLite's or PostgreSQL's own SQL
        raise ValueError(f"{backend} is not supported: use SQLite or PostgreSQL")
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:" and not path.startswith("file:"):
            _create_private(Path(path.split("?", 1)[0]))
        kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
    else:
        kwargs["pool_pre_ping"] = True
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    engine = create_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_reader_pragmas if read_only else _sqlite_pragmas)
        if not read_only:
            # Jobs write side by side (one per source and per channel). A deferred SQLite
            # transaction that read and then writes after another one committed fails at
            # once ("database is locked", the busy timeout cannot help); BEGIN IMMEDIATE
            # takes the write lock first, so concurrent writers wait their turn instead.
            event.listen(engine, "connect", _autocommit_driver)
            event.listen(engine, "begin", _begin_immediate)
    return engine


def _autocommit_driver(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself (below)


def _begin_immediate(conn: Any) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def _create_private(path: Path) -> None:
    """Create the database file readable by its owner only (it holds the link-signing secret).

    SQLite gives its -wal and -shm files the database file's permissions.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        pass
    except OSError:
        pass  # read-only place: opening it will say so


def _sqlite_reader_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """A reader changes nothing: no journal mode switch (it would write)."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def alembic_config(engine: Engine) -> Any:
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest migration (idempotent)."""
    from alembic import command

    try:
        with _migration_lock(engine):
            command.upgrade(alembic_config(engine), "head")
    except SQLAlchemyError as exc:
        raise StorageError(f"cannot migrate database {safe_url(str(engine.url))}: {exc}") from exc


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    """PostgreSQL: processes starting together migrate one after the other (the second finds
    the schema up to date) instead of both creating the tables."""
    if engine.dialect.name != "postgresql":
        yield
        return
    from bot.storage.locks import lock_key

    with engine.connect() as conn:
        key = {"key": lock_key("migrate")}
        conn.execute(text("SELECT pg_advisory_lock(:key)"), key)
        conn.commit()
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:key)"), key)
            conn.commit()


def current_tables(engine: Engine) -> list[str]:
    return sorted(inspect(engine).get_table_names())


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite database URL; None for other databases, memory or `file:` URIs."""
    try:
        parsed = make_url(url)
    except Exception:  # noqa: BLE001 - not a URL we can lock
        return None
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    if parsed.database.startswith("file:"):
        return None
    return Path(parsed.database)


def safe_url(url: str) -> str:
    """The URL without its password, for logs and messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a malformed URL is shown as given minus credentials
        return url.split("@")[-1]
